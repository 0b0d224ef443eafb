package credstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/hardphone/hardphone/test"
)

func TestIdentityLifecycle(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			e := k.env(t)
			s := e.open(t, k.prot(e, t))
			if _, err := s.Identity(); !errors.Is(err, ErrNoIdentity) {
				t.Fatalf("Identity() before create = %v, want ErrNoIdentity", err)
			}
			if err := s.CreateIdentity(false); err != nil {
				t.Fatalf("CreateIdentity = %v", err)
			}
			if err := s.CreateIdentity(false); !errors.Is(err, ErrExists) {
				t.Fatalf("CreateIdentity(again) = %v, want ErrExists", err)
			}
			if _, err := s.Identity(); !errors.Is(err, ErrNoIdentity) {
				t.Fatalf("Identity() without a certificate = %v, want ErrNoIdentity", err)
			}
			tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "phone-0042", Organization: []string{"Acme"}}, DNSNames: []string{"phone-0042.example"}}
			csrDER, err := s.CreateCSR(tmpl)
			if err != nil {
				t.Fatalf("CreateCSR = %v", err)
			}
			csr, err := x509.ParseCertificateRequest(csrDER)
			if err != nil || csr.CheckSignature() != nil || csr.SignatureAlgorithm != x509.ECDSAWithSHA256 {
				t.Fatalf("CSR parse %v, signature %v, algorithm %v, want a valid ECDSA-SHA256 CSR", err, csr.CheckSignature(), csr.SignatureAlgorithm)
			}

			// Refused certificates: another key, server-only EKU, junk.
			otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			for _, tt := range []struct {
				name  string
				chain [][]byte
			}{
				{"other key", [][]byte{selfSigned(t, otherKey, &otherKey.PublicKey, x509.ExtKeyUsageClientAuth)}},
				{"server auth only", [][]byte{selfSigned(t, otherKey, csr.PublicKey, x509.ExtKeyUsageServerAuth)}},
				{"junk", [][]byte{[]byte("not a certificate")}},
				{"empty", nil},
			} {
				t.Run(tt.name, func(t *testing.T) {
					if err := s.ImportCertificate(tt.chain); err == nil {
						t.Fatalf("ImportCertificate(%s) = nil error, want refusal", tt.name)
					}
				})
			}
			if _, err := s.Identity(); !errors.Is(err, ErrNoIdentity) {
				t.Fatalf("Identity() after refused imports = %v, want ErrNoIdentity", err)
			}

			leafDER := issueCert(t, csrDER)
			if err := s.ImportCertificate([][]byte{leafDER}); err != nil {
				t.Fatalf("ImportCertificate = %v", err)
			}
			cert, err := s.Identity()
			if err != nil {
				t.Fatalf("Identity() = %v", err)
			}
			if cert.Leaf.Subject.CommonName != "phone-0042" || len(cert.Certificate) != 1 {
				t.Fatalf("Identity() leaf %q, chain %d, want phone-0042 and 1", cert.Leaf.Subject.CommonName, len(cert.Certificate))
			}
			info, err := s.IdentityInfo()
			if err != nil {
				t.Fatalf("IdentityInfo = %v", err)
			}
			if info.Certificate == nil || info.NonExportable != (k.name == "tpm") || info.KeyType != "ECDSA P-256" {
				t.Fatalf("IdentityInfo = %+v, want a certificate, NonExportable=%t", info, k.name == "tpm")
			}

			// Not exportable: the PrivateKey is a signer wrapper with no
			// exported fields and no path to the key.
			if _, ok := cert.PrivateKey.(*ecdsa.PrivateKey); ok {
				t.Fatalf("Identity().PrivateKey is an *ecdsa.PrivateKey, want an opaque signer")
			}
			rt := reflect.TypeOf(cert.PrivateKey)
			for i := 0; i < rt.NumField(); i++ {
				if rt.Field(i).IsExported() {
					t.Fatalf("signer type %v exports field %s", rt, rt.Field(i).Name)
				}
			}
			if rt.NumMethod() != 4 { // Public, Sign, LogValue, String
				t.Fatalf("signer type %v has %d methods, want Public, Sign, LogValue, String", rt, rt.NumMethod())
			}

			// Replacing the key drops the certificate, which no longer fits,
			// and the old key stops signing.
			if err := s.CreateIdentity(true); err != nil {
				t.Fatalf("CreateIdentity(replace) = %v", err)
			}
			if _, err := s.Identity(); !errors.Is(err, ErrNoIdentity) {
				t.Fatalf("Identity() after replacing the key = %v, want ErrNoIdentity", err)
			}
			d := sha256.Sum256([]byte("x"))
			if _, err := cert.PrivateKey.(crypto.Signer).Sign(nil, d[:], crypto.SHA256); err == nil {
				t.Fatalf("old key Sign after replacement = nil error, want refusal")
			}
			newKey, err := s.Signer()
			if err != nil {
				t.Fatalf("Signer = %v", err)
			}
			s.Close()
			if _, err := newKey.Sign(nil, d[:], crypto.SHA256); !errors.Is(err, errClosed) {
				t.Fatalf("Sign after Close = %v, want errClosed", err)
			}
		})
	}
}

