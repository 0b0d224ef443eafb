package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/adminauth/authtest"
	"github.com/hardphone/hardphone/fleet/adminauth/pgauth"
	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/console/consoleapi"
	"github.com/hardphone/hardphone/fleet/console/consoleclient"
	"github.com/hardphone/hardphone/test"
)

// consoleWorld is hpfleet (the binary) on bbolt with a fresh PKI.
type consoleWorld struct {
	dir, pki, data, mfg string
	bin                 string
	roots               *x509.CertPool
	adminCA             *ca.CA
}

func newConsoleWorld(t *testing.T, auditKey bool) *consoleWorld {
	bin, _ := binaries(t)
	dir := t.TempDir()
	w := &consoleWorld{dir: dir, pki: filepath.Join(dir, "pki"), data: filepath.Join(dir, "data"), bin: bin}
	if err := ca.Init(w.pki, ca.InitOptions{Organization: "Acme Phones", ServerNames: []string{fleetName},
		ServerIPs: []net.IP{net.IPv4(127, 0, 0, 1)}, AdminName: "admin"}); err != nil {
		t.Fatalf("ca.Init: %v", err)
	}
	if auditKey {
		if _, err := audit.WriteKeyFiles(filepath.Join(w.pki, AuditKeyFile), filepath.Join(w.pki, AuditKeyFile+".pub"), fleetName+"/audit"); err != nil {
			t.Fatalf("audit key: %v", err)
		}
	}
	w.mfg = test.NewManufacturerCA(t, filepath.Join(dir, "mfg")).CertFile
	var err error
	if w.roots, err = ca.LoadPool(filepath.Join(w.pki, ca.ServerCACertFile)); err != nil {
		t.Fatalf("roots: %v", err)
	}
	if w.adminCA, err = ca.Load(filepath.Join(w.pki, ca.AdminCACertFile), filepath.Join(w.pki, ca.AdminCAKeyFile)); err != nil {
		t.Fatalf("admin CA: %v", err)
	}
	return w
}

// run runs the binary to its end.
func (w *consoleWorld) run(args ...string) (string, error) {
	cmd := exec.Command(w.bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

var passwordLine = regexp.MustCompile(`initial password \(shown once\): ([A-Z2-7=]+)\n`)

// bootstrap runs `hpfleet admin bootstrap` and returns the password.
func (w *consoleWorld) bootstrap(t *testing.T, name string) string {
	t.Helper()
	out, err := w.run("admin", "bootstrap", "--data", w.data, "--ca-dir", w.pki, "--name", name)
	if err != nil {
		t.Fatalf("hpfleet admin bootstrap --name %s: %v\n%s", name, err, out)
	}
	m := passwordLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("hpfleet admin bootstrap output has no password:\n%s", out)
	}
	return m[1]
}

func (w *consoleWorld) start(t *testing.T, extra ...string) *test.HPFleet {
	t.Helper()
	f := test.StartHPFleet(t, w.bin, filepath.Join(w.pki, ca.ServerCACertFile), fleetName,
		append([]string{"--data", w.data, "--ca-dir", w.pki, "--manufacturer-ca", w.mfg, "--audit-checkpoint-interval", "1s"}, extra...)...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- hpfleet log ---\n%s", f.LogTail())
		}
	})
	return f
}

