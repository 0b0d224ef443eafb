package console

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardphone/hardphone/crypto/policy"
	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/adminauth/authtest"
	"github.com/hardphone/hardphone/fleet/adminauth/boltauth"
	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/audit/boltaudit"
	"github.com/hardphone/hardphone/fleet/console/approval/boltapproval"
	"github.com/hardphone/hardphone/fleet/store"
	"github.com/hardphone/hardphone/fleet/store/boltstore"
	"github.com/hardphone/hardphone/test"
)

var ctx = context.Background()

// consoleHost is the console's DNS name in the tests: WebAuthn needs a
// name, not an IP. The browser maps it to 127.0.0.1.
const consoleHost = "console.test"

// clock is the real time plus an offset the test moves forward (TOTP
// steps, step-up windows, lockout backoff) without waiting.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.off) }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.off += d; c.mu.Unlock() }

// env is an in-process hpfleet admin plane: the console over the real
// bbolt stores (fleet store, adminauth, audit log, approvals), served on
// 127.0.0.1 over TLS with crypto/policy's server configuration, named
// console.test.
type env struct {
	dir       string
	clock     *clock
	fleet     *boltstore.Store
	authStore *boltauth.Store
	auth      *adminauth.Authenticator
	log       *audit.Log
	storage   *boltaudit.Storage
	console   *Console
	pki       *test.PKI
	roots     *x509.CertPool
	leaf      *x509.Certificate
	addr      string // 127.0.0.1:PORT
	origin    string // https://console.test:PORT
	passwords map[string]string
	secrets   map[string]adminauth.TOTPSecret
}

