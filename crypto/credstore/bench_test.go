package credstore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/hardphone/hardphone/test"
)

// benchStores are the stores Put and Get are timed on: TPM with the KEK
// cached (no PCR policy), TPM with a PCR policy (unseals on every
// operation), and the software protector as the reference.
func benchStores(b *testing.B) []struct {
	name string
	s    *Store
} {
	b.Helper()
	te := newTPMEnv(b)
	tpmStore := te.open(b, te.tpmProtector(b))
	pe := &env{sw: te.sw, tpm: te.tpm, dir: b.TempDir()}
	pe.dbPath = filepath.Join(pe.dir, "state.db")
	pcrStore := pe.open(b, pe.tpmProtector(b, WithPCRs(7)))
	se := newEnv(b)
	softStore := se.open(b, se.softProtector(b))
	return []struct {
		name string
		s    *Store
	}{{"tpm", tpmStore}, {"tpm_pcr", pcrStore}, {"software", softStore}}
}

var benchSizes = []int{32, 4096}

func BenchmarkPut(b *testing.B) {
	for _, st := range benchStores(b) {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%s/%dB", st.name, size), func(b *testing.B) {
				v := make([]byte, size)
				b.ReportAllocs()
				b.SetBytes(int64(size))
				for b.Loop() {
					if err := st.s.Put("sip/bench", v); err != nil {
						b.Fatalf("Put = %v", err)
					}
				}
			})
		}
	}
}

func BenchmarkGet(b *testing.B) {
	for _, st := range benchStores(b) {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%s/%dB", st.name, size), func(b *testing.B) {
				name := fmt.Sprintf("sip/bench%d", size)
				if err := st.s.Put(name, make([]byte, size)); err != nil {
					b.Fatalf("Put = %v", err)
				}
				b.ReportAllocs()
				b.SetBytes(int64(size))
				for b.Loop() {
					if _, err := st.s.Get(name); err != nil {
						b.Fatalf("Get = %v", err)
					}
				}
			})
		}
	}
}

// BenchmarkTLSHandshake times a full mutual-TLS handshake (in memory) with
// the client key in the TPM, beside the same handshake with an in-process
// ECDSA P-256 key.
func BenchmarkTLSHandshake(b *testing.B) {
	pki := test.NewPKI(b, filepath.Join(b.TempDir(), "pki"))
	e := newTPMEnv(b)
	s := e.open(b, e.tpmProtector(b))
	if err := s.CreateIdentity(false); err != nil {
		b.Fatalf("CreateIdentity = %v", err)
	}
	csr, err := s.CreateCSR(&x509.CertificateRequest{Subject: pkix.Name{CommonName: "phone-bench"}})
	if err != nil {
		b.Fatalf("CreateCSR = %v", err)
	}
	if err := s.ImportCertificate([][]byte{readPEMCert(b, pki.ClientForCSR(csr))}); err != nil {
		b.Fatalf("ImportCertificate = %v", err)
	}
	tpmCert, err := s.Identity()
	if err != nil {
		b.Fatalf("Identity = %v", err)
	}
	soft, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatalf("GenerateKey = %v", err)
	}
	softCSR, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "phone-soft"}}, soft)
	if err != nil {
		b.Fatalf("CreateCertificateRequest = %v", err)
	}
	softDER := readPEMCert(b, pki.ClientForCSR(softCSR))
	softCert := &tls.Certificate{Certificate: [][]byte{softDER}, PrivateKey: soft}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		for _, c := range []struct {
			name string
			cert *tls.Certificate
		}{{"tpm", tpmCert}, {"software_ecdsa", softCert}} {
			b.Run(fmt.Sprintf("%s/%s", tls.VersionName(v), c.name), func(b *testing.B) {
				srv, cli := tlsConfigs(b, pki, c.cert, v)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := pipeHandshake(srv, cli); err != nil {
						b.Fatalf("handshake = %v", err)
					}
				}
			})
		}
	}
}
