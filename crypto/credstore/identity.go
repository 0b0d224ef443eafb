package credstore

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/hal/tpm"
)

// Names of the identity records in the identity bucket.
const (
	idKey  = "key"
	idCert = "cert"
)

// maxChain bounds an imported certificate chain.
const maxChain = 8

// identityKey is the plaintext of the "key" record:
//
//	TPM:      | 0x01 | u16 BE len | TPM2B_PUBLIC contents | u16 BE len | TPM2B_PRIVATE contents |
//	software: | 0x02 | PKCS#8 DER |
//
// A TPM blob is useless outside its TPM; it is encrypted all the same, so
// a wipe (which destroys the KEK) also destroys the identity.
type identityKey struct {
	protection Protection
	tpmBlob    tpm.Blob
	pkcs8      []byte
}

func (k *identityKey) marshal() []byte {
	if k.protection == ProtectionSoftware {
		return append([]byte{byte(ProtectionSoftware)}, k.pkcs8...)
	}
	b := []byte{byte(ProtectionTPM)}
	for _, f := range [][]byte{k.tpmBlob.Public, k.tpmBlob.Private} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
		b = append(b, f...)
	}
	return b
}

func parseIdentityKey(b []byte) (*identityKey, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: %w", errKeyBlob, errShort)
	}
	switch Protection(b[0]) {
	case ProtectionSoftware:
		return &identityKey{protection: ProtectionSoftware, pkcs8: bytes.Clone(b[1:])}, nil
	case ProtectionTPM:
		rest := b[1:]
		var f [2][]byte
		for i := range f {
			if len(rest) < 2 || len(rest) < 2+int(binary.BigEndian.Uint16(rest)) {
				return nil, fmt.Errorf("%w: %w", errKeyBlob, errShort)
			}
			n := int(binary.BigEndian.Uint16(rest))
			f[i], rest = bytes.Clone(rest[2:2+n]), rest[2+n:]
		}
		if len(rest) != 0 {
			return nil, fmt.Errorf("%w: %d trailing bytes", errKeyBlob, len(rest))
		}
		return &identityKey{protection: ProtectionTPM, tpmBlob: tpm.Blob{Public: f[0], Private: f[1]}}, nil
	}
	return nil, fmt.Errorf("%w: kind %d unknown", errKeyBlob, b[0])
}

// loadedIdentity is the identity key loaded for signing.
type loadedIdentity struct {
	sum    [sha256.Size]byte // of the key record plaintext, to notice a new key
	signer signer
}

// dropIdentityLocked unloads the key. Callers hold idMu.
func (s *Store) dropIdentityLocked() error {
	if s.id == nil {
		return nil
	}
	err := s.id.signer.Close()
	s.id = nil
	if err != nil {
		return fmt.Errorf("unload identity key: %w", err)
	}
	return nil
}

// CreateIdentity makes a new device identity key: with the TPM protector an
// ECC P-256 key generated inside the TPM and never released by it, with the
// software protector a P-256 key encrypted under the KEK. An existing key
// is kept unless replace is set (ErrExists); replacing it also removes the
// certificate issued for the old key.
func (s *Store) CreateIdentity(replace bool) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, err := s.currentKeysLocked()
	if err != nil {
		return fmt.Errorf("create identity: %w", err)
	}
	if !replace {
		if _, err := s.rawRecord(bucketIdentity, idKey); err == nil {
			return fmt.Errorf("create identity: %w", ErrExists)
		}
	}
	key, err := s.p.impl.newIdentityKey()
	if err != nil {
		return fmt.Errorf("create identity: %w", err)
	}
	pt := key.marshal()
	defer clear(pt)
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := nested(tx, bucketIdentity)
		if err != nil {
			return err
		}
		rec, err := s.nextRecord(k, b, adIdentity, idKey, pt)
		if err != nil {
			return err
		}
		if err := b.Put([]byte(idKey), rec.bytes); err != nil {
			return err
		}
		return b.Delete([]byte(idCert))
	})
	if err != nil {
		return fmt.Errorf("create identity: %w", err)
	}
	s.idMu.Lock()
	derr := s.dropIdentityLocked()
	s.idMu.Unlock()
	s.log.Info("identity key created", "protection", key.protection)
	return derr
}

// signerLocked returns the loaded identity key, loading it when the stored
// key is not the one loaded. Callers hold mu (read).
func (s *Store) signerLocked(k *keys) (signer, error) {
	rec, err := s.rawRecord(bucketIdentity, idKey)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: no identity key (run `hardphone identity create`)", ErrNoIdentity)
	}
	if err != nil {
		return nil, err
	}
	_, pt, err := openRecord(k.aead, adIdentity, idKey, rec)
	if err != nil {
		return nil, corrupt("identity key", err)
	}
	defer clear(pt)
	sum := sha256.Sum256(pt)
	s.idMu.Lock()
	defer s.idMu.Unlock()
	if s.id != nil && s.id.sum == sum {
		return s.id.signer, nil
	}
	key, err := parseIdentityKey(pt)
	if err != nil {
		return nil, corrupt("identity key", err)
	}
	sg, err := s.p.impl.loadSigner(key)
	clear(key.pkcs8)
	if err != nil {
		return nil, err
	}
	if err := s.dropIdentityLocked(); err != nil {
		s.log.Warn("unload old identity key", "err", err)
	}
	s.id = &loadedIdentity{sum: sum, signer: sg}
	return sg, nil
}

