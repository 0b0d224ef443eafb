package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/client"
	"github.com/hardphone/hardphone/fleet/store"
	"github.com/hardphone/hardphone/fleet/store/boltstore"
	"github.com/hardphone/hardphone/fleet/store/pgstore"
	"github.com/hardphone/hardphone/test"
)

var ctx = context.Background()

// backend opens a fresh store, and replicas of it (nil for bbolt: one
// process owns the file, so replicas share the store value).
type backend struct {
	name    string
	open    func(t testing.TB) store.Store
	replica func(t testing.TB, s store.Store) store.Store
}

var (
	pgOnce sync.Once
	pg     *test.Postgres
	pgT    testing.TB
)

// backends lists bbolt and PostgreSQL. PostgreSQL is started once for the
// test binary by the first test that needs it (initdb costs seconds) and
// stopped by that test's cleanup, so the tests that use it are subtests of
// one top-level test each; see forEachBackend.
func backends(t *testing.T) []backend {
	dsns := sync.Map{} // store -> DSN
	return []backend{
		{name: "bbolt", open: func(t testing.TB) store.Store {
			s, err := boltstore.Open(filepath.Join(t.TempDir(), "data"))
			if err != nil {
				t.Fatalf("boltstore.Open error %v", err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}},
		{name: "postgres", open: func(tb testing.TB) store.Store {
			if pg == nil {
				pg = test.StartPostgres(t)
			}
			dsn := pg.NewDatabase(tb)
			s, err := pgstore.Open(ctx, dsn)
			if err != nil {
				tb.Fatalf("pgstore.Open error %v", err)
			}
			dsns.Store(s, dsn)
			tb.Cleanup(func() { s.Close() })
			return s
		}, replica: func(tb testing.TB, s store.Store) store.Store {
			dsn, _ := dsns.Load(s)
			r, err := pgstore.Open(ctx, dsn.(string))
			if err != nil {
				tb.Fatalf("pgstore.Open(replica) error %v", err)
			}
			tb.Cleanup(func() { r.Close() })
			return r
		}},
	}
}

// forEachBackend runs fn as a subtest per backend. PostgreSQL lives as
// long as the calling test.
func forEachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	t.Cleanup(func() { pg = nil })
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) { fn(t, b) })
	}
}

// fixture is a fleet server on loopback with a fresh PKI.
type fixture struct {
	dir         string
	st          store.Store
	srv         *Server
	url         string
	deviceCA    *ca.CA
	serverRoots *x509.CertPool
	admin       *client.Client
	offset      atomic.Int64 // server clock = now + offset (ns)
	logs        *logSink
	cancel      context.CancelFunc
	done        chan error
}

func (f *fixture) now() time.Time { return time.Now().Add(time.Duration(f.offset.Load())) }

// advance moves the server's clock (not TLS's) forward.
func (f *fixture) advance(d time.Duration) { f.offset.Add(int64(d)) }

// logSink keeps log output for assertions.
type logSink struct {
	mu  sync.Mutex
	buf []byte
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	return len(p), nil
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}

// initPKI makes a fleet PKI for a server reachable as 127.0.0.1 and
// "fleet.test".
func initPKI(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	if err := ca.Init(dir, ca.InitOptions{Organization: "Test Fleet", ServerNames: []string{"fleet.test"},
		ServerIPs: []net.IP{net.IPv4(127, 0, 0, 1)}, AdminName: "admin-1"}); err != nil {
		t.Fatalf("ca.Init error %v", err)
	}
	return dir
}

// newFixture starts a server on st. mfg are extra manufacturer roots (a
// throwaway one is always there).
func newFixture(t testing.TB, st store.Store, dir string, opts ...Option) *fixture {
	t.Helper()
	f := &fixture{dir: dir, st: st, logs: &logSink{}}
	var err error
	f.deviceCA, err = ca.Load(filepath.Join(dir, ca.DeviceCACertFile), filepath.Join(dir, ca.DeviceCAKeyFile))
	if err != nil {
		t.Fatalf("load device CA: %v", err)
	}
	adminCA, err := ca.LoadCertificate(filepath.Join(dir, ca.AdminCACertFile))
	if err != nil {
		t.Fatalf("load admin CA: %v", err)
	}
	f.serverRoots, err = ca.LoadPool(filepath.Join(dir, ca.ServerCACertFile))
	if err != nil {
		t.Fatalf("load server CA: %v", err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, ca.ServerCertFile), filepath.Join(dir, ca.ServerKeyFile))
	if err != nil {
		t.Fatalf("load server certificate: %v", err)
	}
	mfg := test.NewManufacturerCA(t, filepath.Join(t.TempDir(), "mfg"))
	opts = append([]Option{WithClock(f.now), WithLogger(slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))}, opts...)
	f.srv, err = New(Config{Store: st, DeviceCA: f.deviceCA, ManufacturerRoots: []*x509.Certificate{mfg.Cert},
		AdminCAs: []*x509.Certificate{adminCA}, Certificate: &cert}, opts...)
	if err != nil {
		t.Fatalf("New error %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	f.url = "https://" + ln.Addr().String()
	sctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan error, 1)
	go func() { f.done <- f.srv.Serve(sctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-f.done; err != nil {
			t.Errorf("Serve error %v", err)
		}
	})
	adminCert, err := tls.LoadX509KeyPair(filepath.Join(dir, ca.AdminCertFile), filepath.Join(dir, ca.AdminKeyFile))
	if err != nil {
		t.Fatalf("load admin certificate: %v", err)
	}
	f.admin = f.client(t, &adminCert)
	return f
}

