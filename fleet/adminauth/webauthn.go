package adminauth

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// maxWebAuthnResponse bounds a client's registration or assertion JSON.
const maxWebAuthnResponse = 64 << 10

// WebAuthn runs the registration and login ceremonies (W3C WebAuthn Level
// 3 §7.1, §7.2) over session data the caller stores between the two steps
// (server-side: the client must not be able to change it).
type WebAuthn struct {
	w *webauthn.WebAuthn
}

// NewWebAuthn configures the relying party. rpID must be a DNS name (the
// fleet server's host name): browsers refuse WebAuthn for an IP address
// (WebAuthn §5.1.3 step 8 takes the RP ID as a registrable domain
// suffix of the origin's effective domain, and an IP has none). Each
// origin must be https://rpID or https://<subdomain of rpID>, with an
// optional port.
func NewWebAuthn(rpID, displayName string, origins []string) (*WebAuthn, error) {
	if err := checkRPID(rpID); err != nil {
		return nil, err
	}
	if len(origins) == 0 {
		return nil, fmt.Errorf("webauthn: no origin: %w", ErrInvalid)
	}
	for _, o := range origins {
		u, err := url.Parse(o)
		if err != nil || u.Scheme != "https" || u.Path != "" || u.RawQuery != "" || u.User != nil {
			return nil, fmt.Errorf("webauthn: origin %q: want https://host[:port]: %w", o, ErrInvalid)
		}
		h := u.Hostname()
		if h != rpID && !strings.HasSuffix(h, "."+rpID) {
			return nil, fmt.Errorf("webauthn: origin %q is not within RP ID %q: %w", o, rpID, ErrInvalid)
		}
	}
	w, err := webauthn.New(&webauthn.Config{
		RPID: rpID, RPDisplayName: displayName, RPOrigins: origins,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			UserVerification: protocol.VerificationPreferred,
			ResidentKey:      protocol.ResidentKeyRequirementDiscouraged,
		},
		AttestationPreference: protocol.PreferNoAttestation,
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: DefaultPending, TimeoutUVD: DefaultPending},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: DefaultPending, TimeoutUVD: DefaultPending},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("webauthn: %w", err)
	}
	return &WebAuthn{w: w}, nil
}

// checkRPID accepts a DNS name: not an IP literal, labels of [a-z0-9-]
// not starting or ending with '-', at least one dot or "localhost".
func checkRPID(id string) error {
	bad := func(why string) error { return fmt.Errorf("webauthn: RP ID %q: %s: %w", id, why, ErrInvalid) }
	if id == "" || len(id) > 253 {
		return bad("want 1..253 characters")
	}
	if net.ParseIP(strings.Trim(id, "[]")) != nil {
		return bad("an IP address: WebAuthn needs a DNS name (browsers refuse IP origins)")
	}
	if id != strings.ToLower(id) {
		return bad("want lowercase")
	}
	labels := strings.Split(id, ".")
	if len(labels) < 2 && id != "localhost" {
		return bad("want a fully qualified name")
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' || strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			return bad("label " + l)
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return bad("numeric top-level label")
	}
	return nil
}

// webauthnUser adapts an Admin to webauthn.User.
type webauthnUser struct{ a *Admin }

func (u webauthnUser) WebAuthnID() []byte {
	b, _ := hex.DecodeString(u.a.ID) // Validate made it 32 hex digits
	return b
}
func (u webauthnUser) WebAuthnName() string                       { return u.a.Name }
func (u webauthnUser) WebAuthnDisplayName() string                { return u.a.Name }
func (u webauthnUser) WebAuthnCredentials() []webauthn.Credential { return u.a.Credentials }

// BeginRegistration starts enrolling a passkey for a: it returns the
// options for navigator.credentials.create (JSON) and the session data to
// keep for FinishRegistration. Credentials a already has are excluded.
func (w *WebAuthn) BeginRegistration(a *Admin) (options, session []byte, err error) {
	if len(a.Credentials) >= MaxCredentials {
		return nil, nil, fmt.Errorf("webauthn registration: %d credentials already: %w", len(a.Credentials), ErrInvalid)
	}
	var exclude []protocol.CredentialDescriptor
	for _, c := range a.Credentials {
		exclude = append(exclude, c.Descriptor())
	}
	creation, sd, err := w.w.BeginRegistration(webauthnUser{a}, webauthn.WithExclusions(exclude))
	if err != nil {
		return nil, nil, fmt.Errorf("webauthn registration: %w", err)
	}
	return marshalCeremony(creation, sd)
}

