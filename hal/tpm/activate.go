package tpm

import (
	"errors"
	"fmt"
	"slices"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// Bounds on what a server may hand ActivateCredential, from the largest
// structures a TPM accepts (TPM 2.0 Part 2 §12.4.3 TPM2B_ID_OBJECT:
// integrityHMAC and encIdentity of at most a SHA-512 digest each, with
// their size fields; §11.4.33 TPM2B_ENCRYPTED_SECRET: an RSA-4096
// ciphertext at most).
const (
	maxCredentialBlob   = 2 + 64 + 2 + 64
	maxEncryptedSecret  = 512
	maxActivationSecret = 64
)

// maxRetry bounds how often a command answered TPM_RC_RETRY is sent again.
const maxRetry = 3

// PublicArea returns the TPMT_PUBLIC of a key blob (what TPM2_Create
// returned) and its TPM Name, nameAlg || H_nameAlg(TPMT_PUBLIC) (TPM 2.0
// Part 1 §16 "Names"). A server that makes a credential for this Name gets
// it activated only by the TPM the key is loaded in.
func PublicArea(b Blob) (public, name []byte, err error) {
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](b.Public)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: public area: %v", ErrBadBlob, err)
	}
	n, err := tpm2.ObjectName(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: name: %v", ErrBadBlob, err)
	}
	// The Name hashes the public area as the TPM marshals it; a blob the
	// TPM made is in that form, anything else is refused.
	if !slices.Equal(tpm2.Marshal(pub), b.Public) {
		return nil, nil, fmt.Errorf("%w: public area is not canonically encoded", ErrBadBlob)
	}
	return slices.Clone(b.Public), slices.Clone(n.Buffer), nil
}

// ActivateCredential runs TPM2_ActivateCredential (TPM 2.0 Part 3 §12.5):
// the TPM recovers the seed in encryptedSecret with the EK of type ek,
// derives the integrity and storage keys from it and from the Name of key
// (loaded from its blob), and returns the secret in credentialBlob only if
// the integrity HMAC over it and that Name verifies. So a credential made
// for the Name of a key in another TPM, or for a key that was never loaded
// here, or altered on the way, is refused (ErrActivation): this is what
// proves to a server that key lives in the TPM whose EK it certified.
//
// The EK is authorized as its template demands: a policy session holding
// PolicySecret(TPM_RH_ENDORSEMENT) for the low-range templates
// (userWithAuth clear), its empty authValue in an HMAC session for H-3. The
// key, in the ADMIN role, is authorized by its authValue in a session
// salted to the SRK that also encrypts the returned secret, so it never
// crosses the bus in clear.
func (t *TPM) ActivateCredential(ek EKType, key Blob, credentialBlob, encryptedSecret []byte) ([]byte, error) {
	switch {
	case len(credentialBlob) == 0 || len(credentialBlob) > maxCredentialBlob:
		return nil, fmt.Errorf("activate credential: credential blob is %d bytes, want 1..%d", len(credentialBlob), maxCredentialBlob)
	case len(encryptedSecret) == 0 || len(encryptedSecret) > maxEncryptedSecret:
		return nil, fmt.Errorf("activate credential: encrypted secret is %d bytes, want 1..%d", len(encryptedSecret), maxEncryptedSecret)
	}
	// The EK must be the certified one; ReadEK checks the certificate
	// against the derived key, so a TPM with a foreign template fails
	// before anything is decrypted.
	cert, err := t.EKCertificate(ek)
	if err != nil {
		return nil, fmt.Errorf("activate credential: %w", err)
	}
	certKey, err := certificateKey(cert)
	if err != nil {
		return nil, fmt.Errorf("activate credential: %w", err)
	}
	var secret []byte
	err = t.do("activate credential", func(srk *object) error {
		// SRK, key and EK: three slots, all there are without a resource
		// manager.
		t.unloadSignersLocked()
		obj, err := t.loadLocked(srk, key)
		if err != nil {
			return err
		}
		// The outcome is decided by ActivateCredential below; a failed
		// flush cannot change it.
		defer func() { _ = t.flush(obj.handle) }()
		ekObj, flushEK, err := t.ekLocked(srk, ek, certKey)
		if err != nil {
			return err
		}
		defer func() { _ = flushEK() }()

		var rsp *tpm2.ActivateCredentialResponse
		for try := 1; ; try++ {
			// Fresh sessions each try: a failed command flushed the last.
			rsp, err = tpm2.ActivateCredential{
				ActivateHandle: tpm2.AuthHandle{
					Handle: obj.handle, Name: obj.name,
					Auth: saltedHMAC(srk, nil, tpm2.AESEncryption(128, tpm2.EncryptOut)),
				},
				KeyHandle: tpm2.AuthHandle{
					Handle: ekObj.handle, Name: ekObj.name,
					Auth: ekAuth(srk, &ekObj.public),
				},
				CredentialBlob: tpm2.TPM2BIDObject{Buffer: credentialBlob},
				Secret:         tpm2.TPM2BEncryptedSecret{Buffer: encryptedSecret},
			}.Execute(t.tr)
			// TPM 2.0 Part 1, "Dictionary Attack Protection": the
			// first use of a DA-protected object's authValue after a
			// restart (the H-3 EK's, noDA CLEAR) may answer
			// TPM_RC_RETRY while the TPM records in NV that DA is in
			// use; the same command then succeeds.
			if err == nil || try == maxRetry || !errors.Is(err, tpm2.TPMRCRetry) {
				break
			}
		}
		if err != nil {
			return activationError(err)
		}
		if n := len(rsp.CertInfo.Buffer); n == 0 || n > maxActivationSecret {
			return fmt.Errorf("activated secret is %d bytes, want 1..%d", n, maxActivationSecret)
		}
		secret = slices.Clone(rsp.CertInfo.Buffer)
		clear(rsp.CertInfo.Buffer)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return secret, nil
}

// ekAuth authorizes the EK in the USER role. TPM 2.0 Part 1,
// "Authorization Roles": with userWithAuth CLEAR the USER role needs a
// policy session, here one that
// satisfies the L-templates' authPolicy, PolicySecret(TPM_RH_ENDORSEMENT);
// with it SET (the H templates) the empty authValue does.
func ekAuth(srk *object, pub *tpm2.TPMTPublic) tpm2.Session {
	if pub.ObjectAttributes.UserWithAuth {
		return saltedHMAC(srk, nil)
	}
	return tpm2.Policy(pub.NameAlg, 16, func(tr transport.TPM, h tpm2.TPMISHPolicy, nonceTPM tpm2.TPM2BNonce) error {
		_, err := tpm2.PolicySecret{
			AuthHandle:    tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: saltedHMAC(srk, nil)},
			PolicySession: h,
			NonceTPM:      nonceTPM,
		}.Execute(tr)
		if err != nil {
			return fmt.Errorf("policy secret (endorsement): %w", err)
		}
		return nil
	})
}

// activationError maps the TPM's refusals of a credential to
// ErrActivation: the integrity HMAC failed (another Name, or an altered
// blob) or the secret does not decrypt under this EK.
func activationError(err error) error {
	for _, rc := range []tpm2.TPMRC{tpm2.TPMRCIntegrity, tpm2.TPMRCValue, tpm2.TPMRCSize,
		tpm2.TPMRCECCPoint, tpm2.TPMRCNoResult, tpm2.TPMRCScheme, tpm2.TPMRCKey} {
		if errors.Is(err, rc) {
			return fmt.Errorf("%w: %v", ErrActivation, err)
		}
	}
	return err
}
