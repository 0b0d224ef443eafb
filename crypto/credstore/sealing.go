package credstore

import (
	"bytes"
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/fleet/sealed"
	"github.com/hardphone/hardphone/hal/tpm"
)

// idSealing names the sealing key's record in the identity bucket. Its
// plaintext has the identity key's layout (identityKey): a TPM blob, or,
// with the software protector, the 32-byte P-256 private scalar.
const idSealing = "sealing"

// bucketSealed keeps, per credential name, what the last sealed value
// opened into that name was: record plaintext
//
//	| u64 BE document version the value was sealed for | SHA-256 of the sealed text |
//
// encrypted like any record (name bound in), so without the KEK nobody can
// lower the version to replay an older value.
var bucketSealed = []byte("sealed")

const adSealed = "sealed"

// CreateSealingKey makes the key the fleet seals this phone's secrets to:
// with the TPM protector an ECC P-256 key-agreement key the TPM generated
// and will never release (hal/tpm CreateECDHKey), with the software
// protector a P-256 key encrypted under the KEK. An existing key is kept
// unless replace is set (ErrExists); values sealed to a replaced key no
// longer open.
func (s *Store) CreateSealingKey(replace bool) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, err := s.currentKeysLocked()
	if err != nil {
		return fmt.Errorf("create sealing key: %w", err)
	}
	if !replace {
		if _, err := s.rawRecord(bucketIdentity, idSealing); err == nil {
			return fmt.Errorf("create sealing key: %w", ErrExists)
		}
	}
	key, err := s.p.impl.newSealingKey()
	if err != nil {
		return fmt.Errorf("create sealing key: %w", err)
	}
	pt := key.marshal()
	defer clear(pt)
	defer clear(key.pkcs8)
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := nested(tx, bucketIdentity)
		if err != nil {
			return err
		}
		rec, err := s.nextRecord(k, b, adIdentity, idSealing, pt)
		if err != nil {
			return err
		}
		return b.Put([]byte(idSealing), rec.bytes)
	})
	if err != nil {
		return fmt.Errorf("create sealing key: %w", err)
	}
	s.log.Info("sealing key created", "protection", key.protection)
	return nil
}

// sealingKeyLocked reads and decrypts the sealing key record. Callers hold
// mu (read) and clear the result's pkcs8.
func (s *Store) sealingKeyLocked(k *keys) (*identityKey, error) {
	rec, err := s.rawRecord(bucketIdentity, idSealing)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: no sealing key (the phone makes one before it enrols)", ErrNoIdentity)
	}
	if err != nil {
		return nil, err
	}
	_, pt, err := openRecord(k.aead, adIdentity, idSealing, rec)
	if err != nil {
		return nil, corrupt("sealing key", err)
	}
	defer clear(pt)
	key, err := parseIdentityKey(pt)
	if err != nil {
		return nil, corrupt("sealing key", err)
	}
	return key, nil
}

// SealingPublicKey returns the public half of the sealing key: what the
// fleet seals to (fleet/sealed.Seal). It wraps ErrNoIdentity when no key
// was created.
func (s *Store) SealingPublicKey() (*ecdh.PublicKey, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, err := s.currentKeysLocked()
	if err != nil {
		return nil, fmt.Errorf("sealing key: %w", err)
	}
	key, err := s.sealingKeyLocked(k)
	if err != nil {
		return nil, fmt.Errorf("sealing key: %w", err)
	}
	defer clear(key.pkcs8)
	pub, err := s.p.impl.sealingPublic(key)
	if err != nil {
		return nil, fmt.Errorf("sealing key: %w", err)
	}
	return pub, nil
}

// SealingAttestation is what the fleet needs to bind the sealing key to
// the TPM it enrolled: the key's TPMT_PUBLIC (whose attributes say the
// TPM made it and will never release it) and its TPM Name, for which the
// fleet makes a credential only that TPM can activate
// (ActivateSealingCredential). TPM only: ErrNoTPM with the software
// protector.
type SealingAttestation struct {
	Public, Name []byte
}