// FinishRegistration checks the client's response (the JSON of the
// PublicKeyCredential navigator.credentials.create returned) against the
// session data and returns the new credential to store.
func (w *WebAuthn) FinishRegistration(a *Admin, session, response []byte) (webauthn.Credential, error) {
	sd, err := unmarshalSession(session)
	if err != nil {
		return webauthn.Credential{}, err
	}
	if len(response) > maxWebAuthnResponse {
		return webauthn.Credential{}, fmt.Errorf("webauthn registration: response of %d bytes: %w", len(response), ErrInvalid)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return webauthn.Credential{}, fmt.Errorf("webauthn registration: %v: %w", err, ErrBadCredentials)
	}
	c, err := w.w.CreateCredential(webauthnUser{a}, sd, parsed)
	if err != nil {
		return webauthn.Credential{}, fmt.Errorf("webauthn registration: %v: %w", err, ErrBadCredentials)
	}
	for _, have := range a.Credentials {
		if bytes.Equal(have.ID, c.ID) {
			return webauthn.Credential{}, fmt.Errorf("webauthn registration: credential already registered: %w", ErrExists)
		}
	}
	return *c, nil
}

// BeginLogin starts an assertion for a's credentials: the options for
// navigator.credentials.get and the session data to keep.
func (w *WebAuthn) BeginLogin(a *Admin) (options, session []byte, err error) {
	if len(a.Credentials) == 0 {
		return nil, nil, fmt.Errorf("webauthn login: no credential registered: %w", ErrInvalid)
	}
	assertion, sd, err := w.w.BeginLogin(webauthnUser{a})
	if err != nil {
		return nil, nil, fmt.Errorf("webauthn login: %w", err)
	}
	return marshalCeremony(assertion, sd)
}

// FinishLogin checks an assertion and returns the credential as it must
// now be stored (its signature counter advanced). A counter that did not
// advance (a cloned authenticator, WebAuthn §6.1.1) is refused.
func (w *WebAuthn) FinishLogin(a *Admin, session, response []byte) (webauthn.Credential, error) {
	sd, err := unmarshalSession(session)
	if err != nil {
		return webauthn.Credential{}, err
	}
	if len(response) > maxWebAuthnResponse {
		return webauthn.Credential{}, fmt.Errorf("webauthn login: response of %d bytes: %w", len(response), ErrInvalid)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return webauthn.Credential{}, fmt.Errorf("webauthn login: %v: %w", err, ErrBadCredentials)
	}
	c, err := w.w.ValidateLogin(webauthnUser{a}, sd, parsed)
	if err != nil {
		return webauthn.Credential{}, fmt.Errorf("webauthn login: %v: %w", err, ErrBadCredentials)
	}
	if c.Authenticator.CloneWarning {
		return webauthn.Credential{}, fmt.Errorf("webauthn login: signature counter did not advance (cloned authenticator?): %w", ErrBadCredentials)
	}
	return *c, nil
}

func marshalCeremony(options any, sd *webauthn.SessionData) ([]byte, []byte, error) {
	o, err := json.Marshal(options)
	if err != nil {
		return nil, nil, fmt.Errorf("webauthn: %w", err)
	}
	s, err := json.Marshal(sd)
	if err != nil {
		return nil, nil, fmt.Errorf("webauthn: %w", err)
	}
	if len(s) > MaxCeremony {
		return nil, nil, fmt.Errorf("webauthn: session data of %d bytes: %w", len(s), ErrInvalid)
	}
	return o, s, nil
}

func unmarshalSession(b []byte) (webauthn.SessionData, error) {
	var sd webauthn.SessionData
	if len(b) == 0 || len(b) > MaxCeremony {
		return sd, fmt.Errorf("webauthn: no ceremony in progress: %w", ErrBadCredentials)
	}
	if err := json.Unmarshal(b, &sd); err != nil {
		return sd, fmt.Errorf("webauthn: session data: %v: %w", err, ErrInvalid)
	}
	if !sd.Expires.IsZero() && time.Now().After(sd.Expires) {
		return sd, fmt.Errorf("webauthn: ceremony expired: %w", ErrBadCredentials)
	}
	return sd, nil
}
