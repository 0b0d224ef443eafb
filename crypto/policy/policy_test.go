package policy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"runtime"
	"strings"
	"testing"
)

func TestClientConfigAlwaysVerifies(t *testing.T) {
	if _, err := ClientConfig(ClientTLS{ServerName: "x"}); err == nil {
		t.Fatalf("ClientConfig(no roots) = nil error, want refusal")
	}
	if _, err := ClientConfig(ClientTLS{Roots: x509.NewCertPool()}); err == nil {
		t.Fatalf("ClientConfig(no server name) = nil error, want refusal")
	}
	c, err := ClientConfig(ClientTLS{Roots: x509.NewCertPool(), ServerName: "reg.example"})
	if err != nil {
		t.Fatalf("ClientConfig: %v", err)
	}
	if c.InsecureSkipVerify {
		t.Errorf("InsecureSkipVerify = true, want false")
	}
	if c.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %#x, want TLS 1.2", c.MinVersion)
	}
	for _, s := range c.CipherSuites {
		name := tls.CipherSuiteName(s)
		if !strings.Contains(name, "GCM") && !strings.Contains(name, "CHACHA20") {
			t.Errorf("suite %s is not AEAD", name)
		}
		if !strings.HasPrefix(name, "TLS_ECDHE_") {
			t.Errorf("suite %s has no forward secrecy", name)
		}
	}
}

func TestCheckTLSState(t *testing.T) {
	ok := tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256, VerifiedChains: [][]*x509.Certificate{{}}}
	if err := CheckTLSState(ok); err != nil {
		t.Errorf("CheckTLSState(tls1.3) = %v, want nil", err)
	}
	cbc := tls.ConnectionState{Version: tls.VersionTLS12, CipherSuite: tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, VerifiedChains: [][]*x509.Certificate{{}}}
	if err := CheckTLSState(cbc); !errors.Is(err, ErrWeakAlgorithm) {
		t.Errorf("CheckTLSState(cbc) = %v, want ErrWeakAlgorithm", err)
	}
	unverified := tls.ConnectionState{Version: tls.VersionTLS13}
	if err := CheckTLSState(unverified); err == nil {
		t.Errorf("CheckTLSState(unverified) = nil, want error")
	}
	old := tls.ConnectionState{Version: tls.VersionTLS11, VerifiedChains: [][]*x509.Certificate{{}}}
	if err := CheckTLSState(old); !errors.Is(err, ErrWeakAlgorithm) {
		t.Errorf("CheckTLSState(tls1.1) = %v, want ErrWeakAlgorithm", err)
	}
}

func TestSRTPSuites(t *testing.T) {
	s := SRTPSuites()
	if len(s) < 2 {
		t.Fatalf("SRTPSuites() = %d suites, want at least 2", len(s))
	}
	first := "AEAD_AES_128_GCM"
	if runtime.GOARCH == "arm" {
		first = "AES_CM_128_HMAC_SHA1_80"
	}
	if s[0].SDESName != first {
		t.Errorf("SRTPSuites()[0] = %s, want %s on %s", s[0].SDESName, first, runtime.GOARCH)
	}
	for _, x := range s {
		if strings.HasSuffix(x.SDESName, "_32") {
			t.Errorf("we offer %s; 32-bit tags are accepted, never offered", x.SDESName)
		}
	}
	if _, err := SRTPSuiteBySDESName("AES_CM_128_HMAC_SHA1_32"); err != nil {
		t.Errorf("SHA1_32 refused: %v, want accepted", err)
	}
	if _, err := SRTPSuiteBySDESName("NULL_HMAC_SHA1_80"); !errors.Is(err, ErrWeakAlgorithm) {
		t.Errorf("NULL suite = %v, want ErrWeakAlgorithm", err)
	}
	if _, err := SRTPSuiteBySDESName("ROT13"); !errors.Is(err, ErrUnknownAlgorithm) {
		t.Errorf("unknown suite = %v, want ErrUnknownAlgorithm", err)
	}
	for _, h := range FingerprintHashes() {
		if h == "sha-1" || h == "md5" {
			t.Errorf("fingerprint hash %s accepted", h)
		}
	}
}

func TestChooseDigest(t *testing.T) {
	i, err := ChooseDigest([]Digest{DigestMD5, DigestSHA256}, DigestMD5)
	if err != nil || i != 1 {
		t.Errorf("ChooseDigest(MD5,SHA-256; min MD5) = %d, %v, want 1", i, err)
	}
	if _, err := ChooseDigest([]Digest{DigestMD5}, DigestSHA256); !errors.Is(err, ErrWeakAlgorithm) {
		t.Errorf("ChooseDigest(MD5; min SHA-256) = %v, want ErrWeakAlgorithm", err)
	}
}

func TestServerConfig(t *testing.T) {
	if _, err := ServerConfig(ServerTLS{}); err == nil {
		t.Fatalf("ServerConfig(no certificate) = nil error")
	}
	cert := &tls.Certificate{}
	if _, err := ServerConfig(ServerTLS{Certificate: cert, RequireClientCert: true}); err == nil {
		t.Fatalf("ServerConfig(require client cert, no CAs) = nil error")
	}
	tests := []struct {
		name string
		in   ServerTLS
		want tls.ClientAuthType
	}{
		{"no client certs", ServerTLS{Certificate: cert}, tls.NoClientCert},
		{"verify if given", ServerTLS{Certificate: cert, ClientCAs: x509.NewCertPool()}, tls.VerifyClientCertIfGiven},
		{"required", ServerTLS{Certificate: cert, ClientCAs: x509.NewCertPool(), RequireClientCert: true}, tls.RequireAndVerifyClientCert},
	}
	for _, tt := range tests {
		c, err := ServerConfig(tt.in)
		if err != nil {
			t.Fatalf("ServerConfig(%s) error %v", tt.name, err)
		}
		if c.ClientAuth != tt.want || c.MinVersion != tls.VersionTLS12 || len(c.CipherSuites) != len(tlsSuites) {
			t.Fatalf("ServerConfig(%s) = ClientAuth %v MinVersion %#x suites %d, want %v, TLS 1.2, %d", tt.name, c.ClientAuth, c.MinVersion, len(c.CipherSuites), tt.want, len(tlsSuites))
		}
	}
	if _, err := ClientConfig(ClientTLS{Roots: x509.NewCertPool(), ServerName: "x", Certificate: cert,
		GetCertificate: func() (*tls.Certificate, error) { return cert, nil }}); err == nil {
		t.Fatalf("ClientConfig(Certificate and GetCertificate) = nil error")
	}
}
