package tpm

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/asn1"
	"fmt"
	"io"
	"math/big"
	"slices"

	"github.com/google/go-tpm/tpm2"
)

// signingTemplate is an ECC P-256 ECDSA-SHA256 signing key that can never
// leave the TPM: FixedTPM and FixedParent forbid duplication, and
// SensitiveDataOrigin means the TPM generated the private key itself, so it
// never existed outside (TPM 2.0 Part 2 §8.3.2 TPMA_OBJECT). It is not
// Restricted: it signs digests computed outside the TPM, as TLS needs.
var signingTemplate = tpm2.TPMTPublic{
	Type:    tpm2.TPMAlgECC,
	NameAlg: tpm2.TPMAlgSHA256,
	ObjectAttributes: tpm2.TPMAObject{
		FixedTPM:            true,
		FixedParent:         true,
		SensitiveDataOrigin: true,
		UserWithAuth:        true,
		NoDA:                true,
		SignEncrypt:         true,
	},
	Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
		Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
		Scheme: tpm2.TPMTECCScheme{
			Scheme:  tpm2.TPMAlgECDSA,
			Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
		},
		CurveID: tpm2.TPMECCNistP256,
		KDF:     tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
	}),
	Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
		X: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
		Y: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
	}),
}

// CreateSigningKey makes a new ECC P-256 signing key under the SRK and
// returns its blob. The private key is generated inside the TPM and only
// ever leaves it encrypted under the SRK.
func (t *TPM) CreateSigningKey() (Blob, error) {
	var blob Blob
	err := t.do("create signing key", func(srk *object) error {
		// Nothing secret crosses the bus (the TPM makes the key and
		// returns it wrapped), so a password session is enough.
		rsp, err := tpm2.Create{
			ParentHandle: tpm2.AuthHandle{Handle: srk.handle, Name: srk.name, Auth: tpm2.PasswordAuth(nil)},
			InPublic:     tpm2.New2B(signingTemplate),
		}.Execute(t.tr)
		if err != nil {
			return err
		}
		blob = Blob{Public: slices.Clone(rsp.OutPublic.Bytes()), Private: slices.Clone(rsp.OutPrivate.Buffer)}
		return nil
	})
	return blob, err
}

// KeyInfo describes a signing key blob without loading it.
type KeyInfo struct {
	Public *ecdsa.PublicKey
	// NonExportable is FixedTPM && FixedParent && SensitiveDataOrigin: the
	// TPM made the key and will never release or duplicate it.
	NonExportable bool
}

// SigningKeyInfo parses the public area of a blob made by CreateSigningKey.
func SigningKeyInfo(b Blob) (KeyInfo, error) {
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](b.Public)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("%w: parse public area: %v", errNotSigningKey, err)
	}
	return keyInfo(pub)
}

func keyInfo(pub *tpm2.TPMTPublic) (KeyInfo, error) {
	a := pub.ObjectAttributes
	if pub.Type != tpm2.TPMAlgECC || !a.SignEncrypt || a.Decrypt || a.Restricted {
		return KeyInfo{}, fmt.Errorf("%w: type 0x%04x sign=%t decrypt=%t restricted=%t",
			errNotSigningKey, uint16(pub.Type), a.SignEncrypt, a.Decrypt, a.Restricted)
	}
	parms, err := pub.Parameters.ECCDetail()
	if err != nil {
		return KeyInfo{}, fmt.Errorf("%w: %v", errNotSigningKey, err)
	}
	if parms.CurveID != tpm2.TPMECCNistP256 {
		return KeyInfo{}, fmt.Errorf("%w: curve 0x%04x, want NIST P-256", errNotSigningKey, uint16(parms.CurveID))
	}
	point, err := pub.Unique.ECC()
	if err != nil {
		return KeyInfo{}, fmt.Errorf("%w: %v", errNotSigningKey, err)
	}
	if len(point.X.Buffer) > 32 || len(point.Y.Buffer) > 32 {
		return KeyInfo{}, fmt.Errorf("%w: point coordinates of %d and %d bytes", errNotSigningKey, len(point.X.Buffer), len(point.Y.Buffer))
	}
	// SEC 1 §2.3.3 uncompressed point: 0x04 || X || Y, each 32 bytes.
	enc := make([]byte, 65)
	enc[0] = 4
	copy(enc[1+32-len(point.X.Buffer):33], point.X.Buffer)
	copy(enc[33+32-len(point.Y.Buffer):], point.Y.Buffer)
	key, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), enc)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("%w: %v", errNotSigningKey, err)
	}
	return KeyInfo{Public: key, NonExportable: a.FixedTPM && a.FixedParent && a.SensitiveDataOrigin}, nil
}

