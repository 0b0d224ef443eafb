// Package clienttest makes fleet admin clients for end-to-end tests: the
// admins and their sessions, made in hpfleet's admin store before it
// starts, and a client certificate the fleet's admin CA issues for a name. Imported by tests only
// (test/integration, test/qemu).
package clienttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/adminauth/authtest"
	"github.com/hardphone/hardphone/fleet/adminauth/boltauth"
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

// Sessions creates the admins (name to role) in the bbolt admin store
// under hpfleet's data directory, before hpfleet starts on it, each with
// a password, TOTP and a full session bound to 127.0.0.1 and userAgent;
// it returns their session tokens by name.
func Sessions(t testing.TB, data string, roles map[string]adminauth.Role, userAgent string) map[string]string {
	t.Helper()
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	as, err := boltauth.Open(filepath.Join(data, "adminauth"))
	if err != nil {
		t.Fatal(err)
	}
	auth, err := adminauth.New(as)
	if err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{}
	for name, role := range roles {
		tokens[name] = authtest.Session(t, auth, name, role, adminauth.Client{Addr: netip.MustParseAddr("127.0.0.1"), UserAgent: userAgent})
	}
	if err := as.Close(); err != nil {
		t.Fatal(err)
	}
	return tokens
}

// Clients are the admins' session clients by name (tokens from
// Sessions), for the fleet at url whose CA directory is pki: admin (the
// client of the CA's own admin certificate, which names "admin") with its
// session for "admin", a certificate the admin CA issues for every other
// name.
func Clients(t testing.TB, url, serverName, pki string, admin *client.Client, tokens map[string]string, userAgent string) map[string]*client.Client {
	t.Helper()
	roots, err := ca.LoadPool(filepath.Join(pki, ca.ServerCACertFile))
	if err != nil {
		t.Fatal(err)
	}
	adminCA, err := ca.Load(filepath.Join(pki, ca.AdminCACertFile), filepath.Join(pki, ca.AdminCAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*client.Client{}
	for name, tok := range tokens {
		if name != "admin" {
			out[name] = SessionClient(t, url, serverName, roots, adminCA, name, tok, userAgent)
			continue
		}
		if out[name], err = admin.WithSession(tok, userAgent); err != nil {
			t.Fatalf("WithSession(admin): %v", err)
		}
	}
	return out
}
