package adminauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/adminauth/authtest"
	"github.com/hardphone/hardphone/fleet/adminauth/boltauth"
)

var ctx = context.Background()

const (
	rpID   = "fleet.example"
	origin = "https://fleet.example"
)

var b64u = base64.RawURLEncoding

// softAuthenticator is a WebAuthn authenticator in software: one ES256
// (P-256) credential, "none" attestation, a signature counter. It builds
// the client's responses as a browser would hand them to the server
// (WebAuthn L3 §5.1.3, §5.1.4, §6.1 authenticator data, §6.5.4
// attestation object, §8.7 none).
type softAuthenticator struct {
	key    *ecdsa.PrivateKey
	credID []byte
	count  uint32
	origin string // the origin the "browser" reports
	rpID   string // the RP ID whose hash the authenticator signs
}

func newSoftAuthenticator(t *testing.T) *softAuthenticator {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 32)
	rand.Read(id)
	return &softAuthenticator{key: k, credID: id, origin: origin, rpID: rpID}
}

// challenge reads publicKey.challenge from the server's options.
func challenge(t *testing.T, options []byte) string {
	t.Helper()
	var o struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(options, &o); err != nil || o.PublicKey.Challenge == "" {
		t.Fatalf("options %s: no challenge (%v)", options, err)
	}
	return o.PublicKey.Challenge
}

func (a *softAuthenticator) clientData(t *testing.T, typ, chal string) []byte {
	b, err := json.Marshal(map[string]any{"type": typ, "challenge": chal, "origin": a.origin, "crossOrigin": false})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// authData: rpIdHash(32) flags(1) signCount(4) [attested credential data].
func (a *softAuthenticator) authData(flags byte, attested []byte) []byte {
	h := sha256.Sum256([]byte(a.rpID))
	d := append(h[:], flags)
	d = binary.BigEndian.AppendUint32(d, a.count)
	return append(d, attested...)
}

const (
	flagUP = 0x01
	flagUV = 0x04
	flagAT = 0x40
)

func (a *softAuthenticator) create(t *testing.T, options []byte) []byte {
	t.Helper()
	cose, err := webauthncbor.Marshal(map[int64]any{
		1: int64(2), 3: int64(-7), -1: int64(1), // EC2, ES256, P-256 (RFC 9053 §7.1.1)
		-2: a.key.X.FillBytes(make([]byte, 32)), -3: a.key.Y.FillBytes(make([]byte, 32)),
	})
	if err != nil {
		t.Fatal(err)
	}
	attested := make([]byte, 16) // AAGUID zero
	attested = binary.BigEndian.AppendUint16(attested, uint16(len(a.credID)))
	attested = append(append(attested, a.credID...), cose...)
	obj, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": a.authData(flagUP|flagUV|flagAT, attested)})
	if err != nil {
		t.Fatal(err)
	}
	cd := a.clientData(t, "webauthn.create", challenge(t, options))
	body, _ := json.Marshal(map[string]any{"id": b64u.EncodeToString(a.credID), "rawId": b64u.EncodeToString(a.credID), "type": "public-key",
		"response": map[string]any{"clientDataJSON": b64u.EncodeToString(cd), "attestationObject": b64u.EncodeToString(obj)}})
	return body
}

func (a *softAuthenticator) get(t *testing.T, options []byte) []byte {
	t.Helper()
	a.count++
	ad := a.authData(flagUP|flagUV, nil)
	cd := a.clientData(t, "webauthn.get", challenge(t, options))
	h := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), h[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"id": b64u.EncodeToString(a.credID), "rawId": b64u.EncodeToString(a.credID), "type": "public-key",
		"response": map[string]any{"clientDataJSON": b64u.EncodeToString(cd), "authenticatorData": b64u.EncodeToString(ad),
			"signature": b64u.EncodeToString(sig)}})
	return body
}

type waEnv struct {
	st    *boltauth.Store
	clock *authtest.Clock
	auth  *adminauth.Authenticator
}