// SealingAttestation describes the sealing key for enrolment.
func (s *Store) SealingAttestation() (*SealingAttestation, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, blob, err := s.tpmSealingLocked()
	if err != nil {
		return nil, fmt.Errorf("sealing attestation: %w", err)
	}
	pub, name, err := tpm.PublicArea(blob)
	if err != nil {
		return nil, fmt.Errorf("sealing attestation: %w", corrupt("sealing key", err))
	}
	return &SealingAttestation{Public: pub, Name: name}, nil
}

// ActivateSealingCredential has the TPM open a credential the fleet made
// for the sealing key's Name and the EK of type ek (the same round as the
// identity key's ActivateCredential), proving the sealing key lives in
// the TPM the fleet enrols. The secret is returned as a Secret.
func (s *Store) ActivateSealingCredential(ek tpm.EKType, credentialBlob, encryptedSecret []byte) (Secret, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, blob, err := s.tpmSealingLocked()
	if err != nil {
		return nil, fmt.Errorf("activate sealing credential: %w", err)
	}
	secret, err := t.ActivateCredential(ek, blob, credentialBlob, encryptedSecret)
	if err != nil {
		s.log.Warn("sealing key credential refused", "ek_type", ek.String(), "err", err)
		return nil, fmt.Errorf("activate sealing credential: %w", err)
	}
	s.log.Info("sealing key credential activated", "ek_type", ek.String())
	return Secret(secret), nil
}

// tpmSealingLocked returns the TPM and the sealing key's blob. Callers
// hold mu (read).
func (s *Store) tpmSealingLocked() (*tpm.TPM, tpm.Blob, error) {
	tp, ok := s.p.impl.(*tpmProtector)
	if !ok {
		return nil, tpm.Blob{}, ErrNoTPM
	}
	k, err := s.currentKeysLocked()
	if err != nil {
		return nil, tpm.Blob{}, err
	}
	key, err := s.sealingKeyLocked(k)
	if err != nil {
		return nil, tpm.Blob{}, err
	}
	if key.protection != ProtectionTPM {
		return nil, tpm.Blob{}, fmt.Errorf("%w: sealing key is %s", ErrNoTPM, key.protection)
	}
	return tp.t, tpm.Blob{Public: slices.Clone(key.tpmBlob.Public), Private: slices.Clone(key.tpmBlob.Private)}, nil
}

// sealedMeta is the plaintext of a bucketSealed record.
type sealedMeta struct {
	version uint64
	sum     [sha256.Size]byte
}

func (m sealedMeta) marshal() []byte {
	b := binary.BigEndian.AppendUint64(nil, m.version)
	return append(b, m.sum[:]...)
}

func parseSealedMeta(b []byte) (sealedMeta, error) {
	if len(b) != 8+sha256.Size {
		return sealedMeta{}, fmt.Errorf("sealed record of %d bytes, want %d", len(b), 8+sha256.Size)
	}
	m := sealedMeta{version: binary.BigEndian.Uint64(b)}
	copy(m.sum[:], b[8:])
	return m, nil
}