// certificate issues an admin client certificate naming name.
func (w *consoleWorld) certificate(t *testing.T, name string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("key: %v", err)
	}
	der, err := w.adminCA.IssueAdmin(key.Public(), name, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatalf("IssueAdmin: %v", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// certificateFiles issues an admin client certificate naming name into
// PEM files (the key mode 0600), as hpctl reads them.
func (w *consoleWorld) certificateFiles(t *testing.T, name string) (certFile, keyFile string) {
	t.Helper()
	c := w.certificate(t, name)
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(w.dir, name+".crt"), filepath.Join(w.dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// web is a plain HTTPS client of the server (no client certificate).
func (w *consoleWorld) web(f *test.HPFleet) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: w.roots, ServerName: fleetName, MinVersion: tls.VersionTLS12}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp, string(b)
}

// loginEnrol logs name in over the JSON API for the first time: password,
// then TOTP enrolment.
func loginEnrol(t *testing.T, ctx context.Context, c *consoleclient.Client, name, password string) adminauth.TOTPSecret {
	t.Helper()
	res, err := c.Login(ctx, name, password)
	if err != nil || res.Stage != consoleapi.StageEnrol {
		t.Fatalf("Login(%s) = %+v, %v; want stage %s", name, res, err, consoleapi.StageEnrol)
	}
	en, err := c.EnrolTOTP(ctx)
	if err != nil {
		t.Fatalf("EnrolTOTP(%s): %v", name, err)
	}
	if err := c.ConfirmTOTP(ctx, authtest.Code(t, adminauth.TOTPSecret(en.Secret), time.Now())); err != nil {
		t.Fatalf("ConfirmTOTP(%s): %v", name, err)
	}
	return adminauth.TOTPSecret(en.Secret)
}

// TestConsoleBinary: hpfleet serve serves the admin console. The first
// two security admins come from `hpfleet admin bootstrap` (a third is
// refused); each logs in over the JSON API with a client certificate,
// the password and TOTP, lists the inventory; one proposes an admin, the
// other approves, and the audit trail holds every step. The web console
// serves its login page with the CSP.
func TestConsoleBinary(t *testing.T) {
	w := newConsoleWorld(t, true)
	pwAlice, pwBob := w.bootstrap(t, "alice"), w.bootstrap(t, "bob")
	if out, err := w.run("admin", "bootstrap", "--data", w.data, "--ca-dir", w.pki, "--name", "mallory"); err == nil ||
		!strings.Contains(out, "2 security admins exist already") {
		t.Fatalf("third hpfleet admin bootstrap = %v\n%s\nwant refused: 2 security admins exist", err, out)
	}
	f := w.start(t)
	ctx := context.Background()
	client := func(name string) *consoleclient.Client {
		c, err := consoleclient.New(consoleclient.Config{URL: "https://" + fleetName + ":" + portOf(t, f.Addr), Roots: w.roots,
			Certificate: w.certificate(t, name), DialAddr: f.Addr})
		if err != nil {
			t.Fatalf("consoleclient.New: %v", err)
		}
		return c
	}
	alice, bob := client("alice"), client("bob")

	// A password alone, or another admin's certificate, logs nobody in.
	if _, err := client("bob").Login(ctx, "alice", pwAlice); err == nil {
		t.Fatalf("Login(alice with bob's certificate) succeeded")
	}
	aliceTOTP := loginEnrol(t, ctx, alice, "alice", pwAlice)
	loginEnrol(t, ctx, bob, "bob", pwBob)

	page, err := alice.Devices(ctx, "")
	if err != nil {
		t.Fatalf("Devices: %v", err)
	}
	if len(page.Devices) != 0 {
		t.Errorf("Devices = %d devices, want 0 (none enrolled)", len(page.Devices))
	}
	ch, err := alice.ProposeAdmin(ctx, "carol", "viewer", "correct horse battery carol")
	if err != nil || ch.State != "pending" {
		t.Fatalf("ProposeAdmin(carol) = %+v, %v; want pending", ch, err)
	}
	if _, err := alice.Approve(ctx, ch.ID); err == nil {
		t.Fatalf("Approve(own change) succeeded")
	}
	admins, err := bob.Admins(ctx)
	if err != nil {
		t.Fatalf("Admins: %v", err)
	}
	for _, a := range admins {
		if a.Name == "carol" {
			t.Fatalf("carol exists before the second approval: %+v", a)
		}
	}
	done, err := bob.Approve(ctx, ch.ID)
	if err != nil || done.DecidedBy != "bob" {
		t.Fatalf("Approve(bob) = %+v, %v; want decided by bob", done, err)
	}
	admins, err = bob.Admins(ctx)
	if err != nil {
		t.Fatalf("Admins: %v", err)
	}
	var carol bool
	for _, a := range admins {
		carol = carol || (a.Name == "carol" && a.Role == "viewer")
	}
	if !carol {
		t.Errorf("Admins = %+v, want carol (viewer) after bob's approval", admins)
	}

	// The audit trail: the bootstraps, the logins, the proposal, the
	// refused self-approval and the approval.
	ap, err := bob.Audit(ctx, 0)
	if err != nil {
		t.Fatalf("Audit: %v", err)
	}
	seen := map[string]int{}
	for _, e := range ap.Entries {
		seen[e.Action+" "+e.Target+" "+e.Outcome]++
	}
	for _, want := range []string{"admin.create admin alice success", "admin.create admin bob success",
		"approval.request admin carol pending", "approval.grant admin carol denied", "approval.grant admin carol success",
		"admin.create admin carol success", "admin.enrol_factor  success"} {
		if seen[want] == 0 {
			t.Errorf("audit trail has no %q; it has %v", want, seen)
		}
	}
	if ap.Size < int64(len(ap.Entries)) || len(ap.Entries) < 8 {
		t.Errorf("audit page size %d with %d entries, want at least 8", ap.Size, len(ap.Entries))
	}

	// hpctl fleet login: the same login from the command line, the token
	// kept in a 0600 file that the session commands send; a wrong code
	// writes nothing.
	_, hpctl := binaries(t)
	certFile, keyFile := w.certificateFiles(t, "alice")
	pwFile, session := filepath.Join(w.dir, "alice.pw"), filepath.Join(w.dir, "alice.session")
	if err := os.WriteFile(pwFile, []byte(pwAlice+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	login := func(code string) (string, error) {
		out, err := exec.Command(hpctl, "fleet", "login", "--server", f.URL, "--server-name", fleetName,
			"--server-ca", filepath.Join(w.pki, ca.ServerCACertFile), "--cert", certFile, "--key", keyFile,
			"--session", session, "--password-file", pwFile, "--totp", code).CombinedOutput()
		return string(out), err
	}
	if out, err := login("000000"); err == nil || !strings.Contains(out, "second factor") {
		t.Fatalf("hpctl fleet login with a wrong code = %v\n%s\nwant refused at the second factor", err, out)
	}
	if _, err := os.Stat(session); err == nil {
		t.Fatalf("a failed login wrote %s", session)
	}
	// The next step's code: the one ConfirmTOTP used is spent.
	if out, err := login(authtest.Code(t, aliceTOTP, time.Now().Add(30*time.Second))); err != nil || !strings.Contains(out, "logged in as alice") {
		t.Fatalf("hpctl fleet login: %v\n%s", err, out)
	}
	if st, err := os.Stat(session); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("session file %v, %v; want mode 0600", st, err)
	}
	// The session gets past the admin check: this server has no director,
	// so the rollouts say they are not configured; without it, or with
	// another admin's certificate, the same call is refused before that.
	list := func(cert, key string, session ...string) string {
		args := []string{"fleet", "rollout", "list", "--server", f.URL, "--server-name", fleetName,
			"--server-ca", filepath.Join(w.pki, ca.ServerCACertFile), "--cert", cert, "--key", key}
		out, _ := exec.Command(hpctl, append(args, session...)...).CombinedOutput()
		return string(out)
	}
	if out := list(certFile, keyFile, "--session", session); !strings.Contains(out, "not_configured") {
		t.Errorf("hpctl fleet rollout list with alice's session:\n%s\nwant past the session check (not_configured: no director)", out)
	}
	if out := list(certFile, keyFile); strings.Contains(out, "not_configured") {
		t.Errorf("hpctl fleet rollout list without a session:\n%s\nwant refused before the rollouts", out)
	}
	bobCert, bobKey := w.certificateFiles(t, "bob")
	if out := list(bobCert, bobKey, "--session", session); strings.Contains(out, "not_configured") {
		t.Errorf("hpctl fleet rollout list with bob's certificate and alice's session:\n%s\nwant refused", out)
	}

	// The web console: its login page, with the CSP and no framing.
	web := w.web(f)
	resp, body := get(t, web, f.URL+"/console/login")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="password"`) {
		t.Fatalf("GET /console/login = %d\n%s\nwant 200 and the login form", resp.StatusCode, body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("GET /console/login CSP = %q, want script-src 'self' and frame-ancestors 'none'", csp)
	}
	if resp, _ := get(t, web, f.URL+"/console/inventory"); resp.StatusCode == http.StatusOK {
		t.Errorf("GET /console/inventory without a session = 200, want a refusal or a redirect to the login")
	}
}

// TestConsoleOffWithoutAudit: without an audit key hpfleet serves the
// fleet API but not the console, and /console/ says how to turn it on;
// bootstrap refuses likewise.
func TestConsoleOffWithoutAudit(t *testing.T) {
	w := newConsoleWorld(t, false)
	if out, err := w.run("admin", "bootstrap", "--data", w.data, "--ca-dir", w.pki, "--name", "alice"); err == nil ||
		!strings.Contains(out, "no audit key") {
		t.Fatalf("hpfleet admin bootstrap without an audit key = %v\n%s\nwant refused", err, out)
	}
	f := w.start(t)
	web := w.web(f)
	for _, path := range []string{"/console/", "/console/login", "/v1/console/session"} {
		resp, body := get(t, web, f.URL+path)
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "hpctl fleet audit keygen") {
			t.Errorf("GET %s = %d %q, want 503 saying how to enable the console", path, resp.StatusCode, body)
		}
	}
	if !strings.Contains(f.Log(), "admin console off") {
		t.Errorf("hpfleet log does not say the console is off:\n%s", f.LogTail())
	}
	if resp, _ := get(t, web, f.URL+"/v1/health"); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v1/health = %d, want 200", resp.StatusCode)
	}
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return port
}

// TestBootstrapConcurrentPostgres: six `hpfleet admin bootstrap` started
// at once against one PostgreSQL database (shells on two replicas' hosts)
// make exactly two security admins; the others are refused, and none
// fails any other way. Without the store's exclusive lock each would
// count the admins before any inserted, and all six would succeed.
func TestBootstrapConcurrentPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("short: real servers end to end; make test runs it")
	}
	w := newConsoleWorld(t, true)
	pg := test.StartPostgres(t)
	dsn := pg.NewDatabase(t)
	dsnFile := filepath.Join(w.dir, "dsn")
	if err := os.WriteFile(dsnFile, []byte(dsn), 0o600); err != nil {
		t.Fatal(err)
	}
	// The schema first, so the six race on the admins, not on migrations.
	if out, err := w.run("admin", "bootstrap", "--postgres", "@"+dsnFile, "--ca-dir", w.pki, "--name", "first"); err != nil {
		t.Fatalf("first bootstrap: %v\n%s", err, out)
	}
	const n = 6
	type result struct {
		out string
		err error
	}
	results := make(chan result, n)
	for i := range n {
		go func() {
			out, err := w.run("admin", "bootstrap", "--postgres", "@"+dsnFile, "--ca-dir", w.pki, "--name", fmt.Sprintf("sec%d", i))
			results <- result{out, err}
		}()
	}
	created := 0
	for range n {
		r := <-results
		switch {
		case r.err == nil:
			created++
		case !strings.Contains(r.out, "security admins exist already"):
			t.Errorf("bootstrap failed otherwise: %v\n%s", r.err, r.out)
		}
	}
	if created != 1 {
		t.Fatalf("%d of %d concurrent bootstraps created an admin after the first, want exactly 1 (two security admins in all)", created, n)
	}
	as, err := pgauth.Open(context.Background(), dsn, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	admins, err := as.ListAdmins(context.Background(), adminauth.MaxListAdmins)
	if err != nil {
		t.Fatal(err)
	}
	sec := 0
	for _, a := range admins {
		if a.Role == adminauth.RoleSecurityAdmin && !a.Disabled {
			sec++
		}
	}
	if sec != 2 {
		t.Fatalf("%d security admins in the database, want 2: %+v", sec, admins)
	}
}
