package test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/hardphone/hardphone/hal/tpm"
	"github.com/hardphone/hardphone/system"
)

const swtpmTestCounter = 0x01800400

func openTPM(t *testing.T, s *SWTPM) *tpm.TPM {
	t.Helper()
	tp, err := tpm.Open(s.Spec)
	if err != nil {
		t.Fatalf("tpm.Open(%q) = %v", s.Spec, err)
	}
	t.Cleanup(func() { tp.Close() })
	return tp
}

func TestSWTPM(t *testing.T) {
	tests := []struct {
		name string
		opts []SWTPMOption
	}{
		{"unix", nil},
		{"tcp", []SWTPMOption{SWTPMTCP()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := StartSWTPM(t, tt.opts...)
			if s.PID() <= 0 {
				t.Fatalf("PID() = %d", s.PID())
			}
			tp := openTPM(t, s)
			c, err := tp.DefineCounter(swtpmTestCounter)
			if err != nil {
				t.Fatalf("DefineCounter = %v", err)
			}
			if err := c.AdvanceTo(3); err != nil {
				t.Fatalf("AdvanceTo(3) = %v", err)
			}
			name, err := tp.SRKName()
			if err != nil {
				t.Fatalf("SRKName = %v", err)
			}

			// Restart: same state, NV kept.
			s.Restart(t)
			if v, err := c.Read(); err != nil || v != 3 {
				t.Fatalf("counter after Restart = %d, %v, want 3", v, err)
			}

			// A second process on the same state is the same TPM.
			s.Stop(t)
			again := StartSWTPM(t, append([]SWTPMOption{SWTPMState(s.StateDir)}, tt.opts...)...)
			tp2 := openTPM(t, again)
			if n2, err := tp2.SRKName(); err != nil || !bytes.Equal(n2, name) {
				t.Fatalf("SRKName on reused state = %x, %v, want %x", n2, err, name)
			}
			c2, err := tp2.OpenCounter(swtpmTestCounter)
			if err != nil {
				t.Fatalf("OpenCounter on reused state = %v", err)
			}
			if v, err := c2.Read(); err != nil || v != 3 {
				t.Fatalf("counter on reused state = %d, %v, want 3", v, err)
			}

			// A fresh state is another TPM.
			fresh := openTPM(t, StartSWTPM(t, tt.opts...))
			if _, err := fresh.OpenCounter(swtpmTestCounter); err == nil {
				t.Fatalf("OpenCounter on a fresh TPM = nil error, want not defined")
			}
		})
	}
}

func TestSWTPMStateMissing(t *testing.T) {
	opt := SWTPMState(filepath.Join(t.TempDir(), "nope"))
	var o swtpmOptions
	if err := opt(&o); err == nil {
		t.Fatalf("SWTPMState(missing dir) = nil error, want an error")
	}
}

func TestClientForCSR(t *testing.T) {
	p := NewPKI(t, filepath.Join(t.TempDir(), "pki"))
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("GenerateKey = %v", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "phone-1"}}, key)
	if err != nil {
		t.Fatalf("CreateCertificateRequest = %v", err)
	}
	b, err := os.ReadFile(p.ClientForCSR(csr))
	if err != nil {
		t.Fatalf("read issued cert: %v", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("issued cert is not PEM")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatalf("ParseCertificate = %v", err)
	}
	if cert.Subject.CommonName != "phone-1" || !key.PublicKey.Equal(cert.PublicKey) {
		t.Fatalf("issued cert CN=%q key match %t, want phone-1 and the CSR key", cert.Subject.CommonName, key.PublicKey.Equal(cert.PublicKey))
	}
}

// TestEnrolIdentity enrols a TPM-backed identity the way the SIP interop
// tests do, and checks the CA's certificate and the TPM key belong together.
func TestEnrolIdentity(t *testing.T) {
	sw := StartSWTPM(t)
	pki := NewPKI(t, filepath.Join(t.TempDir(), "pki"))
	creds, err := system.OpenCredentials(system.CredentialSpec{StateDir: filepath.Join(t.TempDir(), "state"), Protector: sw.Spec}, nil)
	if err != nil {
		t.Fatalf("OpenCredentials = %v", err)
	}
	defer creds.Close()
	pki.EnrolIdentity(creds, "alice")
	cert, err := creds.Identity()
	if err != nil {
		t.Fatalf("Identity = %v", err)
	}
	ca, err := os.ReadFile(pki.CAFile)
	if err != nil {
		t.Fatalf("read CA: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("enrolled certificate does not verify against the CA: %v", err)
	}
	if cert.Leaf.Subject.CommonName != "alice" {
		t.Fatalf("enrolled CN = %q, want alice", cert.Leaf.Subject.CommonName)
	}
}

// TestSWTPMWithEK: swtpm_setup certified both EKs with the test CA, and
// with nothing but the CA's files.
func TestSWTPMWithEK(t *testing.T) {
	ca := NewManufacturerCA(t, filepath.Join(t.TempDir(), "mfg"))
	s := StartSWTPM(t, SWTPMWithEK(ca))
	tests := []struct {
		name string
		der  []byte
		alg  x509.PublicKeyAlgorithm
	}{
		{"rsa2048", s.EKCertRSA2048, x509.RSA},
		{"p256", s.EKCertECCP256, x509.ECDSA},
		{"p384", s.EKCertECCP384, x509.ECDSA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := x509.ParseCertificate(tt.der)
			if err != nil {
				t.Fatalf("ParseCertificate = %v", err)
			}
			if c.PublicKeyAlgorithm != tt.alg {
				t.Fatalf("EK public key algorithm = %v, want %v", c.PublicKeyAlgorithm, tt.alg)
			}
			if err := c.CheckSignatureFrom(ca.Cert); err != nil {
				t.Fatalf("CheckSignatureFrom(test CA) = %v", err)
			}
		})
	}
	tp := openTPM(t, s)
	if _, err := tp.SRKName(); err != nil {
		t.Fatalf("SRKName on the manufactured TPM = %v", err)
	}
}
