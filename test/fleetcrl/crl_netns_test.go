package fleetcrl

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/client"
	"github.com/hardphone/hardphone/fleet/server"
	"github.com/hardphone/hardphone/fleet/store"
	"github.com/hardphone/hardphone/fleet/store/boltstore"
	"github.com/hardphone/hardphone/test"
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// make check: the inner loop runs unit tests only.
		fmt.Println("fleetcrl: skipped with -short (real Kamailio and an hpfleet server in a namespace: make test)")
		os.Exit(0)
	}
	test.RunInNetns(m)
}

var ctx = context.Background()

// phone is a device enrolled directly through the device CA and the store
// (a software key: the CRL path does not care where the key lives).
type phone struct {
	id   store.DeviceID
	cert tls.Certificate
}

func enrol(t *testing.T, st store.Store, dca *ca.CA, i int) phone {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	e := store.AllowEntry{EK: sha256.Sum256(fmt.Appendf(nil, "ek-%d", i)), Serial: fmt.Sprintf("HP1-%06d", i), Model: "hp-desk-1", Group: "floor-1", ImportedAt: now}
	if _, err := st.ImportAllowList(ctx, []store.AllowEntry{e}); err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	d := store.Device{ID: store.NewDeviceID(), Serial: e.Serial, Model: e.Model, Group: e.Group, EK: e.EK,
		IdentityPublicKey: pub, State: store.StateEnrolled, EnrolledAt: now}
	serial, err := st.NextCertSerial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nb, na := now.Add(-ca.Backdate), now.Add(ca.DefaultDeviceLifetime)
	der, err := dca.IssueDevice(ca.DeviceRequest{Serial: serial.BigInt(), PublicKey: &key.PublicKey, DeviceID: string(d.ID),
		DeviceSerial: d.Serial, Group: d.Group, NotBefore: nb, NotAfter: na})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateDevice(ctx, d, store.Cert{Serial: serial, DeviceID: d.ID, NotBefore: nb, NotAfter: na, DER: der}); err != nil {
		t.Fatal(err)
	}
	return phone{id: d.ID, cert: tls.Certificate{Certificate: [][]byte{der, dca.Certificate().Raw}, PrivateKey: key}}
}

// TestKamailioRefusesRevokedPhone: an admin revokes a phone on hpfleet;
// Kamailio, given the CRL hpfleet publishes, refuses that phone's TLS
// client certificate and still accepts the others; a second revocation
// reaches it with a new CRL and `kamcmd tls.reload`.
func TestKamailioRefusesRevokedPhone(t *testing.T) {
	dir := t.TempDir()
	pki := filepath.Join(dir, "fleet-pki")
	if err := ca.Init(pki, ca.InitOptions{Organization: "Acme Phones", ServerIPs: []net.IP{net.IPv4(127, 0, 0, 1)}, AdminName: "admin"}); err != nil {
		t.Fatal(err)
	}
	dca, err := ca.Load(filepath.Join(pki, ca.DeviceCACertFile), filepath.Join(pki, ca.DeviceCAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	st, err := boltstore.Open(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	good, bad := enrol(t, st, dca, 1), enrol(t, st, dca, 2)

	adminCA, err := ca.LoadCertificate(filepath.Join(pki, ca.AdminCACertFile))
	if err != nil {
		t.Fatal(err)
	}
	srvCert, err := tls.LoadX509KeyPair(filepath.Join(pki, ca.ServerCertFile), filepath.Join(pki, ca.ServerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	mfg := test.NewManufacturerCA(t, filepath.Join(dir, "mfg"))
	srv, err := server.New(server.Config{Store: st, DeviceCA: dca, ManufacturerRoots: []*x509.Certificate{mfg.Cert},
		AdminCAs: []*x509.Certificate{adminCA}, Certificate: &srvCert})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	roots, err := ca.LoadPool(filepath.Join(pki, ca.ServerCACertFile))
	if err != nil {
		t.Fatal(err)
	}
	adminCert, err := tls.LoadX509KeyPair(filepath.Join(pki, ca.AdminCertFile), filepath.Join(pki, ca.AdminKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := client.New(client.Config{URL: "https://" + ln.Addr().String(), Roots: roots, Certificate: &adminCert})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.CloseIdleConnections()
	crlFile := filepath.Join(dir, "fleet-crl.pem")
	revoke := func(p phone) {
		t.Helper()
		if _, err := admin.Revoke(ctx, string(p.id), "key_compromise"); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		der, err := admin.CRL(ctx)
		if err != nil {
			t.Fatalf("CRL: %v", err)
		}
		if err := os.WriteFile(crlFile, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	revoke(bad)

	kpki := test.NewPKI(t, filepath.Join(dir, "sip-pki"))
	// A user, or the generated config has an empty route Kamailio refuses.
	k := test.StartKamailio(t, test.KamailioUsers(map[string]string{"alice": "secret"}), test.KamailioPKI(kpki), test.KamailioCA(filepath.Join(pki, ca.DeviceCACertFile)), test.KamailioCRL(crlFile))
	sipRoots, err := ca.LoadPool(kpki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := options(k.Addr(), good.cert, sipRoots); err != nil {
		t.Fatalf("phone not revoked: Kamailio refused it: %v\n%s", err, tail(k.LogPath()))
	}
	err = options(k.Addr(), bad.cert, sipRoots)
	if err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked phone: %v, want a TLS alert certificate revoked\n%s", err, tail(k.LogPath()))
	}
	// The second revocation: a new CRL, reloaded.
	revoke(good)
	k.Kamcmd(t, "tls.reload")
	if err := options(k.Addr(), good.cert, sipRoots); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("phone revoked after Kamailio started, CRL reloaded: %v, want certificate revoked", err)
	}
}

// options opens a TLS connection to Kamailio with the phone's certificate
// and sends an OPTIONS; it returns nil when a SIP answer comes back.
func options(addr string, cert tls.Certificate, roots *x509.CertPool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{
		RootCAs: roots, ServerName: host, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	local := c.LocalAddr().String()
	msg := fmt.Sprintf("OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/TLS %s;branch=z9hG4bK%d\r\nMax-Forwards: 70\r\nFrom: <sip:probe@%s>;tag=1\r\nTo: <sip:%s>\r\nCall-ID: %d@probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
		host, local, time.Now().UnixNano(), host, host, time.Now().UnixNano())
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "SIP/2.0 ") {
		return fmt.Errorf("answer %q is not SIP", line)
	}
	return nil
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}
