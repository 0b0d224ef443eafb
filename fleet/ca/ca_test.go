package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func initDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	if err := Init(dir, InitOptions{Organization: "Acme", ServerNames: []string{"fleet.example"},
		ServerIPs: []net.IP{net.IPv4(127, 0, 0, 1)}, AdminName: "admin-1"}); err != nil {
		t.Fatalf("Init error %v", err)
	}
	return dir
}

func loadDevice(t *testing.T, dir string) *CA {
	t.Helper()
	c, err := Load(filepath.Join(dir, DeviceCACertFile), filepath.Join(dir, DeviceCAKeyFile))
	if err != nil {
		t.Fatalf("Load(device CA) error %v", err)
	}
	return c
}

func TestInit(t *testing.T) {
	dir := initDir(t)
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode = %v, %v, want 0700", st.Mode(), err)
	}
	for _, name := range []string{DeviceCAKeyFile, ServerCAKeyFile, ServerKeyFile, AdminCAKeyFile, AdminKeyFile} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode = %v, %v, want 0600", name, st.Mode(), err)
		}
	}
	// The server certificate verifies under the server CA for its name,
	// and not under the device CA.
	server, err := LoadCertificate(filepath.Join(dir, ServerCertFile))
	if err != nil {
		t.Fatalf("LoadCertificate(server) error %v", err)
	}
	serverCA, err := LoadPool(filepath.Join(dir, ServerCACertFile))
	if err != nil {
		t.Fatalf("LoadPool error %v", err)
	}
	if _, err := server.Verify(x509.VerifyOptions{Roots: serverCA, DNSName: "fleet.example"}); err != nil {
		t.Fatalf("server certificate does not verify for fleet.example: %v", err)
	}
	if _, err := server.Verify(x509.VerifyOptions{Roots: loadDevice(t, dir).Pool(), DNSName: "fleet.example"}); err == nil {
		t.Fatalf("server certificate verifies under the device CA")
	}
	admin, err := LoadCertificate(filepath.Join(dir, AdminCertFile))
	if err != nil {
		t.Fatalf("LoadCertificate(admin) error %v", err)
	}
	adminCA, err := LoadPool(filepath.Join(dir, AdminCACertFile))
	if err != nil {
		t.Fatalf("LoadPool error %v", err)
	}
	if _, err := admin.Verify(x509.VerifyOptions{Roots: adminCA, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("admin certificate does not verify as a client: %v", err)
	}
	// A second Init over it refuses and changes nothing.
	before, err := os.ReadFile(filepath.Join(dir, DeviceCAKeyFile))
	if err != nil {
		t.Fatalf("ReadFile: %v", err)
	}
	if err := Init(dir, InitOptions{Organization: "Acme", ServerNames: []string{"x"}, AdminName: "a"}); !errors.Is(err, ErrExists) {
		t.Fatalf("second Init error = %v, want ErrExists", err)
	}
	after, err := os.ReadFile(filepath.Join(dir, DeviceCAKeyFile))
	if err != nil || !bytes.Equal(before, after) {
		t.Fatalf("second Init changed the device CA key (%v)", err)
	}
}

// TestKeyPermissions: a CA key readable by group or others is refused,
// before it is parsed; the error does not quote the key.
func TestKeyPermissions(t *testing.T) {
	dir := initDir(t)
	key := filepath.Join(dir, DeviceCAKeyFile)
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660} {
		if err := os.Chmod(key, mode); err != nil {
			t.Fatalf("Chmod: %v", err)
		}
		_, err := Load(filepath.Join(dir, DeviceCACertFile), key)
		if !errors.Is(err, ErrKeyPermissions) {
			t.Fatalf("Load with key mode %04o error = %v, want ErrKeyPermissions", mode, err)
		}
	}
	if err := os.Chmod(key, 0o400); err != nil {
		t.Fatalf("Chmod: %v", err)
	}
	loadDevice(t, dir)
	// A symlink to the key is not followed.
	link := filepath.Join(dir, "link.key")
	if err := os.Symlink(key, link); err != nil {
		t.Fatalf("Symlink: %v", err)
	}
	if _, err := Load(filepath.Join(dir, DeviceCACertFile), link); err == nil {
		t.Fatalf("Load through a symlink = nil error")
	}
	// The wrong key for the certificate.
	if _, err := Load(filepath.Join(dir, DeviceCACertFile), filepath.Join(dir, AdminCAKeyFile)); err == nil || !strings.Contains(err.Error(), "not the key") {
		t.Fatalf("Load(device cert, admin key) error = %v, want a mismatch", err)
	}
	// Garbage in a key file is refused without echoing it.
	bad := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(bad, []byte("-----BEGIN PRIVATE KEY-----\nU0VDUkVUU0VDUkVU\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	if _, err := LoadKey(bad); err == nil || strings.Contains(err.Error(), "U0VDUkVU") {
		t.Fatalf("LoadKey(garbage) error = %v", err)
	}
}

