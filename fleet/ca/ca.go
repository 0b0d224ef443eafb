package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"
)

// maxPEMFile bounds a certificate or key file read here.
const maxPEMFile = 64 << 10

// CA is a loaded certificate authority: its certificate and signing key.
// It is safe for concurrent use.
type CA struct {
	cert *x509.Certificate // never nil
	key  crypto.Signer     // never nil; the private key of cert
}

// Load reads a CA certificate (PEM) and its private key (PEM PKCS#8 or
// SEC 1, ECDSA P-256 or P-384). The key file must be a regular file that
// only its owner may read (ErrKeyPermissions), and the key must be the
// certificate's. The certificate must be a CA allowed to sign
// certificates.
func Load(certFile, keyFile string) (*CA, error) {
	cert, err := LoadCertificate(certFile)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	key, err := LoadKey(keyFile)
	if err != nil {
		return nil, fmt.Errorf("load CA %q: %w", cert.Subject, err)
	}
	return New(cert, key)
}

// New makes a CA of a certificate and its key.
func New(cert *x509.Certificate, key crypto.Signer) (*CA, error) {
	if cert == nil || key == nil {
		return nil, errors.New("new CA: nil certificate or key")
	}
	if !cert.IsCA || !cert.BasicConstraintsValid || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("new CA: %q is not a CA certificate with keyCertSign", cert.Subject)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("new CA: the key is not the key of %q", cert.Subject)
	}
	return &CA{cert: cert, key: key}, nil
}

// Certificate returns the CA certificate.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// Pool returns a pool holding only this CA.
func (c *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.cert)
	return p
}

// LogValue shows the subject, never the key.
func (c *CA) LogValue() slog.Value {
	return slog.GroupValue(slog.String("subject", c.cert.Subject.String()), slog.String("key", "REDACTED"))
}

// String keeps the key out of %v.
func (c *CA) String() string { return "CA(" + c.cert.Subject.String() + ")" }

// LoadCertificate reads the first PEM certificate of a file.
func LoadCertificate(path string) (*x509.Certificate, error) {
	certs, err := LoadCertificates(path)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// LoadCertificates reads every PEM certificate of a file (at least one).
func LoadCertificates(path string) ([]*x509.Certificate, error) {
	b, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %s: %w", path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("certificate %s: no PEM CERTIFICATE block", path)
	}
	return certs, nil
}

// LoadPool reads the PEM certificates of files into a pool.
func LoadPool(paths ...string) (*x509.CertPool, error) {
	if len(paths) == 0 {
		return nil, errors.New("load pool: no files")
	}
	p := x509.NewCertPool()
	for _, path := range paths {
		certs, err := LoadCertificates(path)
		if err != nil {
			return nil, err
		}
		for _, c := range certs {
			p.AddCert(c)
		}
	}
	return p, nil
}

// LoadKey reads a private key file that only its owner may read. The mode
// is checked on the opened file, so a file swapped after the check is not
// the one read.
func LoadKey(path string) (crypto.Signer, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("key %s: not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key %s (mode %04o): %w", path, perm, ErrKeyPermissions)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxPEMFile+1))
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	defer clear(b)
	if len(b) > maxPEMFile {
		return nil, fmt.Errorf("key %s: larger than %d bytes", path, maxPEMFile)
	}
	key, err := ParseKey(b)
	if err != nil {
		// The error never quotes the file: it is a key.
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	return key, nil
}

// ParseKey parses a PEM ECDSA P-256 or P-384 private key.
func ParseKey(pemBytes []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	defer clear(blk.Bytes)
	var key any
	var err error
	switch blk.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q, want PRIVATE KEY or EC PRIVATE KEY", blk.Type)
	}
	if err != nil {
		return nil, errors.New("key does not parse")
	}
	k, ok := key.(*ecdsa.PrivateKey)
	if !ok || (k.Curve != elliptic.P256() && k.Curve != elliptic.P384()) {
		return nil, fmt.Errorf("key of type %T, want ECDSA P-256 or P-384", key)
	}
	return k, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEMFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxPEMFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxPEMFile)
	}
	return b, nil
}