func selfSigned(t *testing.T, signer *ecdsa.PrivateKey, pub crypto.PublicKey, eku x509.ExtKeyUsage) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{eku},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, signer)
	if err != nil {
		t.Fatalf("CreateCertificate = %v", err)
	}
	return der
}

// TestTLSClientAuth: a crypto/tls server that requires and verifies client
// certificates accepts the device identity, over TLS 1.2 and TLS 1.3, with
// the key in the TPM (and, for desktops, in software).
func TestTLSClientAuth(t *testing.T) {
	pki := test.NewPKI(t, filepath.Join(t.TempDir(), "pki"))
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			e := k.env(t)
			s := e.open(t, k.prot(e, t))
			if err := s.CreateIdentity(false); err != nil {
				t.Fatalf("CreateIdentity = %v", err)
			}
			csr, err := s.CreateCSR(&x509.CertificateRequest{Subject: pkix.Name{CommonName: "phone-tls"}})
			if err != nil {
				t.Fatalf("CreateCSR = %v", err)
			}
			certDER := readPEMCert(t, pki.ClientForCSR(csr))
			if err := s.ImportCertificate([][]byte{certDER}); err != nil {
				t.Fatalf("ImportCertificate = %v", err)
			}
			cert, err := s.Identity()
			if err != nil {
				t.Fatalf("Identity = %v", err)
			}
			for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
				t.Run(tls.VersionName(v), func(t *testing.T) {
					state, err := handshake(t, pki, cert, v)
					if err != nil {
						t.Fatalf("handshake = %v", err)
					}
					if state.Version != v || len(state.PeerCertificates) == 0 || state.PeerCertificates[0].Subject.CommonName != "phone-tls" {
						t.Fatalf("server saw version %x, peer %v, want %x and phone-tls", state.Version, state.PeerCertificates, v)
					}
				})
			}
		})
	}
}

// handshake runs a TLS handshake over an in-memory pipe between a server
// that requires a client certificate from the PKI's CA and a client
// presenting cert, and returns the server's view.
func handshake(t testing.TB, pki *test.PKI, cert *tls.Certificate, version uint16) (tls.ConnectionState, error) {
	t.Helper()
	return pipeHandshake(tlsConfigs(t, pki, cert, version))
}

// tlsConfigs are a server config requiring a client certificate from the
// PKI's CA, and a client config presenting cert.
func tlsConfigs(t testing.TB, pki *test.PKI, cert *tls.Certificate, version uint16) (srv, cli *tls.Config) {
	t.Helper()
	srvCertFile, srvKeyFile := pki.Server("registrar.test")
	srvCert, err := tls.LoadX509KeyPair(srvCertFile, srvKeyFile)
	if err != nil {
		t.Fatalf("server key pair: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(pkiCA(t, pki))
	srvCfg := &tls.Config{
		Certificates: []tls.Certificate{srvCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: roots,
		MinVersion: version, MaxVersion: version,
	}
	cliCfg := &tls.Config{
		Certificates: []tls.Certificate{*cert}, RootCAs: roots, ServerName: "registrar.test",
		MinVersion: version, MaxVersion: version,
	}
	return srvCfg, cliCfg
}

func pipeHandshake(srvCfg, cliCfg *tls.Config) (tls.ConnectionState, error) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	srv, cli := tls.Server(c1, srvCfg), tls.Client(c2, cliCfg)
	errc := make(chan error, 1)
	go func() { errc <- cli.Handshake() }()
	serr := srv.Handshake()
	if serr != nil {
		c1.Close()
	}
	if cerr := <-errc; cerr != nil || serr != nil {
		return tls.ConnectionState{}, errors.Join(serr, cerr)
	}
	return srv.ConnectionState(), nil
}

func pkiCA(t testing.TB, pki *test.PKI) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(readPEMCert(t, pki.CAFile))
	if err != nil {
		t.Fatalf("parse CA: %v", err)
	}
	return c
}

// TestSignerRefusesOtherHashes: the identity key signs SHA-256 only, as
// Identity advertises to crypto/tls.
func TestSignerRefusesOtherHashes(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			e := k.env(t)
			s := e.open(t, k.prot(e, t))
			if err := s.CreateIdentity(false); err != nil {
				t.Fatalf("CreateIdentity = %v", err)
			}
			sg, err := s.Signer()
			if err != nil {
				t.Fatalf("Signer = %v", err)
			}
			d := sha256.Sum256([]byte("x"))
			if _, err := sg.Sign(nil, append(d[:], d[:16]...), crypto.SHA384); err == nil {
				t.Fatalf("Sign(SHA-384) = nil error, want refusal")
			}
		})
	}
}
