package credstore

import (
	"errors"
	"fmt"
	"slices"

	"github.com/hardphone/hardphone/hal/tpm"
)

// Attestation is what the phone sends the fleet so it can check that the
// identity key lives in this device's TPM (fleet/attest: VerifyEK,
// CheckIdentityKey, MakeCredential). Nothing in it is secret.
type Attestation struct {
	// EKType is the endorsement key the fleet is to make the credential
	// for; ActivateCredential must be given the same.
	EKType tpm.EKType
	// EKCertificate is the DER EK certificate the TPM's manufacturer stored
	// in it. The TPM's EK was checked to be the key it certifies.
	EKCertificate []byte
	// IdentityPublic is the identity key's TPMT_PUBLIC and IdentityName its
	// TPM Name, nameAlg || SHA-256(IdentityPublic).
	IdentityPublic, IdentityName []byte
}

// IdentityAttestation describes the identity key and the TPM it lives in,
// for attested enrolment. prefer lists the EK types to try, in order; none
// means tpm.EKTypes(). It wraps ErrNoIdentity when there is no identity
// key, ErrNoTPM with the software protector, and tpm.ErrNoEKCert when the
// TPM holds no EK certificate of any type tried.
func (s *Store) IdentityAttestation(prefer ...tpm.EKType) (*Attestation, error) {
	if len(prefer) == 0 {
		prefer = tpm.EKTypes()
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, blob, err := s.tpmIdentityLocked()
	if err != nil {
		return nil, fmt.Errorf("identity attestation: %w", err)
	}
	pub, name, err := tpm.PublicArea(blob)
	if err != nil {
		return nil, fmt.Errorf("identity attestation: %w", corrupt("identity key", err))
	}
	var tried []error
	for _, k := range prefer {
		ek, err := t.ReadEK(k)
		if errors.Is(err, tpm.ErrNoEKCert) {
			tried = append(tried, err)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("identity attestation: %w", err)
		}
		return &Attestation{EKType: k, EKCertificate: ek.Certificate, IdentityPublic: pub, IdentityName: name}, nil
	}
	return nil, fmt.Errorf("identity attestation: no EK certificate of the types %v: %w", prefer, errors.Join(tried...))
}

// ActivateCredential has the TPM open a credential the fleet made with
// fleet/attest.MakeCredential for the identity key's Name and the EK of
// type ek, and returns the secret in it, which proves to the fleet that
// the identity key is in this TPM. The secret crosses the TPM bus
// encrypted and is returned as a Secret, which never prints or logs; the
// caller sends it to the fleet and zeroes it. It wraps tpm.ErrActivation
// when the TPM refuses (the credential was made for another key or TPM,
// or altered), ErrNoIdentity and ErrNoTPM as IdentityAttestation does.
func (s *Store) ActivateCredential(ek tpm.EKType, credentialBlob, encryptedSecret []byte) (Secret, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, blob, err := s.tpmIdentityLocked()
	if err != nil {
		return nil, fmt.Errorf("activate credential: %w", err)
	}
	secret, err := t.ActivateCredential(ek, blob, credentialBlob, encryptedSecret)
	if err != nil {
		s.log.Warn("identity credential refused", "ek_type", ek.String(), "err", err)
		return nil, fmt.Errorf("activate credential: %w", err)
	}
	s.log.Info("identity credential activated", "ek_type", ek.String())
	return Secret(secret), nil
}

// tpmIdentityLocked returns the TPM and the identity key's blob. Callers
// hold mu (read).
func (s *Store) tpmIdentityLocked() (*tpm.TPM, tpm.Blob, error) {
	tp, ok := s.p.impl.(*tpmProtector)
	if !ok {
		return nil, tpm.Blob{}, ErrNoTPM
	}
	k, err := s.currentKeysLocked()
	if err != nil {
		return nil, tpm.Blob{}, err
	}
	rec, err := s.rawRecord(bucketIdentity, idKey)
	if errors.Is(err, ErrNotFound) {
		return nil, tpm.Blob{}, fmt.Errorf("%w: no identity key (run `hardphone identity create`)", ErrNoIdentity)
	}
	if err != nil {
		return nil, tpm.Blob{}, err
	}
	_, pt, err := openRecord(k.aead, adIdentity, idKey, rec)
	if err != nil {
		return nil, tpm.Blob{}, corrupt("identity key", err)
	}
	defer clear(pt)
	key, err := parseIdentityKey(pt)
	if err != nil {
		return nil, tpm.Blob{}, corrupt("identity key", err)
	}
	if key.protection != ProtectionTPM {
		return nil, tpm.Blob{}, fmt.Errorf("%w: identity key is %s", ErrNoTPM, key.protection)
	}
	return tp.t, tpm.Blob{Public: slices.Clone(key.tpmBlob.Public), Private: slices.Clone(key.tpmBlob.Private)}, nil
}