// client is a fleet client of the server presenting cert (nil: none).
func (f *fixture) client(t testing.TB, cert *tls.Certificate) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{URL: f.url, ServerName: "fleet.test", Roots: f.serverRoots, Certificate: cert})
	if err != nil {
		t.Fatalf("client.New error %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// softDevice is a device enrolled directly through the CA and the store,
// with a software key: what the server sees of a phone after enrolment,
// without a TPM. For check-in, renewal and admin tests (and benchmarks).
type softDevice struct {
	id     store.DeviceID
	serial string
	key    *ecdsa.PrivateKey
	cert   *tls.Certificate
	c      *client.Client
}

const testModel = "hp-desk-1"

func ekOf(i int) store.EKHash { return sha256.Sum256(fmt.Appendf(nil, "ek-%d", i)) }

// newSoftDevice allow-lists device i, creates it with a certificate from
// the device CA (issued at the server's clock, lifetime life), and
// returns it with a client presenting that certificate.
func (f *fixture) newSoftDevice(t testing.TB, i int, life time.Duration) *softDevice {
	t.Helper()
	d := makeSoftDevice(t, f.st, f.deviceCA, i, f.now(), life)
	d.c = f.client(t, d.cert)
	return d
}

func makeSoftDevice(t testing.TB, st store.Store, dca *ca.CA, i int, now time.Time, life time.Duration) *softDevice {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	serial := fmt.Sprintf("HP1-%06d", i)
	if _, err := st.ImportAllowList(ctx, []store.AllowEntry{{EK: ekOf(i), Serial: serial, Model: testModel, Group: "floor-1", ImportedAt: now}}); err != nil {
		t.Fatalf("ImportAllowList error %v", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatalf("MarshalPKIXPublicKey: %v", err)
	}
	d := store.Device{ID: store.NewDeviceID(), Serial: serial, Model: testModel, Group: "floor-1", EK: ekOf(i),
		IdentityPublicKey: pub, State: store.StateEnrolled, EnrolledAt: now}
	cs, err := st.NextCertSerial(ctx)
	if err != nil {
		t.Fatalf("NextCertSerial error %v", err)
	}
	// TLS checks validity against the real clock; the server's may run
	// ahead, so the certificate starts at the earlier of the two.
	nb := now.Add(-ca.Backdate)
	if real := time.Now().Add(-ca.Backdate); real.Before(nb) {
		nb = real
	}
	der, err := dca.IssueDevice(ca.DeviceRequest{Serial: cs.BigInt(), PublicKey: &key.PublicKey, DeviceID: string(d.ID),
		DeviceSerial: serial, Group: d.Group, NotBefore: nb, NotAfter: now.Add(life)})
	if err != nil {
		t.Fatalf("IssueDevice error %v", err)
	}
	if err := st.CreateDevice(ctx, d, store.Cert{Serial: cs, DeviceID: d.ID, NotBefore: nb, NotAfter: now.Add(life), DER: der}); err != nil {
		t.Fatalf("CreateDevice error %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("ParseCertificate: %v", err)
	}
	return &softDevice{id: d.ID, serial: serial, key: key,
		cert: &tls.Certificate{Certificate: [][]byte{der, dca.Certificate().Raw}, PrivateKey: key, Leaf: leaf}}
}

// report is a good report of d at the server's time.
func (f *fixture) report(d *softDevice) api.Report {
	return api.Report{DeviceID: string(d.id), SentAt: f.now(), Model: testModel, Serial: d.serial,
		Firmware: api.Firmware{Version: "1.0.0", SecurityVersion: 5},
		Slots:    []api.Slot{{Name: "A", Version: "1.0.0", SecurityVersion: 5, Booted: true, Good: true}},
		Boot:     api.Boot{Slot: "A", AttemptsLeft: 3, MarkedGood: true}, CertNotAfter: d.cert.Leaf.NotAfter,
		Lockdown: api.Lockdown{OK: true}, Counters: map[string]uint64{"sip_auth_failures": 2}, UptimeSeconds: 100}
}

// wantCode fails unless err is an *api.Error with code.
func wantCode(t testing.TB, what string, err error, code api.Code) {
	t.Helper()
	var e *api.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("%s error = %v, want code %s", what, err, code)
	}
	if e.Status != code.Status() {
		t.Fatalf("%s status = %d, want %d", what, e.Status, code.Status())
	}
}
