package adminauth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/netip"
	"time"
)

// A session token is 32 random bytes (256 bits), base64url without
// padding: 43 characters. The store keeps only its SHA-256: a database
// reader cannot use a session, and a lookup by hash leaks nothing useful
// through timing (the hash of a guess is unrelated to the stored ones).
const tokenLen = 43

// Session lifetimes (defaults; see Options).
const (
	DefaultIdle     = 15 * time.Minute
	DefaultAbsolute = 8 * time.Hour
	// DefaultPending bounds the time between the password and the
	// second factor, and a WebAuthn ceremony.
	DefaultPending = 5 * time.Minute
	// DefaultStepUp is how recent a second factor a privileged
	// permission needs.
	DefaultStepUp = 5 * time.Minute
	// touchEvery throttles the idle-timer writes: a session used again
	// within it is not rewritten.
	touchEvery = time.Minute
	// maxProofFailures ends a pending session after this many wrong
	// second factors.
	maxProofFailures = 5
)

func newToken() (string, TokenHash) {
	b := make([]byte, 32)
	rand.Read(b) // crypto/rand.Read never fails
	t := base64.RawURLEncoding.EncodeToString(b)
	return t, sha256.Sum256([]byte(t))
}

// hashToken checks a presented token's form and returns its hash.
func hashToken(t string) (TokenHash, error) {
	if len(t) != tokenLen {
		return TokenHash{}, ErrSessionInvalid
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(t); err != nil {
		return TokenHash{}, ErrSessionInvalid
	}
	return sha256.Sum256([]byte(t)), nil
}

// Client is what the server knows of the peer of a request.
type Client struct {
	// Addr is the client's address (after any trusted proxy).
	Addr netip.Addr
	// UserAgent is the request's User-Agent header.
	UserAgent string
}

// network is the client's network: the /24 of an IPv4 address, the /64 of
// an IPv6 one (a host's addresses within its /64 come and go).
func (c Client) network() netip.Prefix {
	a := c.Addr.Unmap()
	bits := 64
	if a.Is4() {
		bits = 24
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{} // an invalid address: its own "network"
	}
	return p
}

// source is the throttle key of the client's address: the address for
// IPv4, its /64 for IPv6 (an attacker holds a whole /64 as easily as one
// address).
func (c Client) source() string {
	a := c.Addr.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64) // a valid IPv6 address always has a /64
		return "src:" + p.String()
	}
	return "src:" + a.String()
}

// fingerprint binds a session to the client's network and user agent.
func (c Client) fingerprint() string {
	ua := sha256.Sum256([]byte(c.UserAgent))
	return fmt.Sprintf("%s|%s", c.network(), hex.EncodeToString(ua[:12]))
}

// SessionInfo is what a valid session tells the caller.
type SessionInfo struct {
	AdminID string
	Name    string
	Role    Role
	Kind    SessionKind
	// SecondFactorAt is when a second factor was last proved.
	SecondFactorAt time.Time
	CreatedAt      time.Time
	Expires        time.Time
}
