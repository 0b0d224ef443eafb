package adminauth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
)

// Bounds of stored records.
const (
	// MaxNameLen bounds an admin's login name.
	MaxNameLen = 64
	// MaxCredentials bounds an admin's WebAuthn credentials.
	MaxCredentials = 8
	// MaxSessionsPerAdmin bounds an admin's live sessions (pending ones
	// included); creating one more ends the oldest.
	MaxSessionsPerAdmin = 16
	// MaxCeremony bounds the WebAuthn ceremony data a session holds.
	MaxCeremony = 8 << 10
	// MaxThrottleKey bounds a throttle key.
	MaxThrottleKey = 128
	// MaxListAdmins bounds one ListAdmins answer of boltauth and pgauth
	// (the admin console's list of admins).
	MaxListAdmins = 1000
)

// Admin is an administrator account. It logs only its ID, name and role.
type Admin struct {
	// ID is 32 lowercase hex digits (16 random bytes), fixed for life;
	// its bytes are the WebAuthn user handle.
	ID string `json:"id"`
	// Name is the login name: 1..MaxNameLen of [a-z0-9._@-].
	Name string `json:"name"`
	Role Role   `json:"role"`
	// PasswordHash is an argon2id PHC string.
	PasswordHash string `json:"password_hash"`
	// TOTPSecret is empty when no TOTP is enrolled.
	TOTPSecret TOTPSecret `json:"totp_secret,omitempty"`
	// TOTPLastStep is the last time step accepted (replay window).
	TOTPLastStep int64                 `json:"totp_last_step,omitempty"`
	Credentials  []webauthn.Credential `json:"credentials,omitempty"`
	Disabled     bool                  `json:"disabled,omitempty"`
	CreatedAt    time.Time             `json:"created_at"`
}

// LogValue implements slog.LogValuer: never the hash or the secrets.
func (a Admin) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", a.ID), slog.String("name", a.Name), slog.String("role", string(a.Role)))
}

// HasSecondFactor reports whether the admin has TOTP or a passkey.
func (a *Admin) HasSecondFactor() bool { return a.TOTPSecret != "" || len(a.Credentials) > 0 }

// NewAdminID makes a random admin ID.
func NewAdminID() string {
	b := make([]byte, 16)
	rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// NormalizeName lowercases a login name and checks its characters.
func NormalizeName(name string) (string, error) {
	n := strings.ToLower(name)
	if len(n) == 0 || len(n) > MaxNameLen {
		return "", fmt.Errorf("admin name of %d bytes, want 1..%d: %w", len(n), MaxNameLen, ErrInvalid)
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("._@-", c) >= 0) {
			return "", fmt.Errorf("admin name %q: want [a-z0-9._@-]: %w", name, ErrInvalid)
		}
	}
	return n, nil
}

// Validate checks an admin record before it is stored.
func (a *Admin) Validate() error {
	if len(a.ID) != 32 || strings.Trim(a.ID, "0123456789abcdef") != "" {
		return fmt.Errorf("admin ID %q: want 32 lowercase hex digits: %w", a.ID, ErrInvalid)
	}
	if n, err := NormalizeName(a.Name); err != nil || n != a.Name {
		return fmt.Errorf("admin name %q: %w", a.Name, ErrInvalid)
	}
	if !a.Role.Valid() {
		return fmt.Errorf("admin role %q: %w", a.Role, ErrInvalid)
	}
	if _, _, _, err := parseHash(a.PasswordHash); err != nil {
		return err
	}
	if len(a.TOTPSecret) > 128 || len(a.Credentials) > MaxCredentials {
		return fmt.Errorf("admin %s: TOTP secret of %d bytes, %d credentials: %w", a.Name, len(a.TOTPSecret), len(a.Credentials), ErrInvalid)
	}
	return nil
}

// SessionKind is what a session may do.
type SessionKind uint8

// Session kinds.
const (
	// SessionPending: the password was right; a second factor is due.
	// It authorizes nothing else.
	SessionPending SessionKind = 1
	// SessionEnrol: the password was right and the admin has no second
	// factor: it may only enrol one.
	SessionEnrol SessionKind = 2
	// SessionFull: logged in.
	SessionFull SessionKind = 3
)

// TokenHash is SHA-256 of a session token: what the store keeps.
type TokenHash [32]byte

