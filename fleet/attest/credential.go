package attest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// TPM algorithm identifiers (TCG Algorithm Registry) this package uses.
const (
	algSHA256 = 0x000b
	algSHA384 = 0x000c
)

// Bounds on the credential secret. TPM 2.0 Part 3 §12.6: the credential is
// a TPM2B_DIGEST, at most the largest digest the TPM implements, which is
// 32 bytes on a TPM with SHA-256 only; at least 16 so it cannot be guessed.
const (
	MinSecret = 16
	MaxSecret = 32
)

// MakeCredential does TPM2_MakeCredential (TPM 2.0 Part 3 §12.6) in
// software, following TPM 2.0 Part 1 §24 "Credential Protection":
//
//	seed            random, as long as a digest of the EK's nameAlg
//	encryptedSecret RSA EK: RSA-OAEP(seed) under the EK with the EK's nameAlg
//	                and label "IDENTITY\0"; ECC EK: an ephemeral point Q_e,
//	                the seed being KDFe(nameAlg, ECDH(d_e, EK), "IDENTITY",
//	                Q_e.x, EK.x) (Part 1 Annex C, "Secret Sharing")
//	symKey          KDFa(nameAlg, seed, "STORAGE", identityName, "", EK AES bits)
//	encIdentity     AES-CFB(symKey, IV = 0, TPM2B_DIGEST(secret))
//	hmacKey         KDFa(nameAlg, seed, "INTEGRITY", "", "", nameAlg bits)
//	credentialBlob  TPM2B_DIGEST(HMAC(hmacKey, encIdentity || identityName)) || encIdentity
//
// ekPub is the key of a certificate VerifyEK accepted; its type picks the
// TCG default template (L-1, L-2 or H-3) and with it nameAlg and the AES
// key size. identityName is the Name CheckIdentityKey returned. secret
// (MinSecret..MaxSecret bytes, fresh and random per attempt) comes back
// from the phone only if the TPM holding that EK also holds an object
// with that Name. credentialBlob and encryptedSecret are the contents of
// the TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET (no size prefix), as
// hal/tpm's ActivateCredential takes them.
//
// The cryptography is go-tpm's tpm2.CreateCredential, which implements
// both the RSA and the ECC secret sharing; the tests check it against
// swtpm's own TPM2_MakeCredential and TPM2_ActivateCredential.
func MakeCredential(ekPub crypto.PublicKey, identityName, secret []byte) (credentialBlob, encryptedSecret []byte, err error) {
	if len(secret) < MinSecret || len(secret) > MaxSecret {
		return nil, nil, fmt.Errorf("make credential: %w: %d bytes, want %d..%d", errSecret, len(secret), MinSecret, MaxSecret)
	}
	if err := checkName(identityName); err != nil {
		return nil, nil, fmt.Errorf("make credential: %w", err)
	}
	pub, err := ekPublicArea(ekPub)
	if err != nil {
		return nil, nil, fmt.Errorf("make credential: %w", err)
	}
	key, err := tpm2.ImportEncapsulationKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("make credential: EK: %w", err)
	}
	blob, enc, err := tpm2.CreateCredential(rand.Reader, key, identityName, secret)
	if err != nil {
		return nil, nil, fmt.Errorf("make credential: %w", err)
	}
	return blob, enc, nil
}

// checkName accepts the Name of an object with a SHA-256 nameAlg, the only
// kind CheckIdentityKey returns: TPM_ALG_SHA256 || SHA-256 digest.
func checkName(name []byte) error {
	if len(name) != 2+32 || binary.BigEndian.Uint16(name) != algSHA256 {
		return fmt.Errorf("%w: %d bytes, want 34 (SHA-256 nameAlg and digest)", errName, len(name))
	}
	return nil
}

// ekPublicArea builds the TPMT_PUBLIC of the EK of this key as the TCG
// default template made it. Only the type, nameAlg, symmetric definition
// and unique field enter the credential; the rest follows the template
// for the record.
func ekPublicArea(ekPub crypto.PublicKey) (*tpm2.TPMTPublic, error) {
	p, err := ekParamsOf(ekPub)
	if err != nil {
		return nil, err
	}
	sym := tpm2.TPMTSymDefObject{
		Algorithm: tpm2.TPMAlgAES,
		KeyBits:   tpm2.NewTPMUSymKeyBits(tpm2.TPMAlgAES, tpm2.TPMKeyBits(p.aesBits)),
		Mode:      tpm2.NewTPMUSymMode(tpm2.TPMAlgAES, tpm2.TPMAlgCFB),
	}
	switch k := ekPub.(type) {
	case *rsa.PublicKey:
		n, ok := leftPad(k.N.Bytes(), p.size)
		if !ok {
			return nil, fmt.Errorf("%w: RSA modulus longer than %d bytes", ErrUnsupportedEK, p.size)
		}
		pub := tpm2.RSAEKTemplate
		pub.Parameters = tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
			Symmetric: sym,
			Scheme:    tpm2.TPMTRSAScheme{Scheme: tpm2.TPMAlgNull},
			KeyBits:   2048,
		})
		pub.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: n})
		return &pub, nil
	case *ecdsa.PublicKey:
		point, err := k.Bytes()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnsupportedEK, err)
		}
		if len(point) != 1+2*p.size {
			return nil, fmt.Errorf("%w: point of %d bytes", ErrUnsupportedEK, len(point))
		}
		pub := tpm2.ECCEKTemplate
		curve := tpm2.TPMECCNistP256
		if p.nameAlg == algSHA384 {
			pub.NameAlg = tpm2.TPMAlgSHA384
			curve = tpm2.TPMECCNistP384
			// Template H-3: userWithAuth SET, PolicyB (SHA-384).
			pub.ObjectAttributes.UserWithAuth = true
			pub.AuthPolicy = tpm2.TPM2BDigest{Buffer: policyBSHA384}
		}
		pub.Parameters = tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Symmetric: sym,
			Scheme:    tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgNull},
			CurveID:   curve,
			KDF:       tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
		})
		pub.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: point[1 : 1+p.size]},
			Y: tpm2.TPM2BECCParameter{Buffer: point[1+p.size:]},
		})
		return &pub, nil
	}
	return nil, fmt.Errorf("%w: key %T", ErrUnsupportedEK, ekPub)
}

// policyBSHA384 is the authPolicy of the TCG high-range EK templates with a
// SHA-384 nameAlg (H-3).
var policyBSHA384 = []byte{
	0xb2, 0x6e, 0x7d, 0x28, 0xd1, 0x1a, 0x50, 0xbc, 0x53, 0xd8, 0x82, 0xbc,
	0xf5, 0xfd, 0x3a, 0x1a, 0x07, 0x41, 0x48, 0xbb, 0x35, 0xd3, 0xb4, 0xe4,
	0xcb, 0x1c, 0x0a, 0xd9, 0xbd, 0xe4, 0x19, 0xca, 0xcb, 0x47, 0xba, 0x09,
	0x69, 0x96, 0x46, 0x15, 0x0f, 0x9f, 0xc0, 0x00, 0xf3, 0xf8, 0x0e, 0x12,
}
