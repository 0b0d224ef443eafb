package attest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"sync"
	"testing"
	"time"
)

// testCA is a software manufacturer CA for the certificate-profile tests;
// the tests against swtpm use the certificates swtpm_localca makes.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func newTestCA(t testing.TB, cn string, parent *testCA) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("GenerateKey = %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             testNow.Add(-24 * time.Hour),
		NotAfter:              testNow.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	signer, signerCert := crypto.Signer(key), tmpl
	if parent != nil {
		signer, signerCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signer)
	if err != nil {
		t.Fatalf("CreateCertificate = %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("ParseCertificate = %v", err)
	}
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// tpmSAN is the subject alternative name of the TCG profile: one
// directoryName with the TPM manufacturer, model and version.
func tpmSAN(t testing.TB, critical bool, attrs ...pkix.AttributeTypeAndValue) pkix.Extension {
	t.Helper()
	name, err := asn1.Marshal(pkix.RDNSequence{attrs})
	if err != nil {
		t.Fatalf("marshal name = %v", err)
	}
	v, err := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: name}})
	if err != nil {
		t.Fatalf("marshal SAN = %v", err)
	}
	return pkix.Extension{Id: oidSubjectAltName, Critical: critical, Value: v}
}

func tpmAttrs() []pkix.AttributeTypeAndValue {
	return []pkix.AttributeTypeAndValue{
		{Type: oidTPMManufacturer, Value: "id:00001014"},
		{Type: oidTPMModel, Value: "swtpm"},
		{Type: oidTPMVersion, Value: "id:20191023"},
	}
}

// ekTemplate is an EK certificate as the TCG profile (and swtpm_localca)
// makes it: empty subject, critical SAN, the EK extended key usage.
func ekTemplate(t testing.TB, pub any) *x509.Certificate {
	ku := x509.KeyUsageKeyAgreement
	if _, ok := pub.(*rsa.PublicKey); ok {
		ku = x509.KeyUsageKeyEncipherment
	}
	return &x509.Certificate{
		SerialNumber:          big.NewInt(7),
		NotBefore:             testNow.Add(-time.Hour),
		NotAfter:              testNow.Add(time.Hour),
		KeyUsage:              ku,
		UnknownExtKeyUsage:    []asn1.ObjectIdentifier{oidEKCertificate},
		BasicConstraintsValid: true,
		ExtraExtensions:       []pkix.Extension{tpmSAN(t, true, tpmAttrs()...)},
	}
}

func (ca *testCA) issue(t testing.TB, tmpl *x509.Certificate, pub any) []byte {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatalf("CreateCertificate = %v", err)
	}
	return der
}

var (
	rsaOnce sync.Once
	rsaKeys [2]*rsa.PrivateKey
)

// testRSA returns RSA-2048 (i = 0) and RSA-3072 (i = 1) keys, made once.
func testRSA(t testing.TB, i int) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		for j, bits := range []int{2048, 3072} {
			k, err := rsa.GenerateKey(rand.Reader, bits)
			if err != nil {
				panic(err)
			}
			rsaKeys[j] = k
		}
	})
	return rsaKeys[i]
}

