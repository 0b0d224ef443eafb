package provision

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/crypto/credstore"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/client"
	"github.com/hardphone/hardphone/fleet/server"
	"github.com/hardphone/hardphone/fleet/store"
	"github.com/hardphone/hardphone/fleet/store/boltstore"
	"github.com/hardphone/hardphone/fleet/store/pgstore"
	"github.com/hardphone/hardphone/hal/tpm"
	"github.com/hardphone/hardphone/test"
)

var ctx = context.Background()

// phone is a test phone: its own swtpm, manufactured with EK certificates
// by a test TPM manufacturer, and a credential store on it, as the phone's
// image builds it.
type phone struct {
	sw    *test.SWTPM
	tpm   *tpm.TPM
	db    *bolt.DB
	prot  *credstore.Protector
	creds *credstore.Store
	// ek is the SHA-256 of the ECC P-256 EK certificate, the one the phone
	// offers first: what the vendor's manifest lists.
	ek store.EKHash
}

func newPhone(t testing.TB, mfg *test.ManufacturerCA) *phone {
	t.Helper()
	p := &phone{sw: test.StartSWTPM(t, test.SWTPMWithEK(mfg))}
	var err error
	if p.tpm, err = tpm.Open(p.sw.Spec); err != nil {
		t.Fatalf("tpm.Open error %v", err)
	}
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatalf("Mkdir: %v", err)
	}
	if p.db, err = bolt.Open(filepath.Join(dir, "state.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second}); err != nil {
		t.Fatalf("bolt.Open error %v", err)
	}
	if p.prot, err = credstore.NewTPMProtector(p.tpm); err != nil {
		t.Fatalf("NewTPMProtector error %v", err)
	}
	if p.creds, err = credstore.Open(p.db, p.prot); err != nil {
		t.Fatalf("credstore.Open error %v", err)
	}
	t.Cleanup(func() {
		p.creds.Close()
		p.db.Close()
		p.tpm.Close()
	})
	p.ek = sha256.Sum256(p.sw.EKCertECCP256)
	return p
}

func (p *phone) allowEntry(i int) api.AllowEntry {
	return api.AllowEntry{EKSHA256: p.ek.String(), Serial: "HP1-" + strconv.Itoa(100000+i), Model: "hp-desk-1", Group: "floor-1"}
}

// fleet is an hpfleet server in this process, on loopback, with a fresh
// PKI and one manufacturer it trusts.
type fleet struct {
	dir         string
	mfg         *test.ManufacturerCA
	st          store.Store
	srv         *server.Server
	addr        string
	serverRoots *x509.CertPool
	deviceCA    *x509.Certificate
	admin       *client.Client
	offset      atomic.Int64
	stop        func()
}

func (f *fleet) now() time.Time { return time.Now().Add(time.Duration(f.offset.Load())) }

func initPKI(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	if err := ca.Init(dir, ca.InitOptions{Organization: "Test Fleet", ServerNames: []string{"fleet.test"},
		ServerIPs: []net.IP{net.IPv4(127, 0, 0, 1)}, AdminName: "admin-1"}); err != nil {
		t.Fatalf("ca.Init error %v", err)
	}
	return dir
}