// OpenSealed opens a value the fleet sealed to this phone's sealing key
// (fleet/sealed) and stores the plaintext under name, as Put would, in the
// same transaction that records which sealed value it came from: the
// plaintext goes from the TPM's shared secret straight into an encrypted
// record and is never written anywhere in clear.
//
// deviceID is this phone's fleet device ID and version the version of the
// configuration document carrying the value; the value must have been
// sealed for this device, this name and a document version not after
// version. A value sealed for an older version than the one name was last
// filled from is refused as a rollback; the very value that filled it is
// accepted again and changes nothing (no TPM operation), so applying the
// same document twice is harmless.
//
// Refusals wrap ErrSealed (with sealed.ErrOpen when the value is for
// another key, device, version or name, or altered), ErrNoIdentity when
// there is no sealing key; nothing is written then.
func (s *Store) OpenSealed(value, deviceID string, version uint64, name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("open sealed %q: %w", name, err)
	}
	box, err := sealed.Parse(value)
	if err != nil {
		return fmt.Errorf("open sealed %q: %w: %w", name, ErrSealed, err)
	}
	if box.Version > version {
		return fmt.Errorf("open sealed %q: %w: sealed for document version %d, carried by version %d", name, ErrSealed, box.Version, version)
	}
	sum := sha256.Sum256([]byte(value))
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, err := s.currentKeysLocked()
	if err != nil {
		return fmt.Errorf("open sealed %q: %w", name, err)
	}
	prev, have, err := s.sealedMetaLocked(k, name)
	if err != nil {
		return fmt.Errorf("open sealed %q: %w", name, err)
	}
	if have && prev.sum == sum {
		if _, err := s.rawRecord(bucketValues, name); err == nil {
			return nil
		}
	}
	if have && box.Version < prev.version {
		return fmt.Errorf("open sealed %q: %w: sealed for document version %d, older than the value in use (version %d)", name, ErrSealed, box.Version, prev.version)
	}
	key, err := s.sealingKeyLocked(k)
	if err != nil {
		return fmt.Errorf("open sealed %q: %w", name, err)
	}
	defer clear(key.pkcs8)
	pub, err := s.p.impl.sealingPublic(key)
	if err != nil {
		return fmt.Errorf("open sealed %q: %w", name, err)
	}
	z, err := s.p.impl.zgen(key, box.Ephemeral)
	if err != nil {
		return fmt.Errorf("open sealed %q: %w", name, err)
	}
	pt, err := box.Open(pub, z, sealed.Context{DeviceID: deviceID, Version: box.Version, Name: name})
	clear(z)
	if err != nil {
		s.log.Warn("sealed value refused", "name", name, "version", box.Version, "err", err)
		return fmt.Errorf("open sealed %q: %w: %w", name, ErrSealed, err)
	}
	defer clear(pt)
	if len(pt) > maxValueLen {
		return fmt.Errorf("open sealed %q: %w: %d bytes", name, errBadValue, len(pt))
	}
	meta := sealedMeta{version: box.Version, sum: sum}.marshal()
	var stored uint64
	err = s.db.Update(func(tx *bolt.Tx) error {
		vals, err := nested(tx, bucketValues)
		if err != nil {
			return err
		}
		rec, err := s.nextRecord(k, vals, adValues, name, pt)
		if err != nil {
			return err
		}
		if err := vals.Put([]byte(name), rec.bytes); err != nil {
			return err
		}
		stored = rec.version
		sb, err := nested(tx, bucketSealed)
		if err != nil {
			return err
		}
		mrec, err := s.nextRecord(k, sb, adSealed, name, meta)
		if err != nil {
			return err
		}
		return sb.Put([]byte(name), mrec.bytes)
	})
	if err != nil {
		return fmt.Errorf("open sealed %q: %w", name, err)
	}
	s.log.Info("sealed credential stored", "name", name, "sealed_version", box.Version, "version", stored)
	return nil
}

// sealedMetaLocked reads what last filled name from a sealed value.
func (s *Store) sealedMetaLocked(k *keys, name string) (sealedMeta, bool, error) {
	rec, err := s.rawRecord(bucketSealed, name)
	if errors.Is(err, ErrNotFound) {
		return sealedMeta{}, false, nil
	}
	if err != nil {
		return sealedMeta{}, false, err
	}
	_, pt, err := openRecord(k.aead, adSealed, name, rec)
	if err != nil {
		return sealedMeta{}, false, corrupt(fmt.Sprintf("sealed record %q", name), err)
	}
	m, err := parseSealedMeta(pt)
	if err != nil {
		return sealedMeta{}, false, corrupt(fmt.Sprintf("sealed record %q", name), err)
	}
	return m, true, nil
}

// scalarKey is the software sealing key's record content check.
func scalarKey(b []byte) (*ecdh.PrivateKey, error) {
	if len(b) != 32 {
		return nil, fmt.Errorf("sealing key scalar of %d bytes, want 32", len(b))
	}
	return ecdh.P256().NewPrivateKey(bytes.Clone(b))
}
