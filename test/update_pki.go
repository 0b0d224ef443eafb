package test

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CertKey is one certificate with its key, in memory and as PEM files
// (CertFile holds the certificate only; KeyFile the PKCS#8 key).
type CertKey struct {
	Cert     *x509.Certificate
	Key      *ecdsa.PrivateKey
	CertFile string
	KeyFile  string
}

// UpdatePKI is a throwaway PKI for bundle signing tests, ECDSA P-256
// throughout:
//   - CA, the vendor root a keyring holds; ForeignCA, a root nobody trusts.
//   - Leaf: EKU codeSigning and KU digitalSignature under CA, as a vendor
//     signing certificate should be.
//   - Expired: like Leaf but expired yesterday. NotYet: valid from tomorrow.
//   - SMIME: EKU emailProtection under CA (passes RAUC's default purpose,
//     fails codesign). NoEKU: no EKU at all under CA.
//   - ServerAuth: EKU serverAuth only under CA (fails both purposes).
//   - Intermediate: a CA under CA with EKU codeSigning; InterLeaf: a
//     codeSigning leaf under Intermediate.
//   - ForeignLeaf: a codeSigning leaf under ForeignCA.
type UpdatePKI struct {
	Dir                                 string
	CA, ForeignCA, Intermediate         CertKey
	Leaf, Expired, NotYet, SMIME, NoEKU CertKey
	ServerAuth, InterLeaf, ForeignLeaf  CertKey
	t                                   testing.TB
}

// NewUpdatePKI creates the PKI under dir.
func NewUpdatePKI(t testing.TB, dir string) *UpdatePKI {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatalf("NewUpdatePKI: %v", err)
	}
	p := &UpdatePKI{Dir: dir, t: t}
	now := time.Now()
	valid := [2]time.Time{now.Add(-time.Hour), now.Add(30 * 24 * time.Hour)}
	p.CA = p.make("ca", "hardphone vendor CA", nil, caTemplate(), valid)
	p.ForeignCA = p.make("foreign-ca", "someone else's CA", nil, caTemplate(), valid)
	inter := caTemplate()
	inter.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
	p.Intermediate = p.make("intermediate", "hardphone signing CA", &p.CA, inter, valid)
	p.Leaf = p.make("leaf", "hardphone release signer", &p.CA, codeSignTemplate(), valid)
	p.Expired = p.make("expired", "hardphone old signer", &p.CA, codeSignTemplate(), [2]time.Time{now.Add(-48 * time.Hour), now.Add(-24 * time.Hour)})
	p.NotYet = p.make("notyet", "hardphone future signer", &p.CA, codeSignTemplate(), [2]time.Time{now.Add(24 * time.Hour), now.Add(48 * time.Hour)})
	p.SMIME = p.make("smime", "hardphone smime signer", &p.CA, &x509.Certificate{
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	}, valid)
	p.NoEKU = p.make("noeku", "hardphone plain signer", &p.CA, &x509.Certificate{KeyUsage: x509.KeyUsageDigitalSignature}, valid)
	p.ServerAuth = p.make("serverauth", "hardphone web server", &p.CA, &x509.Certificate{
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, valid)
	p.InterLeaf = p.make("interleaf", "hardphone signer under intermediate", &p.Intermediate, codeSignTemplate(), valid)
	p.ForeignLeaf = p.make("foreign-leaf", "someone else's signer", &p.ForeignCA, codeSignTemplate(), valid)
	return p
}

func caTemplate() *x509.Certificate {
	return &x509.Certificate{
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
}

func codeSignTemplate() *x509.Certificate {
	return &x509.Certificate{
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
}

// make signs tmpl with parent (self-signed when parent is nil) and writes
// NAME.pem and NAME.key.
func (p *UpdatePKI) make(name, cn string, parent *CertKey, tmpl *x509.Certificate, validity [2]time.Time) CertKey {
	p.t.Helper()
	key := (&PKI{t: p.t}).newKey()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		p.t.Fatalf("UpdatePKI: serial: %v", err)
	}
	tmpl.SerialNumber = serial
	tmpl.Subject = pkix.Name{CommonName: cn, Organization: []string{"hardphone tests"}}
	tmpl.NotBefore, tmpl.NotAfter = validity[0], validity[1]
	issuer, signer := tmpl, key
	if parent != nil {
		issuer, signer = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &key.PublicKey, signer)
	if err != nil {
		p.t.Fatalf("UpdatePKI: create %s: %v", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		p.t.Fatalf("UpdatePKI: parse %s: %v", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		p.t.Fatalf("UpdatePKI: marshal key %s: %v", name, err)
	}
	ck := CertKey{Cert: cert, Key: key,
		CertFile: filepath.Join(p.Dir, name+".pem"), KeyFile: filepath.Join(p.Dir, name+".key")}
	w := &PKI{t: p.t}
	w.write(ck.CertFile, pemBlock("CERTIFICATE", der), 0o644)
	w.write(ck.KeyFile, pemBlock("PRIVATE KEY", keyDER), 0o600)
	return ck
}
