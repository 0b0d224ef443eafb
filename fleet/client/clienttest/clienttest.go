// Package clienttest makes fleet admin clients for end-to-end tests: a
// client certificate the fleet's admin CA issues for a name, and a
// session made before hpfleet started. Imported by tests only
// (test/integration, test/qemu).
package clienttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/client"
)

// SessionClient is admin name's client of the fleet at url: a P-256 key
// and a certificate adminCA issues for name (valid one hour), speaking
// with the session token, bound to userAgent.
func SessionClient(t testing.TB, url, serverName string, roots *x509.CertPool, adminCA *ca.CA, name, token, userAgent string) *client.Client {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := adminCA.IssueAdmin(key.Public(), name, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatalf("IssueAdmin(%s): %v", name, err)
	}
	c, err := client.New(client.Config{URL: url, ServerName: serverName, Roots: roots,
		Certificate: &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	sc, err := c.WithSession(token, userAgent)
	if err != nil {
		t.Fatalf("WithSession(%s): %v", name, err)
	}
	return sc
}
