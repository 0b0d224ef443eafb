package api

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
)

// EK types, as hal/tpm and fleet/attest name them.
const (
	EKTypeRSA2048 = "rsa2048"
	EKTypeECCP256 = "ecc-p256"
	EKTypeECCP384 = "ecc-p384"
)

// Bounds on enrolment fields (the server checks the structures inside).
const (
	maxEKCert         = 8 << 10
	maxIdentityPublic = 512
	maxCSR            = 4 << 10
	maxCredentialBlob = 2 + 64 + 2 + 64
	maxEncSecret      = 512
	minSecret         = 16
	maxSecret         = 32
	maxChain          = 4
	maxCert           = 16 << 10
)

// EnrolStartRequest opens a credential-activation round: the phone shows
// the TPM's EK certificate and its identity key, and a CSR that key
// signed. Nothing in it is secret.
type EnrolStartRequest struct {
	// EKType names the EK the credential is to be made for: EKTypeRSA2048,
	// EKTypeECCP256 or EKTypeECCP384; the certificate's key must be of it.
	EKType string `json:"ek_type"`
	// EKCert is the DER EK certificate from the TPM's NV.
	EKCert []byte `json:"ek_cert"`
	// IdentityPublic is the identity key's TPMT_PUBLIC.
	IdentityPublic []byte `json:"identity_public"`
	// CSR is a DER PKCS#10 request signed by the identity key. Only its
	// key and signature count: the certificate's subject comes from the
	// fleet's device record.
	CSR []byte `json:"csr"`
	// SealingPublic is the TPMT_PUBLIC of the phone's sealing key (the
	// ECDH key the fleet seals its secrets to), when it has one. The
	// server then makes a second credential for that key's Name, which
	// the same TPM must activate: the key is bound to the enrolled TPM.
	// Optional: a phone without it enrols as before and is sent no
	// secrets.
	SealingPublic []byte `json:"sealing_public,omitempty"`
}

// Validate checks presence and sizes.
func (r *EnrolStartRequest) Validate() error {
	switch r.EKType {
	case EKTypeRSA2048, EKTypeECCP256, EKTypeECCP384:
	default:
		return fmt.Errorf("ek_type %.32q, want %s, %s or %s", r.EKType, EKTypeRSA2048, EKTypeECCP256, EKTypeECCP384)
	}
	if err := sized("ek_cert", r.EKCert, 1, maxEKCert); err != nil {
		return err
	}
	if err := sized("identity_public", r.IdentityPublic, 1, maxIdentityPublic); err != nil {
		return err
	}
	if err := sized("csr", r.CSR, 1, maxCSR); err != nil {
		return err
	}
	if r.SealingPublic != nil {
		return sized("sealing_public", r.SealingPublic, 1, maxIdentityPublic)
	}
	return nil
}

// EnrolStartResponse is the credential: only the TPM holding the EK, with
// the identity key loaded, can open it (TPM2_ActivateCredential).
type EnrolStartResponse struct {
	// ChallengeID names the round for EnrolFinishRequest (32 hex digits).
	ChallengeID string `json:"challenge_id"`
	// CredentialBlob and EncryptedSecret are the TPM2B_ID_OBJECT and
	// TPM2B_ENCRYPTED_SECRET contents.
	CredentialBlob  []byte `json:"credential_blob"`
	EncryptedSecret []byte `json:"encrypted_secret"`
	// ExpiresAt is when the round ends; finish before it.
	ExpiresAt time.Time `json:"expires_at"`
	// SealingCredentialBlob and SealingEncryptedSecret are the second
	// credential, for the sealing key's Name, present when the request
	// carried SealingPublic.
	SealingCredentialBlob  []byte `json:"sealing_credential_blob,omitempty"`
	SealingEncryptedSecret []byte `json:"sealing_encrypted_secret,omitempty"`
}

// Validate checks presence and sizes (a phone hands the blobs to its TPM).
func (r *EnrolStartResponse) Validate() error {
	if err := checkHexID("challenge_id", r.ChallengeID, 32); err != nil {
		return err
	}
	if err := sized("credential_blob", r.CredentialBlob, 1, maxCredentialBlob); err != nil {
		return err
	}
	if err := sized("encrypted_secret", r.EncryptedSecret, 1, maxEncSecret); err != nil {
		return err
	}
	if (r.SealingCredentialBlob == nil) != (r.SealingEncryptedSecret == nil) {
		return fmt.Errorf("sealing credential: blob and encrypted secret go together")
	}
	if r.SealingCredentialBlob != nil {
		if err := sized("sealing_credential_blob", r.SealingCredentialBlob, 1, maxCredentialBlob); err != nil {
			return err
		}
		return sized("sealing_encrypted_secret", r.SealingEncryptedSecret, 1, maxEncSecret)
	}
	return nil
}