func TestIssueDevice(t *testing.T) {
	c := loadDevice(t, initDir(t))
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	now := time.Now()
	req := DeviceRequest{Serial: big.NewInt(42), PublicKey: &key.PublicKey, DeviceID: "dev-0123456789abcdef0123456789abcdef",
		DeviceSerial: "HP1-1", Group: "floor-1", NotBefore: now.Add(-Backdate), NotAfter: now.Add(DefaultDeviceLifetime)}
	der, err := c.IssueDevice(req)
	if err != nil {
		t.Fatalf("IssueDevice error %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("ParseCertificate: %v", err)
	}
	if cert.Subject.CommonName != req.DeviceID || cert.Subject.SerialNumber != "HP1-1" || cert.Subject.OrganizationalUnit[0] != "floor-1" {
		t.Fatalf("subject = %v, want CN=%s serialNumber=HP1-1 OU=floor-1", cert.Subject, req.DeviceID)
	}
	if len(cert.URIs) != 1 || cert.URIs[0].String() != DeviceURIPrefix+req.DeviceID {
		t.Fatalf("URIs = %v", cert.URIs)
	}
	if cert.IsCA || len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth || cert.SerialNumber.Int64() != 42 {
		t.Fatalf("certificate IsCA=%v EKU=%v serial=%v", cert.IsCA, cert.ExtKeyUsage, cert.SerialNumber)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: c.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("device certificate does not verify: %v", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: c.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Fatalf("device certificate verifies as a server")
	}
	rsaLike, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	tests := []struct {
		name string
		mod  func(*DeviceRequest)
		want error
	}{
		{"outlives CA", func(r *DeviceRequest) {
			r.NotBefore = c.Certificate().NotAfter.Add(-time.Hour)
			r.NotAfter = c.Certificate().NotAfter.Add(time.Hour)
		}, ErrOutlivesCA},
		{"too long", func(r *DeviceRequest) { r.NotAfter = r.NotBefore.Add(2 * MaxDeviceLifetime) }, errRequest},
		{"no serial", func(r *DeviceRequest) { r.Serial = nil }, errRequest},
		{"negative serial", func(r *DeviceRequest) { r.Serial = big.NewInt(-1) }, errRequest},
		{"P-384 key", func(r *DeviceRequest) { r.PublicKey = &rsaLike.PublicKey }, errRequest},
		{"no group", func(r *DeviceRequest) { r.Group = "" }, errRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := req
			tt.mod(&r)
			if _, err := c.IssueDevice(r); !errors.Is(err, tt.want) {
				t.Fatalf("IssueDevice(%s) error = %v, want %v", tt.name, err, tt.want)
			}
		})
	}
}

func TestCRL(t *testing.T) {
	c := loadDevice(t, initDir(t))
	now := time.Now().Truncate(time.Second)
	entries := []Revoked{{Serial: big.NewInt(7), RevokedAt: now, Reason: 1}, {Serial: big.NewInt(9), RevokedAt: now, Reason: 0}}
	der, err := c.CRL(3, entries, now, now.Add(time.Hour))
	if err != nil {
		t.Fatalf("CRL error %v", err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("ParseRevocationList: %v", err)
	}
	if err := crl.CheckSignatureFrom(c.Certificate()); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	if crl.Number.Int64() != 3 || len(crl.RevokedCertificateEntries) != 2 || crl.RevokedCertificateEntries[0].ReasonCode != 1 {
		t.Fatalf("CRL number %v, entries %+v", crl.Number, crl.RevokedCertificateEntries)
	}
	if _, err := c.CRL(0, nil, now, now.Add(time.Hour)); err == nil {
		t.Fatalf("CRL(number 0) = nil error")
	}
	if _, err := c.CRL(4, []Revoked{{Serial: big.NewInt(1), Reason: 7}}, now, now.Add(time.Hour)); err == nil {
		t.Fatalf("CRL(reason 7) = nil error")
	}
}

func TestLogValue(t *testing.T) {
	c := loadDevice(t, initDir(t))
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "ca", c)
	if !strings.Contains(buf.String(), "REDACTED") || strings.Contains(buf.String(), "D:") {
		t.Fatalf("log line %q", buf.String())
	}
}
