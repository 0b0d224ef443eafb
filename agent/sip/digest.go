package sip

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"

	"github.com/hardphone/hardphone/crypto/policy"
)

// challenge is one parsed WWW-Authenticate / Proxy-Authenticate value
// (RFC 3261 §25.1 digest-cln, RFC 7616 §3.3).
type challenge struct {
	Realm     string
	Nonce     string
	Opaque    string
	Algorithm policy.Digest
	AlgToken  string // as received, echoed back
	QopAuth   bool   // "auth" is among the qop options
	HasQop    bool
	Stale     bool
}

// parseChallenge parses `Digest k=v, k="v", ...`. Unknown parameters are
// ignored (RFC 7616 §3.3: "Any unrecognized parameter MUST be ignored").
func parseChallenge(v string) (challenge, error) {
	var c challenge
	scheme, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
	if !strings.EqualFold(scheme, "Digest") {
		return c, fmt.Errorf("auth scheme %q, want Digest", scheme)
	}
	params, err := parseAuthParams(rest)
	if err != nil {
		return c, err
	}
	c.Realm, c.Nonce, c.Opaque = params["realm"], params["nonce"], params["opaque"]
	c.AlgToken = params["algorithm"]
	if c.Nonce == "" {
		return c, fmt.Errorf("digest challenge without nonce")
	}
	c.Algorithm, err = policy.ParseDigest(c.AlgToken)
	if err != nil {
		return c, err
	}
	if q, ok := params["qop"]; ok {
		c.HasQop = true
		for _, o := range strings.Split(q, ",") {
			if strings.TrimSpace(o) == "auth" {
				c.QopAuth = true
			}
		}
	}
	c.Stale = strings.EqualFold(params["stale"], "true")
	return c, nil
}

// parseAuthParams splits a comma-separated auth-param list, honouring quoted
// strings with backslash escapes.
func parseAuthParams(s string) (map[string]string, error) {
	out := map[string]string{}
	for len(s) > 0 {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			break
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("auth param without value near %q", truncate(s, 20))
		}
		key := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			i := 1
			closed := false
			for ; i < len(s); i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
					b.WriteByte(s[i])
					continue
				}
				if s[i] == '"' {
					closed = true
					break
				}
				b.WriteByte(s[i])
			}
			if !closed {
				return nil, fmt.Errorf("unterminated quoted auth param %s", key)
			}
			val, s = b.String(), s[i+1:]
		} else {
			end := strings.IndexByte(s, ',')
			if end < 0 {
				end = len(s)
			}
			val, s = strings.TrimSpace(s[:end]), s[end:]
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("auth param %s given twice", key)
		}
		out[key] = val
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func digestHash(d policy.Digest) (hash.Hash, error) {
	switch d {
	case policy.DigestMD5:
		return md5.New(), nil
	case policy.DigestSHA256:
		return sha256.New(), nil
	case policy.DigestSHA512256:
		return sha512.New512_256(), nil
	}
	return nil, fmt.Errorf("digest %v: %w", d, policy.ErrUnknownAlgorithm)
}

func hx(h hash.Hash, parts ...string) string {
	h.Reset()
	h.Write([]byte(strings.Join(parts, ":")))
	return hex.EncodeToString(h.Sum(nil))
}

// credentials are what an account answers a challenge with.
type credentials struct {
	User     string
	Password string
}

// LogValue keeps the password out of every log line.
func (c credentials) LogValue() slogValue { return redacted(c.User) }

// authorization computes the Authorization value for a challenge
// (RFC 7616 §3.4.1, with RFC 8760 §2.4 for SIP's SHA-2 algorithms).
func authorization(c challenge, cr credentials, method, uri string, nc uint32, cnonce string) (string, error) {
	h, err := digestHash(c.Algorithm)
	if err != nil {
		return "", err
	}
	ha1 := hx(h, cr.User, c.Realm, cr.Password)
	ha2 := hx(h, method, uri)
	var b strings.Builder
	fmt.Fprintf(&b, `Digest username="%s", realm="%s", nonce="%s", uri="%s"`,
		quote(cr.User), quote(c.Realm), quote(c.Nonce), quote(uri))
	// RFC 2069 (no qop) and auth-int-only challenges were refused by
	// chooseChallenge; this is the one form we send.
	if !c.QopAuth {
		return "", fmt.Errorf("digest challenge without qop=auth: %w", ErrChallengeRefused)
	}
	ncs := fmt.Sprintf("%08x", nc)
	resp := hx(h, ha1, c.Nonce, ncs, cnonce, "auth", ha2)
	fmt.Fprintf(&b, `, response="%s", cnonce="%s", nc=%s, qop=auth`, resp, quote(cnonce), ncs)
	if c.AlgToken != "" {
		fmt.Fprintf(&b, `, algorithm=%s`, c.AlgToken)
	}
	if c.Opaque != "" {
		fmt.Fprintf(&b, `, opaque="%s"`, quote(c.Opaque))
	}
	return b.String(), nil
}

func quote(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

func newCnonce() string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		// crypto/rand never fails on Linux; a fixed value would be worse than a crash.
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b)
}

// chooseChallenge picks the challenge of a 401/407 to answer: only one for
// realm ("" = any realm: a REGISTER before the realm is pinned), only with
// qop=auth (RFC 2069's form without qop gives an offline-crackable hash
// with no client nonce; auth-int we do not do), and of those the strongest
// algorithm at or above the account floor (RFC 8760 §2.4). A refusal wraps
// ErrChallengeRefused, or policy.ErrWeakAlgorithm for the floor.
func chooseChallenge(values []string, min policy.Digest, realm string) (challenge, error) {
	var chs []challenge
	var algs []policy.Digest
	var refused []string
	var firstErr error
	for _, v := range values {
		c, err := parseChallenge(v)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		switch {
		case realm != "" && c.Realm != realm:
			refused = append(refused, fmt.Sprintf("realm %q, want %q", truncate(c.Realm, 64), truncate(realm, 64)))
			continue
		case !c.HasQop:
			refused = append(refused, "no qop (RFC 2069 form)")
			continue
		case !c.QopAuth:
			refused = append(refused, "qop without auth")
			continue
		}
		chs = append(chs, c)
		algs = append(algs, c.Algorithm)
	}
	if len(chs) == 0 {
		if len(refused) > 0 {
			return challenge{}, fmt.Errorf("%w: %s", ErrChallengeRefused, strings.Join(refused, "; "))
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("no digest challenge")
		}
		return challenge{}, fmt.Errorf("digest challenge: %w", firstErr)
	}
	i, err := policy.ChooseDigest(algs, min)
	if err != nil {
		return challenge{}, err
	}
	return chs[i], nil
}