type envOptions struct {
	lockout *adminauth.LockoutPolicy
	console []Option
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{dir: dir, clock: &clock{}, passwords: map[string]string{}, secrets: map[string]adminauth.TOTPSecret{}}
	var err error
	if e.fleet, err = boltstore.Open(filepath.Join(dir, "fleet")); err != nil {
		t.Fatalf("boltstore.Open error %v", err)
	}
	t.Cleanup(func() { e.fleet.Close() })
	if e.authStore, err = boltauth.Open(filepath.Join(dir, "auth")); err != nil {
		t.Fatalf("boltauth.Open error %v", err)
	}
	t.Cleanup(func() { e.authStore.Close() })
	skey, _, err := audit.GenerateKey("console.test/audit")
	if err != nil {
		t.Fatalf("audit.GenerateKey error %v", err)
	}
	key, err := audit.ParseKey(skey)
	if err != nil {
		t.Fatalf("audit.ParseKey error %v", err)
	}
	storage, err := boltaudit.Open(filepath.Join(dir, "audit"))
	if err != nil {
		t.Fatalf("boltaudit.Open error %v", err)
	}
	t.Cleanup(func() { storage.Close() })
	e.storage = storage
	if e.log, err = audit.New(storage, key, audit.WithClock(e.clock.Now)); err != nil {
		t.Fatalf("audit.New error %v", err)
	}
	approvals, err := boltapproval.Open(filepath.Join(dir, "approvals"))
	if err != nil {
		t.Fatalf("boltapproval.Open error %v", err)
	}
	t.Cleanup(func() { approvals.Close() })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	e.addr = ln.Addr().String()
	e.origin = "https://" + consoleHost + ":" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)

	wa, err := adminauth.NewWebAuthn(consoleHost, "hpfleet test", []string{e.origin})
	if err != nil {
		t.Fatalf("NewWebAuthn error %v", err)
	}
	authOpts := []adminauth.Option{adminauth.WithWebAuthn(wa), adminauth.WithClock(e.clock.Now),
		adminauth.WithHasher(authtest.FastHasher(t))}
	if o.lockout != nil {
		authOpts = append(authOpts, adminauth.WithLockout(*o.lockout))
	}
	if e.auth, err = adminauth.New(e.authStore, authOpts...); err != nil {
		t.Fatalf("adminauth.New error %v", err)
	}

	e.pki = test.NewPKI(t, filepath.Join(dir, "pki"))
	certFile, keyFile := e.pki.Server(consoleHost, net.IPv4(127, 0, 0, 1))
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("server key pair: %v", err)
	}
	e.leaf, _ = x509.ParseCertificate(cert.Certificate[0]) // LoadX509KeyPair parsed it already
	ca := readCert(t, e.pki.CAFile)
	e.roots = x509.NewCertPool()
	e.roots.AddCert(ca)

	if e.console, err = New(Config{Auth: e.auth, Admins: e.authStore, Audit: e.log, Inventory: e.fleet, Findings: e.fleet,
		Approvals: approvals, Origins: []string{e.origin}, AdminCAs: []*x509.Certificate{ca}},
		append([]Option{WithClock(e.clock.Now), WithHasher(authtest.FastHasher(t)),
			WithLogger(slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))}, o.console...)...); err != nil {
		t.Fatalf("console.New error %v", err)
	}
	tlsCfg, err := policy.ServerConfig(policy.ServerTLS{Certificate: &cert, ClientCAs: e.roots})
	if err != nil {
		t.Fatalf("policy.ServerConfig error %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle(WebPrefix, e.console.Handler())
	mux.Handle("/v1/console/", e.console.Handler())
	srv := &http.Server{Handler: mux, TLSConfig: tlsCfg, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelDebug)}
	go srv.Serve(tls.NewListener(ln, tlsCfg))
	t.Cleanup(func() { srv.Close() })
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// admin creates an admin as hpfleet's bootstrap does (directly, the two-
// person rule applies to changes made through the console), with the
// password "correct horse NAME".
func (e *env) admin(t *testing.T, name string, role adminauth.Role) adminauth.Admin {
	t.Helper()
	pw := "correct horse " + name
	a, err := e.auth.CreateAdmin(ctx, name, pw, role)
	if err != nil {
		t.Fatalf("CreateAdmin(%s) error %v", name, err)
	}
	e.passwords[name] = pw
	return a
}

// enrolTOTP enrols a TOTP secret for name through the Authenticator (as
// the admin's first login would) and remembers it.
func (e *env) enrolTOTP(t *testing.T, name string) adminauth.TOTPSecret {
	t.Helper()
	c := adminauth.Client{Addr: netip.MustParseAddr("10.9.9.9"), UserAgent: "enrolment"}
	res, err := e.auth.Login(ctx, name, e.passwords[name], c)
	if err != nil {
		t.Fatalf("Login(%s) error %v", name, err)
	}
	en, err := e.auth.BeginTOTPEnrolment(ctx, res.Token, c)
	if err != nil {
		t.Fatalf("BeginTOTPEnrolment(%s) error %v", name, err)
	}
	tok, err := e.auth.FinishTOTPEnrolment(ctx, res.Token, e.code(t, en.Secret), c)
	if err != nil {
		t.Fatalf("FinishTOTPEnrolment(%s) error %v", name, err)
	}
	if err := e.auth.Logout(ctx, tok); err != nil {
		t.Fatalf("Logout error %v", err)
	}
	e.secrets[name] = en.Secret
	return en.Secret
}

// code moves the clock to a fresh TOTP step and returns its code: every
// code a test uses is a new one (a step is accepted once per admin).
func (e *env) code(t *testing.T, secret adminauth.TOTPSecret) string {
	t.Helper()
	e.clock.Advance(30 * time.Second)
	return authtest.Code(t, secret, e.clock.Now())
}

// session logs name in through the Authenticator for client c and
// returns the full session token (for direct HTTP requests).
func (e *env) session(t *testing.T, name string, c adminauth.Client) string {
	t.Helper()
	res, err := e.auth.Login(ctx, name, e.passwords[name], c)
	if err != nil {
		t.Fatalf("Login(%s) error %v", name, err)
	}
	tok, err := e.auth.ProveTOTP(ctx, res.Token, e.code(t, e.secrets[name]), c)
	if err != nil {
		t.Fatalf("ProveTOTP(%s) error %v", name, err)
	}
	return tok
}

// seedDevices enrols n devices in the fleet store (allow-list entry,
// device, certificate) and gives each check-in reports whose counters
// grow and whose last lockdown check found drift.
func (e *env) seedDevices(t *testing.T, n int) []store.DeviceID {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test device CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("device CA: %v", err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	base := time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Second)
	var entries []store.AllowEntry
	for i := range n {
		entries = append(entries, store.AllowEntry{EK: sha256.Sum256(fmt.Appendf(nil, "ek-%d", i)),
			Serial: fmt.Sprintf("HP1-%06d", 1000+i), Model: "hp-desk-1", Group: []string{"floor-1", "floor-2", "lobby"}[i%3],
			ImportedAt: base})
	}
	if _, err := e.fleet.ImportAllowList(ctx, entries); err != nil {
		t.Fatalf("ImportAllowList error %v", err)
	}
	var ids []store.DeviceID
	for i, a := range entries {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		pub, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
		id := store.NewDeviceID()
		serial, err := e.fleet.NextCertSerial(ctx)
		if err != nil {
			t.Fatalf("NextCertSerial error %v", err)
		}
		enrolled := base.Add(time.Duration(i) * time.Minute)
		tmpl := &x509.Certificate{SerialNumber: serial.BigInt(), Subject: pkix.Name{CommonName: string(id)},
			NotBefore: enrolled, NotAfter: enrolled.Add(30 * 24 * time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatalf("device certificate: %v", err)
		}
		d := store.Device{ID: id, Serial: a.Serial, Model: a.Model, Group: a.Group, EK: a.EK, IdentityPublicKey: pub,
			State: store.StateEnrolled, EnrolledAt: enrolled}
		c := store.Cert{Serial: serial, DeviceID: id, NotBefore: enrolled, NotAfter: enrolled.Add(30 * 24 * time.Hour), DER: der}
		if err := e.fleet.CreateDevice(ctx, d, c); err != nil {
			t.Fatalf("CreateDevice error %v", err)
		}
		for r := range 3 {
			rep := store.Report{ReceivedAt: enrolled.Add(time.Duration(r+1) * time.Hour),
				Firmware:     store.FirmwareVersion{Version: "1.4." + strconv.Itoa(min(r, 1)), SecurityVersion: uint64(3 + min(r, 1))},
				Slots:        []store.SlotReport{{Name: "A", Version: "1.4.1", SecurityVersion: 4, Booted: true, Good: true}},
				Boot:         store.BootState{Slot: "A", AttemptsLeft: 3, MarkedGood: true},
				CertNotAfter: c.NotAfter, Lockdown: store.LockdownResult{OK: true},
				Counters: map[string]uint64{"sip_refused": uint64(r * (i + 2)), "srtp_auth_fail": uint64(r * r)},
				Uptime:   time.Duration(r+1) * time.Hour, Signed: []byte(`{"report":` + strconv.Itoa(r) + `}`)}
			if r == 2 && i%2 == 0 {
				rep.Lockdown = store.LockdownResult{OK: false, Findings: []string{"listener tcp/22 open (sshd) not in policy"}}
			}
			if err := e.fleet.PutReport(ctx, id, rep); err != nil {
				t.Fatalf("PutReport error %v", err)
			}
		}
		ids = append(ids, id)
	}
	return ids
}

// client is a direct HTTPS client of the console (no browser), with an
// optional admin client certificate; it follows no redirect.
func (e *env) client(t *testing.T, cert *tls.Certificate) *http.Client {
	t.Helper()
	tc, err := policy.ClientConfig(policy.ClientTLS{Roots: e.roots, ServerName: consoleHost, Certificate: cert})
	if err != nil {
		t.Fatalf("ClientConfig error %v", err)
	}
	d := &net.Dialer{Timeout: 10 * time.Second}
	tr := &http.Transport{TLSClientConfig: tc, DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, e.addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// adminCert issues an admin client certificate with common name cn.
func (e *env) adminCert(t *testing.T, cn string) *tls.Certificate {
	t.Helper()
	certFile, keyFile, _ := e.pki.Client(cn)
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("admin key pair: %v", err)
	}
	return &c
}

// response is what a direct request got.
type response struct {
	status int
	header http.Header
	body   string
}

// do sends a request to the console: path, a form (nil: GET), the session
// cookie, the Origin and the User-Agent.
func (e *env) do(t *testing.T, hc *http.Client, method, path string, form url.Values, session, origin, ua string) response {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, e.origin+path, body)
	if err != nil {
		t.Fatalf("NewRequest: %v", err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if session != "" {
		req.AddCookie(&http.Cookie{Name: cookieSession, Value: session})
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	req.Header.Set("User-Agent", ua)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// entries returns the audit log's entries.
func (e *env) entries(t *testing.T) []audit.Entry {
	t.Helper()
	n, err := e.log.Size(ctx)
	if err != nil {
		t.Fatalf("audit Size error %v", err)
	}
	var out []audit.Entry
	for from := int64(0); from < n; from += audit.MaxReadRecords {
		es, err := e.log.Entries(ctx, from, int(min(n-from, audit.MaxReadRecords)))
		if err != nil {
			t.Fatalf("audit Entries error %v", err)
		}
		for _, s := range es {
			out = append(out, s.Entry)
		}
	}
	return out
}

// find returns the audit entries matching action (and, when given, the
// actor ID and an outcome).
func find(es []audit.Entry, action audit.Action, actorID string, outcome audit.Outcome) []audit.Entry {
	var out []audit.Entry
	for _, x := range es {
		if x.Action == action && (actorID == "" || x.Actor.ID == actorID) && (outcome == "" || x.Outcome == outcome) {
			out = append(out, x)
		}
	}
	return out
}

// moduleRoot finds the directory of go.mod above the working directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("Getwd error %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above %s", dir)
		}
		dir = parent
	}
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

func readFull(r io.Reader, b []byte) (int, error) { return io.ReadFull(r, b) }

func auditAction(s string) audit.Action   { return audit.Action(s) }
func auditOutcome(s string) audit.Outcome { return audit.Outcome(s) }