// Secret is the activated credential secret. It never prints or logs; it
// marshals to JSON (base64) only inside EnrolFinishRequest.
type Secret []byte

// LogValue keeps the secret out of logs.
func (Secret) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// String keeps the secret out of %v.
func (Secret) String() string { return "REDACTED" }

// GoString keeps the secret out of %#v.
func (Secret) GoString() string { return "api.Secret(REDACTED)" }

// EnrolFinishRequest returns the secret the TPM activated.
type EnrolFinishRequest struct {
	ChallengeID string `json:"challenge_id"`
	Secret      Secret `json:"secret"`
	// SealingSecret is the second credential's secret, when the round
	// has one.
	SealingSecret Secret `json:"sealing_secret,omitempty"`
}

// MarshalJSON sends the secrets as base64; Secret alone would marshal so
// too, but spelling it out keeps the one place that puts them on the wire
// here.
func (r EnrolFinishRequest) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		ChallengeID   string `json:"challenge_id"`
		Secret        []byte `json:"secret"`
		SealingSecret []byte `json:"sealing_secret,omitempty"`
	}{r.ChallengeID, []byte(r.Secret), []byte(r.SealingSecret)})
}

// LogValue keeps the secrets out of logs.
func (r EnrolFinishRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("challenge_id", r.ChallengeID), slog.String("secret", "REDACTED"))
}

// Validate checks presence and sizes.
func (r *EnrolFinishRequest) Validate() error {
	if err := checkHexID("challenge_id", r.ChallengeID, 32); err != nil {
		return err
	}
	if err := sized("secret", r.Secret, minSecret, maxSecret); err != nil {
		return err
	}
	if r.SealingSecret != nil {
		return sized("sealing_secret", r.SealingSecret, minSecret, maxSecret)
	}
	return nil
}

// RenewRequest asks for a new certificate for the same identity key, over
// mutual TLS with the current one.
type RenewRequest struct {
	// CSR is a DER PKCS#10 request signed by the identity key.
	CSR []byte `json:"csr"`
}

// Validate checks presence and size.
func (r *RenewRequest) Validate() error { return sized("csr", r.CSR, 1, maxCSR) }

// CertificateResponse carries a device certificate (enrolment and
// renewal).
type CertificateResponse struct {
	// DeviceID is the fleet's name for the phone ("dev-" and 32 hex).
	DeviceID string `json:"device_id"`
	// Chain is the DER certificate, then the device CA's.
	Chain [][]byte `json:"chain"`
	// NotAfter is the certificate's expiry; RenewAfter when the phone
	// should renew it (two-thirds of its life).
	NotAfter   time.Time `json:"not_after"`
	RenewAfter time.Time `json:"renew_after"`
}

// Validate checks presence and sizes.
func (r *CertificateResponse) Validate() error {
	if err := checkDeviceID(r.DeviceID); err != nil {
		return err
	}
	if len(r.Chain) == 0 || len(r.Chain) > maxChain {
		return fmt.Errorf("chain of %d certificates, want 1..%d", len(r.Chain), maxChain)
	}
	for i, c := range r.Chain {
		if err := sized(fmt.Sprintf("chain[%d]", i), c, 1, maxCert); err != nil {
			return err
		}
	}
	return nil
}

func sized(field string, b []byte, min, max int) error {
	if len(b) < min || len(b) > max {
		return fmt.Errorf("%s of %d bytes, want %d..%d", field, len(b), min, max)
	}
	return nil
}

func checkHexID(field, s string, n int) error {
	if len(s) != n {
		return fmt.Errorf("%s of %d characters, want %d hex digits", field, len(s), n)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("%s: byte %d is not a lowercase hex digit", field, i)
		}
	}
	return nil
}

// checkDeviceID accepts the form of a fleet device ID: "dev-" and 32
// lowercase hex digits.
func checkDeviceID(s string) error {
	if len(s) != 36 || s[:4] != "dev-" {
		return fmt.Errorf("device_id %.40q, want \"dev-\" and 32 hex digits", s)
	}
	return checkHexID("device_id", s[4:], 32)
}

// ValidDeviceID reports whether s has the form of a device ID.
func ValidDeviceID(s string) bool { return checkDeviceID(s) == nil }