// deviceKey is the crypto.Signer the store hands out. It wraps the loaded
// key so nothing can reach the key's own type (and its Close) through it,
// and it stops signing once the store is closed or the key replaced.
type deviceKey struct {
	store *Store
	s     signer
}

func (d deviceKey) Public() crypto.PublicKey { return d.s.Public() }

func (d deviceKey) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	d.store.mu.RLock()
	defer d.store.mu.RUnlock()
	if d.store.closed {
		return nil, fmt.Errorf("sign: %w", errClosed)
	}
	return d.s.Sign(r, digest, opts)
}

// LogValue keeps the key out of logs.
func (deviceKey) LogValue() slog.Value { return slog.StringValue(redacted) }

// String keeps the key out of %v.
func (deviceKey) String() string { return redacted }

// Signer returns the identity key as a crypto.Signer (ECDSA P-256 over
// SHA-256 digests). The private key cannot be had from it: with the TPM
// protector it is not in this process at all.
func (s *Store) Signer() (crypto.Signer, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, err := s.currentKeysLocked()
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	sg, err := s.signerLocked(k)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return deviceKey{s, sg}, nil
}

// CreateCSR returns a DER PKCS#10 certificate request for tmpl (subject,
// SANs), signed by the identity key.
func (s *Store) CreateCSR(tmpl *x509.CertificateRequest) ([]byte, error) {
	sg, err := s.Signer()
	if err != nil {
		return nil, fmt.Errorf("create CSR: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, tmpl, sg)
	if err != nil {
		return nil, fmt.Errorf("create CSR: %w", err)
	}
	return csr, nil
}

// ImportCertificate stores the certificate chain issued for the identity
// key, leaf first (DER). The leaf must carry the identity's public key and,
// if it restricts extended key usage, allow TLS client authentication.
func (s *Store) ImportCertificate(chain [][]byte) error {
	if len(chain) == 0 || len(chain) > maxChain {
		return fmt.Errorf("import certificate: chain of %d certificates, want 1..%d", len(chain), maxChain)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return fmt.Errorf("import certificate: leaf: %w", err)
	}
	for i, der := range chain[1:] {
		if _, err := x509.ParseCertificate(der); err != nil {
			return fmt.Errorf("import certificate: chain[%d]: %w", i+1, err)
		}
	}
	if err := clientAuthAllowed(leaf); err != nil {
		return fmt.Errorf("import certificate: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, err := s.currentKeysLocked()
	if err != nil {
		return fmt.Errorf("import certificate: %w", err)
	}
	sg, err := s.signerLocked(k)
	if err != nil {
		return fmt.Errorf("import certificate: %w", err)
	}
	if pub, ok := sg.Public().(*ecdsa.PublicKey); !ok || !pub.Equal(leaf.PublicKey) {
		return fmt.Errorf("import certificate %q: %w", leaf.Subject, errCertMatch)
	}
	pt := marshalChain(chain)
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := nested(tx, bucketIdentity)
		if err != nil {
			return err
		}
		rec, err := s.nextRecord(k, b, adIdentity, idCert, pt)
		if err != nil {
			return err
		}
		return b.Put([]byte(idCert), rec.bytes)
	})
	if err != nil {
		return fmt.Errorf("import certificate: %w", err)
	}
	s.log.Info("identity certificate imported", "subject", leaf.Subject.String(), "issuer", leaf.Issuer.String(), "not_after", leaf.NotAfter)
	return nil
}

func clientAuthAllowed(c *x509.Certificate) error {
	if len(c.ExtKeyUsage) == 0 {
		return nil
	}
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny {
			return nil
		}
	}
	return fmt.Errorf("certificate %q does not allow TLS client authentication (extended key usage)", c.Subject)
}

// A chain record's plaintext is each DER certificate prefixed by its u32 BE
// length, leaf first.
func marshalChain(chain [][]byte) []byte {
	var b []byte
	for _, der := range chain {
		b = binary.BigEndian.AppendUint32(b, uint32(len(der)))
		b = append(b, der...)
	}
	return b
}

func parseChain(b []byte) ([][]byte, error) {
	var chain [][]byte
	for len(b) > 0 {
		if len(b) < 4 || uint32(len(b)-4) < binary.BigEndian.Uint32(b) {
			return nil, fmt.Errorf("certificate chain: %w", errShort)
		}
		n := binary.BigEndian.Uint32(b)
		chain = append(chain, bytes.Clone(b[4:4+n]))
		b = b[4+n:]
		if len(chain) > maxChain {
			return nil, fmt.Errorf("certificate chain longer than %d", maxChain)
		}
	}
	if len(chain) == 0 {
		return nil, errors.New("certificate chain empty")
	}
	return chain, nil
}

// Identity returns the device's TLS client certificate: the imported chain
// with the identity key as its crypto.Signer PrivateKey, restricted to
// ECDSA-P256-SHA256 for TLS 1.2 and 1.3. It is what SIP mutual TLS uses:
//
//	cfg.Certificates = []tls.Certificate{*cert}
//
// It wraps ErrNoIdentity when there is no key or no certificate yet.
func (s *Store) Identity() (*tls.Certificate, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, err := s.currentKeysLocked()
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	sg, err := s.signerLocked(k)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	chain, leaf, err := s.chainLocked(k)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if pub, ok := sg.Public().(*ecdsa.PublicKey); !ok || !pub.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("identity: %w (create a CSR and import the new certificate)", errCertMatch)
	}
	return &tls.Certificate{
		Certificate: chain,
		PrivateKey:  deviceKey{s, sg},
		Leaf:        leaf,
		// TLS 1.2 would otherwise let the server pick ECDSA with SHA-384
		// or SHA-512 for a P-256 key; the identity key signs SHA-256 only.
		SupportedSignatureAlgorithms: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
	}, nil
}

