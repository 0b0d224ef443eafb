package attest

import (
	"crypto/ecdh"
	"crypto/x509"
	"fmt"
)

// SealingAttributes is the TPMA_OBJECT of the phone's sealing key (the
// key-agreement key the fleet seals secrets to, hal/tpm CreateECDHKey),
// and the only one CheckSealingKey accepts (TPM 2.0 Part 2 §8.3):
//
//	fixedTPM            bit 1   never leaves this TPM, not even duplicated
//	fixedParent         bit 4   never re-parented
//	sensitiveDataOrigin bit 5   the TPM generated the private key itself
//	userWithAuth        bit 6   used with the (empty) authValue
//	noDA                bit 10  no dictionary-attack lockout on it
//	decrypt             bit 17  key agreement (TPM2_ECDH_ZGen)
//
// sign and restricted are clear: it signs nothing, and multiplies any
// point a sender gives it.
const SealingAttributes uint32 = 1<<1 | 1<<4 | 1<<5 | 1<<6 | 1<<10 | 1<<17

// SealingKey is a sealing key CheckSealingKey accepted.
type SealingKey struct {
	// Public is the P-256 key the fleet seals to; SPKI its DER
	// SubjectPublicKeyInfo, as the store keeps it.
	Public *ecdh.PublicKey
	SPKI   []byte
	// Name is the key's TPM Name: what MakeCredential binds the second
	// credential of an enrolment round to.
	Name []byte
}

// CheckSealingKey parses the sealing key's TPMT_PUBLIC as the phone sent
// it and accepts exactly what the credential store makes: an ECC P-256
// ECDH (SHA-256) key with SealingAttributes, SHA-256 nameAlg, no
// authPolicy, in the canonical encoding CheckIdentityKey documents. As
// there, the attributes are a claim until a credential made for the Name
// is activated in the TPM of the enrolled EK; then they mean "generated
// in this TPM and never leaving it". Errors wrap ErrSealingKey.
func CheckSealingKey(tpmtPublic []byte) (*SealingKey, error) {
	k, err := parseECCPublic(tpmtPublic, SealingAttributes, algECDH)
	if err != nil {
		return nil, fmt.Errorf("check sealing key: %w: %w", ErrSealingKey, err)
	}
	pub, err := k.Public.ECDH()
	if err != nil {
		return nil, fmt.Errorf("check sealing key: %w: %v", ErrSealingKey, err)
	}
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("check sealing key: %w: %v", ErrSealingKey, err)
	}
	return &SealingKey{Public: pub, SPKI: spki, Name: k.Name}, nil
}
