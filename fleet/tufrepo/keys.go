package tufrepo

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Key algorithms GenerateKey makes. Both are TUF key types every client
// verifies (specification §4.2: "ed25519" and "ecdsa-sha2-nistp256").
const (
	AlgECDSAP256 = "ecdsa-p256"
	AlgEd25519   = "ed25519"
)

// maxKeyFile bounds a key file read: a PEM key is a few hundred bytes.
const maxKeyFile = 16 << 10

// Key is one role key. With a private half (LoadKey) it signs; with only
// the public half (LoadPublicKey) it can be named in a role. Its String
// and LogValue never show the private key.
type Key struct {
	// signer is nil for a public-only key.
	signer crypto.Signer
	pub    crypto.PublicKey
	tuf    *metadata.Key
	id     string
}

// GenerateKey writes a new private key of algorithm alg (AlgECDSAP256 or
// AlgEd25519) to path as PKCS#8 PEM, mode 0600, refusing an existing file,
// and its public key to path+".pub" (PKIX PEM, 0644). It returns the key.
func GenerateKey(path, alg string) (*Key, error) {
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case AlgECDSAP256, "":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case AlgEd25519:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("generate key: algorithm %q, want %s or %s", alg, AlgECDSAP256, AlgEd25519)
	}
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	k, err := newKey(priv, priv.Public())
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	if err := writeExclusive(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	if err := writeExclusive(path+".pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return k, nil
}

func writeExclusive(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s: %w", path, ErrExists)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// LoadKey reads a private key file written by GenerateKey (or any PKCS#8
// PEM ECDSA P-256 or Ed25519 key). The file must be a regular file that
// only its owner may read or write (no permission bits for group or
// others): anything else is refused with ErrKeyFile before it is read.
func LoadKey(path string) (*Key, error) {
	b, err := readKeyFile(path, true)
	if err != nil {
		return nil, err
	}
	blk, rest := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("load key %s: want one PKCS#8 \"PRIVATE KEY\" PEM block: %w", path, ErrKeyFile)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("load key %s: %v: %w", path, err, ErrKeyFile)
	}
	var s crypto.Signer
	switch p := parsed.(type) {
	case *ecdsa.PrivateKey:
		if p.Curve != elliptic.P256() {
			return nil, fmt.Errorf("load key %s: ECDSA curve %s, want P-256: %w", path, p.Curve.Params().Name, ErrKeyFile)
		}
		s = p
	case ed25519.PrivateKey:
		s = p
	default:
		return nil, fmt.Errorf("load key %s: key type %T, want ECDSA P-256 or Ed25519: %w", path, parsed, ErrKeyFile)
	}
	k, err := newKey(s, s.Public())
	if err != nil {
		return nil, fmt.Errorf("load key %s: %w", path, err)
	}
	return k, nil
}

// LoadPublicKey reads a public key (PKIX "PUBLIC KEY" PEM, as FILE.pub from
// GenerateKey) or, given a private key file, its public half (LoadKey's
// permission rule applies then).
func LoadPublicKey(path string) (*Key, error) {
	b, err := readKeyFile(path, false)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("load public key %s: no PEM block: %w", path, ErrKeyFile)
	}
	if blk.Type == "PRIVATE KEY" {
		k, err := LoadKey(path)
		if err != nil {
			return nil, err
		}
		return k.Public(), nil
	}
	if blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("load public key %s: PEM block %q, want PUBLIC KEY: %w", path, blk.Type, ErrKeyFile)
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("load public key %s: %v: %w", path, err, ErrKeyFile)
	}
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		if p.Curve != elliptic.P256() {
			return nil, fmt.Errorf("load public key %s: ECDSA curve %s, want P-256: %w", path, p.Curve.Params().Name, ErrKeyFile)
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("load public key %s: key type %T, want ECDSA P-256 or Ed25519: %w", path, pub, ErrKeyFile)
	}
	k, err := newKey(nil, pub)
	if err != nil {
		return nil, fmt.Errorf("load public key %s: %w", path, err)
	}
	return k, nil
}