// chainLocked reads the certificate chain. Callers hold mu (read).
func (s *Store) chainLocked(k *keys) ([][]byte, *x509.Certificate, error) {
	rec, err := s.rawRecord(bucketIdentity, idCert)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, fmt.Errorf("%w: no certificate imported (run `hardphone identity csr`, then `identity import-cert`)", ErrNoIdentity)
	}
	if err != nil {
		return nil, nil, err
	}
	_, pt, err := openRecord(k.aead, adIdentity, idCert, rec)
	if err != nil {
		return nil, nil, corrupt("identity certificate", err)
	}
	chain, err := parseChain(pt)
	if err != nil {
		return nil, nil, corrupt("identity certificate", err)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, nil, corrupt("identity certificate", err)
	}
	return chain, leaf, nil
}

// IdentityInfo is what `identity show` prints: facts about the key and its
// certificate, never the key.
type IdentityInfo struct {
	Protection Protection
	// KeyType is "ECDSA P-256".
	KeyType string
	// NonExportable is true when the TPM generated the key and will never
	// release or duplicate it (FixedTPM, FixedParent, SensitiveDataOrigin).
	NonExportable bool
	// PublicKeySHA256 is the SHA-256 of the DER SubjectPublicKeyInfo.
	PublicKeySHA256 [sha256.Size]byte
	// Certificate is the leaf, nil when none was imported.
	Certificate *x509.Certificate
	ChainLength int
	// CertificateErr is set when the certificate record is damaged or
	// does not match the key.
	CertificateErr error
}

// IdentityInfo describes the identity key and its certificate. It wraps
// ErrNoIdentity when there is no key.
func (s *Store) IdentityInfo() (IdentityInfo, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, err := s.currentKeysLocked()
	if err != nil {
		return IdentityInfo{}, fmt.Errorf("identity: %w", err)
	}
	sg, err := s.signerLocked(k)
	if err != nil {
		return IdentityInfo{}, fmt.Errorf("identity: %w", err)
	}
	pub, ok := sg.Public().(*ecdsa.PublicKey)
	if !ok {
		return IdentityInfo{}, fmt.Errorf("identity: public key is %T", sg.Public())
	}
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return IdentityInfo{}, fmt.Errorf("identity: %w", err)
	}
	info := IdentityInfo{Protection: s.rec.protection, KeyType: "ECDSA P-256", PublicKeySHA256: sha256.Sum256(spki)}
	if info.Protection == ProtectionTPM {
		rec, err := s.rawRecord(bucketIdentity, idKey)
		if err == nil {
			if _, pt, err := openRecord(k.aead, adIdentity, idKey, rec); err == nil {
				if key, err := parseIdentityKey(pt); err == nil {
					if ki, err := tpm.SigningKeyInfo(key.tpmBlob); err == nil {
						info.NonExportable = ki.NonExportable
					}
				}
				clear(pt)
			}
		}
	}
	chain, leaf, err := s.chainLocked(k)
	switch {
	case errors.Is(err, ErrNoIdentity):
	case err != nil:
		info.CertificateErr = err
	case !pub.Equal(leaf.PublicKey):
		info.CertificateErr = errCertMatch
	default:
		info.Certificate, info.ChainLength = leaf, len(chain)
	}
	return info, nil
}
