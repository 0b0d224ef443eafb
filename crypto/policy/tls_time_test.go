package policy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// TestClientTimeIsTheFloor: a server whose certificate expired a month ago
// is accepted by a client whose clock was wound back into its validity, and
// refused when the client checks against the time floor (ClientTLS.Time).
func TestClientTimeIsTheFloor(t *testing.T) {
	now := time.Now()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"},
		NotBefore: now.AddDate(-1, 0, 0), NotAfter: now.AddDate(1, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "registrar"},
		NotBefore: now.AddDate(0, -2, 0), NotAfter: now.AddDate(0, -1, 0), DNSNames: []string{"registrar"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake() // the client's verdict is what is tested
				c.Close()
			}()
		}
	}()
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	dial := func(clock func() time.Time) error {
		cfg, err := ClientConfig(ClientTLS{Roots: roots, ServerName: "registrar", Time: clock})
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), cfg)
		if err == nil {
			c.Close()
		}
		return err
	}
	woundBack := func() time.Time { return now.AddDate(0, 0, -45) }
	if err := dial(woundBack); err != nil {
		t.Fatalf("wound-back clock: handshake = %v; the attack this guards against must work without the floor", err)
	}
	floor := func() time.Time { // what timefloor.Floor.Now gives for that clock
		if f := now; woundBack().Before(f) {
			return f
		}
		return woundBack()
	}
	if err := dial(floor); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("time floor: handshake = %v, want the expired certificate refused", err)
	}
}