func TestVerifyEK(t *testing.T) {
	root := newTestCA(t, "mfg root", nil)
	inter := newTestCA(t, "mfg intermediate", root)
	rogue := newTestCA(t, "rogue", nil)
	p256 := newP256(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatalf("GenerateKey = %v", err)
	}
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatalf("GenerateKey = %v", err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("GenerateKey = %v", err)
	}
	rsa2048, rsa3072 := &testRSA(t, 0).PublicKey, &testRSA(t, 1).PublicKey

	ek := func(pub any, f func(c *x509.Certificate)) []byte {
		tmpl := ekTemplate(t, pub)
		f(tmpl)
		return root.issue(t, tmpl, pub)
	}
	none := func(*x509.Certificate) {}
	tests := []struct {
		name  string
		der   []byte
		roots *x509.CertPool
		opts  []VerifyOption
		now   time.Time
		want  error // nil: accepted
	}{
		{"rsa2048", ek(rsa2048, none), root.pool(), nil, testNow, nil},
		{"ecc p256", ek(&p256.PublicKey, none), root.pool(), nil, testNow, nil},
		{"ecc p384", ek(&p384.PublicKey, none), root.pool(), nil, testNow, nil},
		{"subject and non-critical SAN", ek(&p256.PublicKey, func(c *x509.Certificate) {
			c.Subject = pkix.Name{CommonName: "unknown"}
			c.ExtraExtensions = []pkix.Extension{tpmSAN(t, false, tpmAttrs()...)}
		}), root.pool(), nil, testNow, nil},
		{"through an intermediate", inter.issue(t, ekTemplate(t, &p256.PublicKey), &p256.PublicKey), root.pool(),
			[]VerifyOption{WithIntermediates(inter.cert)}, testNow, nil},

		{"intermediate not given", inter.issue(t, ekTemplate(t, &p256.PublicKey), &p256.PublicKey), root.pool(), nil, testNow, ErrUntrustedEK},
		{"intermediate as the only root", inter.issue(t, ekTemplate(t, &p256.PublicKey), &p256.PublicKey), rogue.pool(),
			[]VerifyOption{WithIntermediates(inter.cert)}, testNow, ErrUntrustedEK},
		{"untrusted CA", rogue.issue(t, ekTemplate(t, &p256.PublicKey), &p256.PublicKey), root.pool(), nil, testNow, ErrUntrustedEK},
		{"no roots", ek(&p256.PublicKey, none), nil, nil, testNow, ErrUntrustedEK},
		{"expired", ek(&p256.PublicKey, none), root.pool(), nil, testNow.Add(2 * time.Hour), ErrUntrustedEK},
		{"not yet valid", ek(&p256.PublicKey, none), root.pool(), nil, testNow.Add(-2 * time.Hour), ErrUntrustedEK},

		{"no EK usage", ek(&p256.PublicKey, func(c *x509.Certificate) { c.UnknownExtKeyUsage = nil }), root.pool(), nil, testNow, ErrNotEK},
		{"TLS usage only", ek(&p256.PublicKey, func(c *x509.Certificate) {
			c.UnknownExtKeyUsage = nil
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}), root.pool(), nil, testNow, ErrNotEK},
		{"CA certificate", ek(&p256.PublicKey, func(c *x509.Certificate) { c.IsCA = true }), root.pool(), nil, testNow, ErrNotEK},
		{"cert signing usage", ek(&p256.PublicKey, func(c *x509.Certificate) { c.KeyUsage |= x509.KeyUsageCertSign }), root.pool(), nil, testNow, ErrNotEK},
		{"ECC without keyAgreement", ek(&p256.PublicKey, func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageDigitalSignature }), root.pool(), nil, testNow, ErrNotEK},
		{"RSA without keyEncipherment", ek(rsa2048, func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageDigitalSignature }), root.pool(), nil, testNow, ErrNotEK},
		{"no SAN", ek(&p256.PublicKey, func(c *x509.Certificate) { c.ExtraExtensions = nil }), root.pool(), nil, testNow, ErrNotEK},
		{"empty subject, non-critical SAN", ek(&p256.PublicKey, func(c *x509.Certificate) {
			c.ExtraExtensions = []pkix.Extension{tpmSAN(t, false, tpmAttrs()...)}
		}), root.pool(), nil, testNow, ErrNotEK},
		{"SAN without model", ek(&p256.PublicKey, func(c *x509.Certificate) {
			a := tpmAttrs()
			c.ExtraExtensions = []pkix.Extension{tpmSAN(t, true, a[0], a[2])}
		}), root.pool(), nil, testNow, ErrNotEK},
		{"SAN with a foreign attribute", ek(&p256.PublicKey, func(c *x509.Certificate) {
			c.ExtraExtensions = []pkix.Extension{tpmSAN(t, true, append(tpmAttrs(), pkix.AttributeTypeAndValue{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "x"})...)}
		}), root.pool(), nil, testNow, ErrNotEK},
		{"SAN with a DNS name", ek(&p256.PublicKey, func(c *x509.Certificate) {
			c.Subject = pkix.Name{CommonName: "unknown"}
			c.ExtraExtensions = nil
			c.DNSNames = []string{"tpm.example"}
		}), root.pool(), nil, testNow, ErrNotEK},
		{"unknown critical extension", ek(&p256.PublicKey, func(c *x509.Certificate) {
			c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, Critical: true, Value: []byte{5, 0}})
		}), root.pool(), nil, testNow, ErrNotEK},

		{"RSA-3072", ek(rsa3072, none), root.pool(), nil, testNow, ErrUnsupportedEK},
		{"P-521", ek(&p521.PublicKey, none), root.pool(), nil, testNow, ErrUnsupportedEK},
		{"Ed25519", ek(edPub, func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageKeyAgreement }), root.pool(), nil, testNow, ErrUnsupportedEK},

		{"garbage", []byte{0x30, 0x03, 1, 2, 3}, root.pool(), nil, testNow, ErrNotEK},
		{"empty", nil, root.pool(), nil, testNow, ErrNotEK},
		{"oversized", make([]byte, maxEKCert+1), root.pool(), nil, testNow, ErrNotEK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := VerifyEK(tt.der, tt.roots, tt.now, tt.opts...)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("VerifyEK(%s) = %v, want success", tt.name, err)
				}
				if len(got.UnhandledCriticalExtensions) != 0 {
					t.Fatalf("VerifyEK(%s) left unhandled critical extensions %v", tt.name, got.UnhandledCriticalExtensions)
				}
				if _, err := EKType(got.PublicKey); err != nil {
					t.Fatalf("EKType(%s) = %v", tt.name, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("VerifyEK(%s) = %v, want %v", tt.name, err, tt.want)
			}
			t.Logf("VerifyEK(%s) = %v", tt.name, err)
		})
	}
}

func TestTPMDescription(t *testing.T) {
	root := newTestCA(t, "mfg root", nil)
	p256 := newP256(t)
	c, err := VerifyEK(root.issue(t, ekTemplate(t, &p256.PublicKey), &p256.PublicKey), root.pool(), testNow)
	if err != nil {
		t.Fatalf("VerifyEK = %v", err)
	}
	got, err := TPMDescription(c)
	want := TPMInfo{Manufacturer: "id:00001014", Model: "swtpm", Version: "id:20191023"}
	if err != nil || got != want {
		t.Fatalf("TPMDescription = %+v, %v, want %+v", got, err, want)
	}
}
