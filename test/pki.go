package test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// PKI is a throwaway certificate authority for TLS tests: a trusted CA and an
// unrelated rogue CA whose certificates peers must refuse. All keys are ECDSA
// P-256, stored as PKCS#8 PEM with mode 0600; certificates are valid from an
// hour ago to a day ahead.
type PKI struct {
	// Dir holds every file the PKI writes.
	Dir string
	// CAFile is the PEM certificate of the trusted CA.
	CAFile string
	// RogueCAFile is the PEM certificate of the rogue CA, which nothing
	// trusts.
	RogueCAFile string

	t     testing.TB
	ca    authority
	rogue authority
}

type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewPKI creates the trusted and the rogue CA in dir.
func NewPKI(t testing.TB, dir string) *PKI {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatalf("NewPKI: %v", err)
	}
	p := &PKI{Dir: dir, t: t}
	p.ca, p.CAFile = p.newCA("hardphone test CA", "ca")
	p.rogue, p.RogueCAFile = p.newCA("hardphone rogue CA", "rogue-ca")
	return p
}

// Server issues a TLS server certificate from the trusted CA for name (a DNS
// SAN unless it is an IP) and ips (IP SANs).
func (p *PKI) Server(name string, ips ...net.IP) (certFile, keyFile string) {
	p.t.Helper()
	certFile, keyFile, _ = p.issue(p.ca, "server-"+name, serverTemplate(name, ips))
	return certFile, keyFile
}

// RogueServer issues a server certificate like Server, but from the rogue CA.
func (p *PKI) RogueServer(name string, ips ...net.IP) (certFile, keyFile string) {
	p.t.Helper()
	certFile, keyFile, _ = p.issue(p.rogue, "rogue-server-"+name, serverTemplate(name, ips))
	return certFile, keyFile
}

// Client issues a TLS client certificate from the trusted CA with
// CN=cn, and also returns one file holding certificate and key, as baresip's
// sip_certificate wants.
func (p *PKI) Client(cn string) (certFile, keyFile, combinedPEM string) {
	p.t.Helper()
	return p.issue(p.ca, "client-"+cn, clientTemplate(cn))
}

// RogueClient issues a client certificate like Client, but from the rogue CA.
func (p *PKI) RogueClient(cn string) (certFile, keyFile, combinedPEM string) {
	p.t.Helper()
	return p.issue(p.rogue, "rogue-client-"+cn, clientTemplate(cn))
}

func serverTemplate(name string, ips []net.IP) *x509.Certificate {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	} else if name != "" {
		tmpl.DNSNames = []string{name}
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, append(net.IP(nil), ip...))
	}
	return tmpl
}

func clientTemplate(cn string) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}

func (p *PKI) newCA(cn, file string) (authority, string) {
	p.t.Helper()
	key := p.newKey()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"hardphone tests"}},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	p.fillValidity(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		p.t.Fatalf("NewPKI: create CA %q: %v", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		p.t.Fatalf("NewPKI: parse CA %q: %v", cn, err)
	}
	path := filepath.Join(p.Dir, file+".pem")
	p.write(path, pemBlock("CERTIFICATE", der), 0o644)
	return authority{cert: cert, key: key}, path
}

// issue signs tmpl with ca and writes NAME.pem, NAME.key and NAME-combined.pem.
func (p *PKI) issue(ca authority, name string, tmpl *x509.Certificate) (certFile, keyFile, combined string) {
	p.t.Helper()
	key := p.newKey()
	p.fillValidity(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		p.t.Fatalf("PKI: issue %q: %v", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		p.t.Fatalf("PKI: marshal key %q: %v", name, err)
	}
	certPEM := pemBlock("CERTIFICATE", der)
	keyPEM := pemBlock("PRIVATE KEY", keyDER)
	base := filepath.Join(p.Dir, fileSafe(name))
	certFile, keyFile, combined = base+".pem", base+".key", base+"-combined.pem"
	p.write(certFile, certPEM, 0o644)
	p.write(keyFile, keyPEM, 0o600)
	p.write(combined, append(append([]byte(nil), certPEM...), keyPEM...), 0o600)
	return certFile, keyFile, combined
}

func (p *PKI) newKey() *ecdsa.PrivateKey {
	p.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatalf("PKI: generate P-256 key: %v", err)
	}
	return key
}

func (p *PKI) fillValidity(tmpl *x509.Certificate) {
	p.t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		p.t.Fatalf("PKI: serial: %v", err)
	}
	now := time.Now()
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-time.Hour)
	tmpl.NotAfter = now.Add(24 * time.Hour)
}

func (p *PKI) write(path string, data []byte, mode os.FileMode) {
	p.t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		p.t.Fatalf("PKI: %v", err)
	}
	// WriteFile keeps the mode of an existing file; make it exact.
	if err := os.Chmod(path, mode); err != nil {
		p.t.Fatalf("PKI: %v", err)
	}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// fileSafe maps a certificate name to a file name.
func fileSafe(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.', r == '_':
			return r
		}
		return '_'
	}, name)
}