// startFleet serves st with the PKI in dir, trusting mfg.
func startFleet(t testing.TB, st store.Store, dir string, mfg *test.ManufacturerCA, opts ...server.Option) *fleet {
	t.Helper()
	f := &fleet{dir: dir, mfg: mfg, st: st}
	dca, err := ca.Load(filepath.Join(dir, ca.DeviceCACertFile), filepath.Join(dir, ca.DeviceCAKeyFile))
	if err != nil {
		t.Fatalf("load device CA: %v", err)
	}
	f.deviceCA = dca.Certificate()
	adminCA, err := ca.LoadCertificate(filepath.Join(dir, ca.AdminCACertFile))
	if err != nil {
		t.Fatalf("load admin CA: %v", err)
	}
	if f.serverRoots, err = ca.LoadPool(filepath.Join(dir, ca.ServerCACertFile)); err != nil {
		t.Fatalf("load server CA: %v", err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, ca.ServerCertFile), filepath.Join(dir, ca.ServerKeyFile))
	if err != nil {
		t.Fatalf("load server certificate: %v", err)
	}
	opts = append([]server.Option{server.WithClock(f.now), server.WithLogger(testLogger(t))}, opts...)
	f.srv, err = server.New(server.Config{Store: st, DeviceCA: dca, ManufacturerRoots: []*x509.Certificate{mfg.Cert},
		AdminCAs: []*x509.Certificate{adminCA}, Certificate: &cert}, opts...)
	if err != nil {
		t.Fatalf("server.New error %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	f.addr = ln.Addr().String()
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.Serve(sctx, ln) }()
	var once sync.Once
	f.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve error %v", err)
			}
		})
	}
	t.Cleanup(f.stop)
	adminCert, err := tls.LoadX509KeyPair(filepath.Join(dir, ca.AdminCertFile), filepath.Join(dir, ca.AdminKeyFile))
	if err != nil {
		t.Fatalf("load admin certificate: %v", err)
	}
	if f.admin, err = client.New(client.Config{URL: f.url(), ServerName: "fleet.test", Roots: f.serverRoots, Certificate: &adminCert}); err != nil {
		t.Fatalf("client.New error %v", err)
	}
	t.Cleanup(f.admin.CloseIdleConnections)
	return f
}

func (f *fleet) url() string { return "https://" + f.addr }

// provisioner is phone p's provisioning client for fleet f, with short
// backoffs.
func (f *fleet) provisioner(t testing.TB, p *phone, opts ...Option) *Client {
	t.Helper()
	opts = append([]Option{WithBackoff(10*time.Millisecond, 100*time.Millisecond), WithLogger(testLogger(t))}, opts...)
	c, err := New(Config{Credentials: p.creds, ServerURL: f.url(), ServerName: "fleet.test", ServerRoots: f.serverRoots,
		DeviceCA: f.deviceCA, Wipe: p.creds.Wipe}, opts...)
	if err != nil {
		t.Fatalf("New error %v", err)
	}
	return c
}

func (f *fleet) allow(t testing.TB, entries ...api.AllowEntry) {
	t.Helper()
	if _, err := f.admin.Import(ctx, entries); err != nil {
		t.Fatalf("Import error %v", err)
	}
}

// testLogger logs to the test's output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// backend is a fresh store of each kind.
type backend struct {
	name string
	open func(t testing.TB) store.Store
}

func backends(t *testing.T) []backend {
	var pg *test.Postgres
	return []backend{
		{"bbolt", func(tb testing.TB) store.Store {
			s, err := boltstore.Open(filepath.Join(tb.TempDir(), "data"))
			if err != nil {
				tb.Fatalf("boltstore.Open error %v", err)
			}
			tb.Cleanup(func() { s.Close() })
			return s
		}},
		{"postgres", func(tb testing.TB) store.Store {
			if pg == nil {
				pg = test.StartPostgres(t)
			}
			s, err := pgstore.Open(ctx, pg.NewDatabase(tb))
			if err != nil {
				tb.Fatalf("pgstore.Open error %v", err)
			}
			tb.Cleanup(func() { s.Close() })
			return s
		}},
	}
}

// report is what the phone's agent would fill in.
func report() api.Report {
	return api.Report{Model: "hp-desk-1", Firmware: api.Firmware{Version: "1.0.0", SecurityVersion: 3},
		Slots:    []api.Slot{{Name: "A", Version: "1.0.0", SecurityVersion: 3, Booted: true, Good: true}},
		Boot:     api.Boot{Slot: "A", AttemptsLeft: 3, MarkedGood: true},
		Lockdown: api.Lockdown{OK: true}, UptimeSeconds: 60}
}

func writeFile(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
}