// Session is a stored session. The token itself is never stored.
type Session struct {
	Hash    TokenHash
	AdminID string
	Kind    SessionKind
	// Fingerprint binds the session to the client's network and user
	// agent (see Client.fingerprint).
	Fingerprint string
	CreatedAt   time.Time
	LastSeen    time.Time
	// Expires is when the session ends if not used again: the earlier
	// of its idle and absolute limits.
	Expires time.Time
	// SecondFactorAt is when a second factor was last proved on it
	// (zero for pending and enrolment sessions).
	SecondFactorAt time.Time
	// Ceremony holds the WebAuthn ceremony data or the TOTP secret being
	// enrolled, between the two steps; at most MaxCeremony bytes.
	Ceremony []byte
	// Failures counts failed second-factor proofs on this session.
	Failures int
}

// LogValue implements slog.LogValuer: no hash, no ceremony data.
func (s Session) LogValue() slog.Value {
	return slog.GroupValue(slog.String("admin_id", s.AdminID), slog.Int("kind", int(s.Kind)))
}

// Validate checks a session record before it is stored.
func (s *Session) Validate() error {
	if s.Kind < SessionPending || s.Kind > SessionFull || s.AdminID == "" || len(s.AdminID) > 64 ||
		len(s.Fingerprint) > 256 || len(s.Ceremony) > MaxCeremony || s.Expires.IsZero() {
		return fmt.Errorf("session record: %w", ErrInvalid)
	}
	return nil
}

// Throttle counts an account's or a source's failures.
type Throttle struct {
	Key         string
	Failures    int
	LastFailure time.Time
	// LockedUntil is when the next attempt is allowed (zero: now).
	LockedUntil time.Time
}

// AdminStore keeps admins.
type AdminStore interface {
	// CreateAdmin stores a new admin; ErrExists when the ID or the
	// name is taken.
	CreateAdmin(ctx context.Context, a Admin) error
	// AdminByName and AdminByID return ErrNotFound when there is none.
	AdminByName(ctx context.Context, name string) (Admin, error)
	AdminByID(ctx context.Context, id string) (Admin, error)
	// UpdateAdmin runs fn on the stored admin and stores its result,
	// atomically against other updates of the same admin (in any
	// replica); fn's error aborts with nothing written. ID and name
	// cannot change.
	UpdateAdmin(ctx context.Context, id string, fn func(*Admin) error) error
}

// SessionStore keeps sessions by token hash.
type SessionStore interface {
	// CreateSession stores s, ending the admin's oldest sessions beyond
	// MaxSessionsPerAdmin; ErrExists if the hash is taken.
	CreateSession(ctx context.Context, s Session) error
	// SessionByHash returns ErrNotFound when there is none.
	SessionByHash(ctx context.Context, h TokenHash) (Session, error)
	// UpdateSession runs fn on the stored session atomically and stores
	// its result; fn's error aborts.
	UpdateSession(ctx context.Context, h TokenHash, fn func(*Session) error) error
	// DeleteSession ends one session (ErrNotFound when none);
	// DeleteAdminSessions every session of an admin, returning how many.
	DeleteSession(ctx context.Context, h TokenHash) error
	DeleteAdminSessions(ctx context.Context, adminID string) (int, error)
	// PruneSessions deletes sessions expired before now.
	PruneSessions(ctx context.Context, now time.Time) (int, error)
}

// ThrottleStore keeps the lockout counters in a table of bounded size.
type ThrottleStore interface {
	// Throttle returns ErrNotFound when the key has no entry.
	Throttle(ctx context.Context, key string) (Throttle, error)
	// UpdateThrottle runs fn on the key's entry (a zero Throttle with
	// Key set when none) atomically and stores the result, or deletes
	// the entry when fn returns keep false. When a new entry would make
	// the table hold more than maxEntries, the entry whose LockedUntil
	// comes first (expired ones before any lock in force) is evicted.
	UpdateThrottle(ctx context.Context, key string, maxEntries int, fn func(*Throttle) (keep bool, err error)) error
}

// Exclusive is what boltauth and pgauth add to Store: fn runs while no
// other Exclusive of any process sharing the store runs, for a
// check-then-act on the admins (bootstrap, an approved admin change).
type Exclusive interface {
	Exclusive(ctx context.Context, fn func(context.Context) error) error
}

// Store is everything the Authenticator keeps.
type Store interface {
	AdminStore
	SessionStore
	ThrottleStore
}
