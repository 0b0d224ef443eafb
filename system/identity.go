package system

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"
)

// loadRoots reads the trust anchors.
func loadRoots(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("trust anchors: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("trust anchors %s: no PEM certificate found", path)
	}
	return pool, nil
}

// loadIdentity reads the client certificate chain and its key. The key is
// handed on only as a crypto.Signer, the same seam the TPM-backed identity
// key uses, so nothing above this function can tell them apart or export it.
func loadIdentity(certFile, keyFile string) (*tls.Certificate, error) {
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	var cert tls.Certificate
	for rest := cb; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type == "CERTIFICATE" {
			cert.Certificate = append(cert.Certificate, blk.Bytes)
		}
	}
	if len(cert.Certificate) == 0 {
		return nil, fmt.Errorf("client certificate %s: no PEM certificate found", certFile)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("client certificate %s: %w", certFile, err)
	}
	cert.Leaf = leaf
	signer, err := loadKeyFile(keyFile)
	if err != nil {
		return nil, err
	}
	if !publicKeysEqual(signer.Public(), leaf.PublicKey) {
		return nil, fmt.Errorf("client key %s does not match certificate %s", keyFile, certFile)
	}
	cert.PrivateKey = signer
	return &cert, nil
}

func loadKeyFile(path string) (crypto.Signer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("client key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("client key %s is readable by others (mode %v, want 0600)", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("client key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("client key %s: no PEM block", path)
	}
	var key any
	switch blk.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	default:
		err = fmt.Errorf("PEM type %q", blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("client key %s: %w", path, err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, errors.New("client key is not a signing key")
	}
	return s, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(eq)
	return ok && e.Equal(b)
}

// instanceID is the RFC 5626 instance URN: stable across restarts when a
// state directory is configured, per process otherwise.
func instanceID(stateDir string) (string, error) {
	if stateDir == "" {
		return "urn:uuid:" + uuid.NewString(), nil
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return "", fmt.Errorf("state dir: %w", err)
	}
	p := filepath.Join(stateDir, "instance-id")
	if b, err := os.ReadFile(p); err == nil {
		if id, err := uuid.ParseBytes([]byte(strings.TrimSpace(string(b)))); err == nil {
			return "urn:uuid:" + id.String(), nil
		}
	}
	id, err := uuid.NewRandomFromReader(rand.Reader)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(p, []byte(id.String()+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("state dir: %w", err)
	}
	return "urn:uuid:" + id.String(), nil
}