// Signer is a crypto.Signer whose private key never leaves the TPM: Sign
// runs TPM2_Sign (TPM 2.0 Part 3 §20.2). It signs SHA-256 digests only
// (ECDSA over P-256 with SHA-256, the one TLS 1.3 scheme for P-256) and
// returns the ASN.1 DER signature crypto/tls and crypto/x509 expect. It is
// safe for concurrent use.
type Signer struct {
	t    *TPM
	blob Blob
	pub  *ecdsa.PublicKey
	// handle, name and closed are guarded by t.mu; handle is 0 while not
	// loaded.
	handle tpm2.TPMHandle
	name   tpm2.TPM2BName
	closed bool
}

// LoadSigner loads a blob made by CreateSigningKey. The key stays loaded
// until Close (or the TPM's Close) and is reloaded transparently after a
// TPM restart.
func (t *TPM) LoadSigner(b Blob) (*Signer, error) {
	info, err := SigningKeyInfo(b)
	if err != nil {
		return nil, fmt.Errorf("load signer: %w", err)
	}
	s := &Signer{t: t, blob: Blob{Public: slices.Clone(b.Public), Private: slices.Clone(b.Private)}, pub: info.Public}
	if err := t.do("load signer", s.loadLocked); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Signer) loadLocked(srk *object) error {
	if s.closed {
		return errClosed
	}
	if s.handle != 0 {
		return nil
	}
	obj, err := s.t.loadLocked(srk, s.blob)
	if err != nil {
		return err
	}
	s.handle, s.name = obj.handle, obj.name
	s.t.loaded[s] = struct{}{}
	return nil
}

// Public returns the *ecdsa.PublicKey.
func (s *Signer) Public() crypto.PublicKey { return s.pub }

// Sign signs a SHA-256 digest. rand is unused: the TPM draws its own nonce.
func (s *Signer) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts == nil || opts.HashFunc() != crypto.SHA256 || len(digest) != sha256.Size {
		return nil, fmt.Errorf("sign: %w (got hash %v, %d bytes)", errDigest, hashOf(opts), len(digest))
	}
	var sig []byte
	err := s.t.do("sign", func(srk *object) error {
		if err := s.loadLocked(srk); err != nil {
			return err
		}
		rsp, err := tpm2.Sign{
			// The digest and the signature are public: no session needed.
			KeyHandle: tpm2.AuthHandle{Handle: s.handle, Name: s.name, Auth: tpm2.PasswordAuth(nil)},
			Digest:    tpm2.TPM2BDigest{Buffer: digest},
			InScheme: tpm2.TPMTSigScheme{
				Scheme:  tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSchemeHash{HashAlg: tpm2.TPMAlgSHA256}),
			},
			// A NULL ticket: an unrestricted key may sign any digest
			// (TPM 2.0 Part 3 §20.2).
			Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
		}.Execute(s.t.tr)
		if err != nil {
			return err
		}
		ecc, err := rsp.Signature.Signature.ECDSA()
		if err != nil {
			return fmt.Errorf("signature is not ECDSA: %w", err)
		}
		// RFC 3279 §2.2.3: Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }.
		sig, err = asn1.Marshal(struct{ R, S *big.Int }{
			new(big.Int).SetBytes(ecc.SignatureR.Buffer),
			new(big.Int).SetBytes(ecc.SignatureS.Buffer),
		})
		return err
	})
	return sig, err
}

func hashOf(opts crypto.SignerOpts) any {
	if opts == nil {
		return "none"
	}
	return opts.HashFunc()
}

// Close unloads the key; Sign fails from then on.
func (s *Signer) Close() error {
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	s.closed = true
	if s.t.closed {
		return nil
	}
	return s.flushLocked()
}

func (s *Signer) flushLocked() error {
	if s.handle == 0 {
		return nil
	}
	h := s.handle
	s.handle = 0
	delete(s.t.loaded, s)
	return s.t.flush(h)
}

// unloadSignersLocked flushes every loaded signing key, freeing object
// slots for a sequence that needs more of them than a TPM without a
// resource manager has (swtpm and /dev/tpm0 hold three transient objects,
// and a persistent object takes one while a command uses it). Each signer
// reloads on its next Sign. Callers hold t.mu.
func (t *TPM) unloadSignersLocked() {
	for s := range t.loaded {
		// A flush that fails leaves the slot taken; the sequence then
		// fails with TPM_RC_OBJECT_MEMORY, which says why.
		_ = s.flushLocked()
	}
}
