package credstore

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
)

// kekFileHeader starts a software KEK file; the rest is the base64 KEK and
// a newline.
const kekFileHeader = "hardphone software KEK v1\n"

type softwareProtector struct {
	path string
}

// NewSoftwareProtector keeps the KEK in the file at path (created 0600 with
// a new store, refused if group or others can read it). It is for desktops
// without a TPM, chosen explicitly: whoever reads the file and the state
// database reads every secret, and Protection reports it as weaker.
func NewSoftwareProtector(path string) (*Protector, error) {
	if path == "" {
		return nil, errors.New("software protector: empty KEK file path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("software protector: %w", err)
	}
	return &Protector{impl: &softwareProtector{path: abs}}, nil
}

func (p *softwareProtector) protection() Protection { return ProtectionSoftware }
func (p *softwareProtector) pcrs() ([]int, bool)    { return nil, false }

// seal writes kek to a new file; an existing file is refused rather than
// overwritten, since it may hold another store's KEK.
func (p *softwareProtector) seal(kek []byte, _ []int) (*kekRecord, error) {
	if err := os.MkdirAll(filepath.Dir(p.path), 0o700); err != nil {
		return nil, fmt.Errorf("write KEK file: %w", err)
	}
	f, err := os.OpenFile(p.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("write KEK file %s: it exists, and this store has no KEK record: remove it, or restore the state file it belongs to", p.path)
	}
	if err != nil {
		return nil, fmt.Errorf("write KEK file: %w", err)
	}
	content := []byte(kekFileHeader + base64.StdEncoding.EncodeToString(kek) + "\n")
	defer clear(content)
	_, werr := f.Write(content)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return nil, fmt.Errorf("write KEK file %s: %w", p.path, err)
	}
	if err := syncDir(filepath.Dir(p.path)); err != nil {
		return nil, fmt.Errorf("write KEK file %s: %w", p.path, err)
	}
	return &kekRecord{protection: ProtectionSoftware}, nil
}

func (p *softwareProtector) unseal(rec *kekRecord) ([]byte, error) {
	if rec.protection != ProtectionSoftware {
		return nil, fmt.Errorf("%w: the store is %s-protected; opened with the software protector", ErrWrongProtector, rec.protection)
	}
	st, err := os.Stat(p.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: KEK file %s does not exist", ErrWrongProtector, p.path)
	}
	if err != nil {
		return nil, fmt.Errorf("read KEK file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("read KEK file %s: mode %v, want 0600", p.path, st.Mode().Perm())
	}
	b, err := os.ReadFile(p.path)
	if err != nil {
		return nil, fmt.Errorf("read KEK file: %w", err)
	}
	defer clear(b)
	body, ok := bytes.CutPrefix(b, []byte(kekFileHeader))
	if !ok {
		return nil, corrupt("KEK file "+p.path, errors.New("no header"))
	}
	kek := make([]byte, kekLen+2)
	n, err := base64.StdEncoding.Decode(kek, bytes.TrimSpace(body))
	if err != nil || n != kekLen {
		clear(kek)
		return nil, corrupt("KEK file "+p.path, fmt.Errorf("want %d base64 bytes", kekLen))
	}
	return kek[:kekLen], nil
}

// destroy overwrites the KEK file and removes it. On flash the old blocks
// may survive the overwrite; the software protector cannot do better, which
// is one reason it is the weaker one.
func (p *softwareProtector) destroy(*kekRecord) error {
	f, err := os.OpenFile(p.path, os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("destroy KEK file: %w", err)
	}
	st, err := f.Stat()
	if err == nil {
		_, err = f.WriteAt(make([]byte, st.Size()), 0)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("destroy KEK file %s: %w", p.path, err)
	}
	if err := os.Remove(p.path); err != nil {
		return fmt.Errorf("destroy KEK file: %w", err)
	}
	return syncDir(filepath.Dir(p.path))
}

func (p *softwareProtector) newIdentityKey() (*identityKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("create identity key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("create identity key: %w", err)
	}
	return &identityKey{protection: ProtectionSoftware, pkcs8: der}, nil
}

func (p *softwareProtector) loadSigner(k *identityKey) (signer, error) {
	if k.protection != ProtectionSoftware {
		return nil, fmt.Errorf("%w: identity key is %s, protector is software", ErrWrongProtector, k.protection)
	}
	key, err := x509.ParsePKCS8PrivateKey(k.pkcs8)
	if err != nil {
		return nil, corrupt("identity key", err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, corrupt("identity key", fmt.Errorf("%T is not an ECDSA P-256 key", key))
	}
	return &softSigner{key: ec, pub: &ec.PublicKey}, nil
}

func (p *softwareProtector) newSealingKey() (*identityKey, error) {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("create sealing key: %w", err)
	}
	return &identityKey{protection: ProtectionSoftware, pkcs8: k.Bytes()}, nil
}

func (p *softwareProtector) sealingKey(k *identityKey) (*ecdh.PrivateKey, error) {
	if k.protection != ProtectionSoftware {
		return nil, fmt.Errorf("%w: sealing key is %s, protector is software", ErrWrongProtector, k.protection)
	}
	priv, err := scalarKey(k.pkcs8)
	if err != nil {
		return nil, corrupt("sealing key", err)
	}
	return priv, nil
}

func (p *softwareProtector) sealingPublic(k *identityKey) (*ecdh.PublicKey, error) {
	priv, err := p.sealingKey(k)
	if err != nil {
		return nil, err
	}
	return priv.PublicKey(), nil
}

func (p *softwareProtector) zgen(k *identityKey, peer *ecdh.PublicKey) ([]byte, error) {
	priv, err := p.sealingKey(k)
	if err != nil {
		return nil, err
	}
	z, err := priv.ECDH(peer)
	if err != nil {
		return nil, fmt.Errorf("sealing key: %w", err)
	}
	return z, nil
}

// softSigner is the software identity key. Like the TPM signer it signs
// SHA-256 digests only, hides the private key behind crypto.Signer, and
// refuses to sign once closed.
type softSigner struct {
	mu  sync.Mutex
	key *ecdsa.PrivateKey // nil once closed; guarded by mu
	pub *ecdsa.PublicKey
}

func (s *softSigner) Public() crypto.PublicKey { return s.pub }

func (s *softSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts == nil || opts.HashFunc() != crypto.SHA256 || len(digest) != sha256.Size {
		return nil, fmt.Errorf("sign: identity key signs SHA-256 digests only (got %d bytes)", len(digest))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.key == nil {
		return nil, fmt.Errorf("sign: %w", errClosed)
	}
	return ecdsa.SignASN1(rand.Reader, s.key, digest)
}

// Close drops the key, so the process no longer holds it.
func (s *softSigner) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.key = nil
	return nil
}

// LogValue keeps the key out of logs.
func (*softSigner) LogValue() slog.Value { return slog.StringValue(redacted) }

// String keeps the key out of %v.
func (*softSigner) String() string { return redacted }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
