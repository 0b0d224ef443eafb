package client

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"

	"github.com/hardphone/hardphone/fleet/api"
)

// Attestation is what the phone shows at the start of an enrolment.
type Attestation struct {
	// EKType is api.EKTypeRSA2048, EKTypeECCP256 or EKTypeECCP384.
	EKType string
	// EKCert is the DER EK certificate, IdentityPublic the identity key's
	// TPMT_PUBLIC, CSR a DER request the identity key signed.
	EKCert, IdentityPublic, CSR []byte
}

// Attester is the TPM side of an enrolment round: the phone's credential
// store, or a factory station driving the phone's TPM.
type Attester interface {
	// Attest describes the identity key and the TPM it lives in.
	Attest(ctx context.Context) (*Attestation, error)
	// Activate has the TPM open the credential for the EK of ekType and
	// returns the secret in it.
	Activate(ctx context.Context, ekType string, credentialBlob, encryptedSecret []byte) (api.Secret, error)
}

// SealingAttester is an Attester whose TPM also holds a sealing key (the
// key the fleet seals secrets to: crypto/credstore's SealingAttestation
// and ActivateSealingCredential). Enrol proves it to the fleet in the
// same round when the attester implements this.
type SealingAttester interface {
	Attester
	// SealingPublic returns the sealing key's TPMT_PUBLIC; nil when the
	// phone has none.
	SealingPublic(ctx context.Context) ([]byte, error)
	// ActivateSealing has the TPM open the credential made for the
	// sealing key and returns its secret.
	ActivateSealing(ctx context.Context, ekType string, credentialBlob, encryptedSecret []byte) (api.Secret, error)
}

// EnrolStart sends the start of an enrolment round.
func (c *Client) EnrolStart(ctx context.Context, req api.EnrolStartRequest) (*api.EnrolStartResponse, error) {
	var out api.EnrolStartResponse
	if err := c.postJSON(ctx, api.PathEnrolStart, req, &out); err != nil {
		return nil, err
	}
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("enrol start answer: %w", err)
	}
	return &out, nil
}

// EnrolFinish returns the activated secret.
func (c *Client) EnrolFinish(ctx context.Context, req api.EnrolFinishRequest) (*api.CertificateResponse, error) {
	var out api.CertificateResponse
	if err := c.postJSON(ctx, api.PathEnrolFinish, req, &out); err != nil {
		return nil, err
	}
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("enrol finish answer: %w", err)
	}
	return &out, nil
}

// Enrol runs one enrolment round: attest, start, activate, finish. The
// certificate it returns carries key (the identity key, which the
// attestation's CSR was made with) and chains to deviceCA when that is
// given; the caller imports it.
func (c *Client) Enrol(ctx context.Context, a Attester, key crypto.PublicKey, deviceCA *x509.Certificate) (*api.CertificateResponse, error) {
	att, err := a.Attest(ctx)
	if err != nil {
		return nil, fmt.Errorf("enrol: %w", err)
	}
	req := api.EnrolStartRequest{EKType: att.EKType, EKCert: att.EKCert, IdentityPublic: att.IdentityPublic, CSR: att.CSR}
	sa, sealing := a.(SealingAttester)
	if sealing {
		if req.SealingPublic, err = sa.SealingPublic(ctx); err != nil {
			return nil, fmt.Errorf("enrol: %w", err)
		}
	}
	start, err := c.EnrolStart(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("enrol: %w", err)
	}
	secret, err := a.Activate(ctx, att.EKType, start.CredentialBlob, start.EncryptedSecret)
	if err != nil {
		return nil, fmt.Errorf("enrol: %w", err)
	}
	defer clear(secret)
	fin := api.EnrolFinishRequest{ChallengeID: start.ChallengeID, Secret: secret}
	// A server that predates sealing keys sends no second credential: the
	// phone enrols without, and is sent no secrets.
	if sealing && req.SealingPublic != nil && start.SealingCredentialBlob != nil {
		if fin.SealingSecret, err = sa.ActivateSealing(ctx, att.EKType, start.SealingCredentialBlob, start.SealingEncryptedSecret); err != nil {
			return nil, fmt.Errorf("enrol: %w", err)
		}
		defer clear(fin.SealingSecret)
	}
	resp, err := c.EnrolFinish(ctx, fin)
	if err != nil {
		return nil, fmt.Errorf("enrol: %w", err)
	}
	if err := CheckIssued(resp, key, deviceCA); err != nil {
		return nil, fmt.Errorf("enrol: %w", err)
	}
	return resp, nil
}

// CheckIssued checks an issued certificate before anyone stores it: it
// parses, carries key, allows TLS client authentication and, when
// deviceCA is given, verifies under it.
func CheckIssued(resp *api.CertificateResponse, key crypto.PublicKey, deviceCA *x509.Certificate) error {
	leaf, err := x509.ParseCertificate(resp.Chain[0])
	if err != nil {
		return fmt.Errorf("issued certificate: %w", err)
	}
	if eq, ok := key.(interface{ Equal(crypto.PublicKey) bool }); key != nil && (!ok || !eq.Equal(leaf.PublicKey)) {
		return fmt.Errorf("issued certificate %q is not for the identity key", leaf.Subject)
	}
	if leaf.Subject.CommonName != resp.DeviceID {
		return fmt.Errorf("issued certificate names %q, the answer %q", leaf.Subject.CommonName, resp.DeviceID)
	}
	if deviceCA != nil {
		roots := x509.NewCertPool()
		roots.AddCert(deviceCA)
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			return fmt.Errorf("issued certificate %q: %w", leaf.Subject, err)
		}
	}
	return nil
}