// readKeyFile reads a bounded regular file; private demands owner-only
// permissions, checked on the open file so a swap after the check cannot
// pass.
func readKeyFile(path string, private bool) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("load key %s: not a regular file: %w", path, ErrKeyFile)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("load key %s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("load key %s: larger than %d bytes: %w", path, maxKeyFile, ErrKeyFile)
	}
	isPrivate := bytes.Contains(b, []byte("PRIVATE KEY"))
	if (private || isPrivate) && st.Mode().Perm()&0o077 != 0 {
		// The key bytes are dropped unparsed: a key others could read is
		// not used, so nobody learns to rely on one.
		clear(b)
		return nil, fmt.Errorf("load key %s: mode %#o lets group or others in, want 0600: %w", path, st.Mode().Perm(), ErrKeyFile)
	}
	return b, nil
}

// NewKey wraps a signer (an HSM or TPM key, say) as a role key. Its public
// key must be ECDSA P-256 or Ed25519.
func NewKey(s crypto.Signer) (*Key, error) {
	if s == nil {
		return nil, fmt.Errorf("new key: nil signer: %w", ErrKeyFile)
	}
	return newKey(s, s.Public())
}

func newKey(s crypto.Signer, pub crypto.PublicKey) (*Key, error) {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		if p.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA curve %s, want P-256: %w", p.Curve.Params().Name, ErrKeyFile)
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("key type %T, want ECDSA P-256 or Ed25519: %w", pub, ErrKeyFile)
	}
	tk, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("tuf key: %w", err)
	}
	id, err := tk.ID()
	if err != nil {
		return nil, fmt.Errorf("tuf key ID: %w", err)
	}
	return &Key{signer: s, pub: pub, tuf: tk, id: id}, nil
}

// ID is the key's TUF key ID (specification §4.2: the hex SHA-256 of its
// canonical JSON form).
func (k *Key) ID() string { return k.id }

// Private reports whether the key can sign.
func (k *Key) Private() bool { return k.signer != nil }

// Public returns the key without its private half.
func (k *Key) Public() *Key { return &Key{pub: k.pub, tuf: k.tuf, id: k.id} }

// String names the key by its ID; it never shows private material.
func (k *Key) String() string {
	if k.signer != nil {
		return "private key " + k.id
	}
	return "public key " + k.id
}

// LogValue keeps the private key out of logs.
func (k *Key) LogValue() slog.Value {
	return slog.GroupValue(slog.String("key_id", k.id), slog.String("private", "REDACTED"))
}

// GoString keeps %#v from printing the private key.
func (k *Key) GoString() string { return k.String() }

// tufKey returns a copy of the key's TUF form for metadata.
func (k *Key) tufKey() *metadata.Key {
	return &metadata.Key{Type: k.tuf.Type, Scheme: k.tuf.Scheme, Value: metadata.KeyVal{PublicKey: k.tuf.Value.PublicKey}}
}

// tufSigner adapts the key to go-tuf's Sign, which takes sigstore's
// signature.Signer; any crypto.Signer works, so hardware keys can sign
// metadata.
type tufSigner struct{ k *Key }

var _ signature.Signer = tufSigner{}

func (s tufSigner) PublicKey(...signature.PublicKeyOption) (crypto.PublicKey, error) {
	return s.k.pub, nil
}

// SignMessage signs the canonical JSON go-tuf hands it: ECDSA P-256 over
// SHA-256 with an ASN.1 DER signature ("ecdsa-sha2-nistp256"), or Ed25519
// over the message itself.
func (s tufSigner) SignMessage(message io.Reader, _ ...signature.SignOption) ([]byte, error) {
	if s.k.signer == nil {
		return nil, fmt.Errorf("key %s has no private half", s.k.id)
	}
	msg, err := io.ReadAll(message)
	if err != nil {
		return nil, err
	}
	switch s.k.pub.(type) {
	case ed25519.PublicKey:
		return s.k.signer.Sign(rand.Reader, msg, crypto.Hash(0))
	default:
		d := sha256.Sum256(msg)
		return s.k.signer.Sign(rand.Reader, d[:], crypto.SHA256)
	}
}