func newWAEnv(t *testing.T) *waEnv {
	st, err := boltauth.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	wa, err := adminauth.NewWebAuthn(rpID, "hardphone fleet", []string{origin})
	if err != nil {
		t.Fatalf("NewWebAuthn error %v", err)
	}
	e := &waEnv{st: st, clock: authtest.NewClock()}
	e.auth, err = adminauth.New(st, adminauth.WithHasher(authtest.FastHasher(t)), adminauth.WithClock(e.clock.Now), adminauth.WithWebAuthn(wa),
		// Room for every refused answer the tests present.
		adminauth.WithLockout(adminauth.LockoutPolicy{Free: 100, Base: time.Second, Max: time.Minute, Forget: time.Hour, MaxEntries: 100}))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// enrolPasskey creates an admin whose first login registers the passkey.
func (e *waEnv) enrolPasskey(t *testing.T, name string, a *softAuthenticator) string {
	t.Helper()
	if _, err := e.auth.CreateAdmin(ctx, name, "pw-"+name, adminauth.RoleSecurityAdmin); err != nil {
		t.Fatal(err)
	}
	r, err := e.auth.Login(ctx, name, "pw-"+name, authtest.Office)
	if err != nil || r.Kind != adminauth.SessionEnrol {
		t.Fatalf("Login = %+v, %v", r.Kind, err)
	}
	opts, err := e.auth.BeginWebAuthnRegistration(ctx, r.Token, authtest.Office)
	if err != nil {
		t.Fatalf("BeginWebAuthnRegistration error %v", err)
	}
	tok, err := e.auth.FinishWebAuthnRegistration(ctx, r.Token, a.create(t, opts), authtest.Office)
	if err != nil {
		t.Fatalf("FinishWebAuthnRegistration error %v", err)
	}
	return tok
}

func (e *waEnv) passkeyLogin(t *testing.T, name string, a *softAuthenticator) (string, error) {
	t.Helper()
	r, err := e.auth.Login(ctx, name, "pw-"+name, authtest.Office)
	if err != nil || r.Kind != adminauth.SessionPending || !r.WebAuthn || r.TOTP {
		t.Fatalf("Login = %+v, %v; want pending with WebAuthn only", r, err)
	}
	opts, err := e.auth.BeginWebAuthnProof(ctx, r.Token, authtest.Office)
	if err != nil {
		t.Fatalf("BeginWebAuthnProof error %v", err)
	}
	return e.auth.FinishWebAuthnProof(ctx, r.Token, a.get(t, opts), authtest.Office)
}

func TestWebAuthnCeremonies(t *testing.T) {
	e := newWAEnv(t)
	key := newSoftAuthenticator(t)
	tok := e.enrolPasskey(t, "sam", key)
	if info, err := e.auth.Authorize(ctx, tok, authtest.Office, adminauth.PermPolicyWrite); err != nil || info.Name != "sam" {
		t.Fatalf("Authorize(policy.write) after registering = %+v, %v", info, err)
	}
	full, err := e.passkeyLogin(t, "sam", key)
	if err != nil {
		t.Fatalf("passkey login error %v", err)
	}
	if _, err := e.auth.Authenticate(ctx, full, authtest.Office); err != nil {
		t.Fatalf("Authenticate error %v", err)
	}
	ad, _ := e.st.AdminByName(ctx, "sam")
	if len(ad.Credentials) != 1 || ad.Credentials[0].Authenticator.SignCount != 1 {
		t.Fatalf("stored credential %+v, want sign count 1", ad.Credentials)
	}
	// Step-up with the passkey on the full session.
	e.clock.Advance(adminauth.DefaultStepUp + 1)
	if _, err := e.auth.Authorize(ctx, full, authtest.Office, adminauth.PermPolicyWrite); !errors.Is(err, adminauth.ErrStepUpRequired) {
		t.Fatalf("Authorize after %v: error %v, want ErrStepUpRequired", adminauth.DefaultStepUp, err)
	}
	opts, err := e.auth.BeginWebAuthnProof(ctx, full, authtest.Office)
	if err != nil {
		t.Fatal(err)
	}
	up, err := e.auth.FinishWebAuthnProof(ctx, full, key.get(t, opts), authtest.Office)
	if err != nil {
		t.Fatalf("step-up with the passkey error %v", err)
	}
	if _, err := e.auth.Authorize(ctx, up, authtest.Office, adminauth.PermPolicyWrite); err != nil {
		t.Fatalf("Authorize after step-up error %v", err)
	}
}

// TestWebAuthnRefusals: responses a server must refuse, each on a fresh
// ceremony; none of them yields a session.
func TestWebAuthnRefusals(t *testing.T) {
	e := newWAEnv(t)
	key := newSoftAuthenticator(t)
	e.enrolPasskey(t, "sam", key)
	if _, err := e.passkeyLogin(t, "sam", key); err != nil {
		t.Fatalf("passkey login error %v", err)
	}
	tests := []struct {
		name   string
		answer func(t *testing.T, opts []byte) []byte
	}{
		{"other key, same credential ID", func(t *testing.T, opts []byte) []byte {
			k := newSoftAuthenticator(t)
			k.credID, k.count = key.credID, key.count
			key.count++
			return k.get(t, opts)
		}},
		{"wrong origin (phishing site)", func(t *testing.T, opts []byte) []byte {
			c := *key
			c.origin = "https://fleet.example.evil.test"
			r := c.get(t, opts)
			key.count = c.count
			return r
		}},
		{"wrong RP ID hash", func(t *testing.T, opts []byte) []byte {
			c := *key
			c.rpID = "evil.test"
			r := c.get(t, opts)
			key.count = c.count
			return r
		}},
		{"challenge of another ceremony", func(t *testing.T, opts []byte) []byte {
			return key.get(t, []byte(`{"publicKey":{"challenge":"`+b64u.EncodeToString(make([]byte, 32))+`"}}`))
		}},
		{"signature counter not advanced (cloned authenticator)", func(t *testing.T, opts []byte) []byte {
			ad, _ := e.st.AdminByName(ctx, "sam")
			stored := ad.Credentials[0].Authenticator.SignCount
			c := *key
			c.count = stored - 1 // get() presents the stored count again
			return c.get(t, opts)
		}},
		{"garbage", func(t *testing.T, opts []byte) []byte { return []byte(`{"id":"x"}`) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := e.auth.Login(ctx, "sam", "pw-sam", authtest.Office)
			if err != nil {
				t.Fatal(err)
			}
			opts, err := e.auth.BeginWebAuthnProof(ctx, r.Token, authtest.Office)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := e.auth.FinishWebAuthnProof(ctx, r.Token, tt.answer(t, opts), authtest.Office)
			t.Logf("refused: %v", err)
			if !errors.Is(err, adminauth.ErrBadCredentials) || tok != "" {
				t.Fatalf("FinishWebAuthnProof(%s) = %q, %v; want ErrBadCredentials", tt.name, tok, err)
			}
		})
	}
	// The right answer, replayed on a second ceremony, is refused: each
	// ceremony's challenge is used once.
	r, _ := e.auth.Login(ctx, "sam", "pw-sam", authtest.Office)
	opts, _ := e.auth.BeginWebAuthnProof(ctx, r.Token, authtest.Office)
	answer := key.get(t, opts)
	if _, err := e.auth.FinishWebAuthnProof(ctx, r.Token, answer, authtest.Office); err != nil {
		t.Fatalf("FinishWebAuthnProof error %v", err)
	}
	r2, _ := e.auth.Login(ctx, "sam", "pw-sam", authtest.Office)
	e.auth.BeginWebAuthnProof(ctx, r2.Token, authtest.Office)
	if _, err := e.auth.FinishWebAuthnProof(ctx, r2.Token, answer, authtest.Office); !errors.Is(err, adminauth.ErrBadCredentials) {
		t.Fatalf("replayed assertion error %v, want ErrBadCredentials", err)
	}
	// And finishing twice on one ceremony: the second finds none.
	if _, err := e.auth.FinishWebAuthnProof(ctx, r2.Token, answer, authtest.Office); !errors.Is(err, adminauth.ErrBadCredentials) {
		t.Fatalf("second finish of one ceremony error %v, want ErrBadCredentials", err)
	}
}

func TestWebAuthnRPIDMustBeDNSName(t *testing.T) {
	for _, tt := range []struct {
		rpID    string
		origins []string
		ok      bool
	}{
		{"fleet.example", []string{"https://fleet.example"}, true},
		{"example.org", []string{"https://fleet.example.org:8443"}, true},
		{"localhost", []string{"https://localhost:8443"}, true},
		{"192.0.2.1", []string{"https://192.0.2.1"}, false},
		{"::1", []string{"https://[::1]"}, false},
		{"[2001:db8::1]", []string{"https://[2001:db8::1]"}, false},
		{"fleet", []string{"https://fleet"}, false},
		{"Fleet.Example", []string{"https://fleet.example"}, false},
		{"fleet.example", []string{"http://fleet.example"}, false},
		{"fleet.example", []string{"https://evil.test"}, false},
		{"fleet.example", []string{"https://notfleet.example"}, false},
		{"fleet.example", nil, false},
		{"a.123", []string{"https://a.123"}, false},
	} {
		_, err := adminauth.NewWebAuthn(tt.rpID, "x", tt.origins)
		if (err == nil) != tt.ok {
			t.Errorf("NewWebAuthn(%q, %v) error %v, want ok %v", tt.rpID, tt.origins, err, tt.ok)
		}
	}
}
