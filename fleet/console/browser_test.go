package console

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/remote"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/test"
)

// The browser tests drive Debian's headless Chromium over the DevTools
// protocol against the console on 127.0.0.1, named console.test (the
// browser maps the name; WebAuthn refuses IP origins), with the test
// CA's server certificates trusted by their keys. Each admin gets its own
// browser context (its own cookie jar), some a virtual WebAuthn
// authenticator.

// evilHost is "another site" the tests serve a cross-site form from.
const evilHost = "evil.test"

// browserTimeout bounds one browser test's protocol calls; a hung
// browser fails the test rather than the whole run.
const browserTimeout = time.Minute

type browser struct {
	e      *env
	chrome *test.Chromium
	alloc  context.Context
}

func (e *env) browser(t *testing.T, extra ...*x509.Certificate) *browser {
	t.Helper()
	chrome := test.StartChromium(t, test.ChromiumOptions{
		Hosts:       map[string]string{consoleHost: "127.0.0.1", evilHost: "127.0.0.1"},
		TrustLeaves: append([]*x509.Certificate{e.leaf}, extra...),
	})
	alloc, cancel := remote.NewAllocator(context.Background(), chrome.DevToolsURL, remote.NoModifyURL)
	t.Cleanup(cancel)
	return &browser{e: e, chrome: chrome, alloc: alloc}
}

// tab opens a tab in a browser context of its own; with passkey, a
// virtual platform authenticator (user verification succeeds, presence
// is simulated) is attached to it.
func (b *browser) tab(t *testing.T, passkey bool) context.Context {
	t.Helper()
	tctx, cancel := chromedp.NewContext(b.alloc, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	tctx, cancel2 := context.WithTimeout(tctx, browserTimeout)
	t.Cleanup(cancel2)
	if err := chromedp.Do(tctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("open tab: %v\n%s", err, b.chrome.LogTail())
	}
	if passkey {
		if _, err := chromedp.Call(tctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			t.Fatalf("WebAuthn.enable: %v", err)
		}
		_, err := chromedp.Call(tctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
			Options: &webauthn.VirtualAuthenticatorOptions{Protocol: webauthn.AuthenticatorProtocolCtap2,
				Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
				IsUserVerified: true, AutomaticPresenceSimulation: true}})
		if err != nil {
			t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
		}
	}
	return tctx
}

// open navigates to a console path and returns the document's status.
func (b *browser) open(t *testing.T, tctx context.Context, path string) int64 {
	t.Helper()
	resp, err := chromedp.Run(tctx, chromedp.NavigateResponse(b.e.origin+path))
	if err != nil {
		t.Fatalf("navigate %s: %v", path, err)
	}
	return resp.Status
}

// submit clicks a button that submits a form and returns the status of
// the page it leads to (after redirects).
func submit(t *testing.T, tctx context.Context, sel string) int64 {
	t.Helper()
	resp, err := chromedp.RunResponse(tctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		t.Fatalf("click %s: %v", sel, err)
	}
	return resp.Status
}

func typeIn(t *testing.T, tctx context.Context, sel, text string) {
	t.Helper()
	if err := chromedp.Do(tctx, chromedp.SendKeys(chromedp.CSS(sel), text, chromedp.NodeVisible)); err != nil {
		t.Fatalf("type into %s: %v", sel, err)
	}
}

func location(t *testing.T, tctx context.Context) string {
	t.Helper()
	loc, err := chromedp.Run(tctx, chromedp.Location())
	if err != nil {
		t.Fatalf("location: %v", err)
	}
	return loc
}

// path is the location's path and query on the console.
func (b *browser) path(t *testing.T, tctx context.Context) string {
	t.Helper()
	return strings.TrimPrefix(location(t, tctx), b.e.origin)
}

func text(t *testing.T, tctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func count(t *testing.T, tctx context.Context, sel string) int {
	t.Helper()
	n, err := chromedp.Run(tctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
	if err != nil {
		t.Fatalf("count %s: %v", sel, err)
	}
	return n
}

// waitFor waits until sel is visible (after a script-driven navigation).
func waitFor(t *testing.T, tctx context.Context, sel string) {
	t.Helper()
	if err := chromedp.Do(tctx, chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		t.Fatalf("wait for %s: %v", sel, err)
	}
}

// shot saves a screenshot of the page as out/console/NAME.png.
func shot(t *testing.T, tctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join(moduleRoot(t), "out", "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("screenshot dir: %v", err)
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	t.Logf("screenshot %s", p)
}

// loginPassword fills the login form and returns the status of the page
// after it.
func (b *browser) loginPassword(t *testing.T, tctx context.Context, name, password string) int64 {
	t.Helper()
	b.open(t, tctx, "/console/login")
	typeIn(t, tctx, "#name", name)
	typeIn(t, tctx, "#password", password)
	return submit(t, tctx, "#login")
}

// loginTOTP logs name in with its password and a TOTP code.
func (b *browser) loginTOTP(t *testing.T, tctx context.Context, name string) {
	t.Helper()
	if st := b.loginPassword(t, tctx, name, b.e.passwords[name]); st != http.StatusOK {
		t.Fatalf("password step of %s: status %d", name, st)
	}
	typeIn(t, tctx, "#code", b.e.code(t, b.e.secrets[name]))
	if st := submit(t, tctx, "#totp-submit"); st != http.StatusOK {
		t.Fatalf("TOTP step of %s: status %d at %s", name, st, b.path(t, tctx))
	}
	if p := b.path(t, tctx); p != "/console/inventory" {
		t.Fatalf("after login of %s: at %s, want /console/inventory", name, p)
	}
}

// TestBrowserTOTPLogin: an admin logs in with password and TOTP and walks
// the console's pages; screenshots of each land in out/console.
func TestBrowserTOTPLogin(t *testing.T) {
	if testing.Short() {
		t.Skip("short: real servers end to end; make test runs it")
	}
	e := newEnv(t, envOptions{})
	devs := e.seedDevices(t, 7)
	e.seedFinding(t, devs[0])
	e.admin(t, "alice", "security_admin")
	e.enrolTOTP(t, "alice")
	e.admin(t, "bob", "security_admin")
	carol := e.admin(t, "carol", "viewer")
	e.admin(t, "dave", "operator")
	e.admin(t, "erin", "auditor")
	b := e.browser(t)
	tab := b.tab(t, false)

	if st := b.open(t, tab, "/console/"); st != http.StatusOK || b.path(t, tab) != "/console/login" {
		t.Fatalf("GET /console/ without a session: %d at %s, want the login page", st, b.path(t, tab))
	}
	shot(t, tab, "login")
	if st := b.loginPassword(t, tab, "alice", e.passwords["alice"]); st != http.StatusOK {
		t.Fatalf("password step: status %d: %s", st, text(t, tab, "main"))
	}
	if count(t, tab, "#totp-form") != 1 || count(t, tab, "#passkey") != 0 {
		t.Fatalf("second-factor page: want the TOTP form and no passkey button (alice has none)")
	}
	shot(t, tab, "second-factor")
	typeIn(t, tab, "#code", e.code(t, e.secrets["alice"]))
	if st := submit(t, tab, "#totp-submit"); st != http.StatusOK || b.path(t, tab) != "/console/inventory" {
		t.Fatalf("TOTP step: %d at %s, want the inventory", st, b.path(t, tab))
	}
	if n := count(t, tab, "#devices tbody tr"); n != len(devs) {
		t.Fatalf("inventory shows %d devices, want %d", n, len(devs))
	}
	shot(t, tab, "inventory")

	if st := b.open(t, tab, "/console/devices/"+string(devs[0])); st != http.StatusOK {
		t.Fatalf("device page: %d", st)
	}
	if n := count(t, tab, "#reports tbody tr"); n != 3 {
		t.Fatalf("device page shows %d reports, want 3", n)
	}
	if !strings.Contains(text(t, tab, "main"), "lockdown.drift") {
		t.Fatalf("device page: no lockdown.drift event")
	}
	shot(t, tab, "device")
	if st := b.open(t, tab, "/console/events"); st != http.StatusOK || count(t, tab, "#events tbody tr") == 0 ||
		count(t, tab, "#findings tbody tr") != 1 {
		t.Fatalf("events page: %d with %d events and %d findings, want events and the one finding", st,
			count(t, tab, "#events tbody tr"), count(t, tab, "#findings tbody tr"))
	}
	shot(t, tab, "events")

	// Something to approve, for the approvals page: a proposal through
	// the admins page.
	if st := b.open(t, tab, "/console/admins"); st != http.StatusOK {
		t.Fatalf("admins page: %d", st)
	}
	shot(t, tab, "admins")
	if err := chromedp.Do(tab, chromedp.SetValue(chromedp.CSS("#admin-carol select"), "operator")); err != nil {
		t.Fatalf("choose carol's role: %v", err)
	}
	if st := submit(t, tab, "#admin-carol .role-form button"); st != http.StatusOK || b.path(t, tab) != "/console/approvals" {
		t.Fatalf("propose carol's role: %d at %s", st, b.path(t, tab))
	}
	if !strings.Contains(text(t, tab, "#pending"), "needs another admin") {
		t.Fatalf("approvals page offers alice her own change: %q", text(t, tab, "#pending"))
	}
	shot(t, tab, "approvals")
	if ad, _ := e.authStore.AdminByID(ctx, carol.ID); ad.Role != "viewer" {
		t.Fatalf("carol is %s before any approval, want viewer", ad.Role)
	}

	if _, err := e.log.Checkpoint(ctx); err != nil {
		t.Fatalf("Checkpoint error %v", err)
	}
	if st := b.open(t, tab, "/console/audit"); st != http.StatusOK {
		t.Fatalf("audit page: %d", st)
	}
	if v := text(t, tab, "#verify"); !strings.HasPrefix(v, "Verified:") {
		t.Fatalf("audit page verification: %q, want Verified", v)
	}
	shot(t, tab, "audit")
	// This console runs without the rollout engine: the page says so
	// (hpfleet's binary test has one), and a rollout's page and its
	// buttons answer that there is none.
	if st := b.open(t, tab, "/console/rollouts"); st != http.StatusNotImplemented || count(t, tab, "#not-available") != 1 ||
		!strings.Contains(text(t, tab, "#not-available"), "without the rollout engine") {
		t.Fatalf("rollouts page: %d, want 501 saying this server runs without the rollout engine", st)
	}
	shot(t, tab, "rollouts")
	if st := b.open(t, tab, "/console/rollouts/r-1"); st != http.StatusNotFound {
		t.Fatalf("rollout page without an engine: %d, want 404", st)
	}
}

// TestBrowserPasskey: an admin without a second factor registers a passkey
// on a virtual authenticator at first login, then logs in with password
// and passkey.
func TestBrowserPasskey(t *testing.T) {
	if testing.Short() {
		t.Skip("short: real servers end to end; make test runs it")
	}
	e := newEnv(t, envOptions{})
	e.seedDevices(t, 2)
	e.admin(t, "bob", "operator")
	b := e.browser(t)
	tab := b.tab(t, true)
	if st := b.loginPassword(t, tab, "bob", e.passwords["bob"]); st != http.StatusOK || b.path(t, tab) != "/console/enrol" {
		t.Fatalf("first login: %d at %s, want the enrolment page", st, b.path(t, tab))
	}
	shot(t, tab, "enrol")
	if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS("#passkey-register"), chromedp.NodeVisible)); err != nil {
		t.Fatalf("click register: %v", err)
	}
	waitFor(t, tab, "#devices")
	if p := b.path(t, tab); p != "/console/inventory" {
		t.Fatalf("after registering a passkey: at %s", p)
	}
	if ad, _ := e.authStore.AdminByName(ctx, "bob"); len(ad.Credentials) != 1 {
		t.Fatalf("bob has %d credentials, want 1", len(ad.Credentials))
	}
	if st := submit(t, tab, "#logout"); st != http.StatusOK || b.path(t, tab) != "/console/login" {
		t.Fatalf("logout: %d at %s", st, b.path(t, tab))
	}
	if st := b.loginPassword(t, tab, "bob", e.passwords["bob"]); st != http.StatusOK {
		t.Fatalf("password step: %d", st)
	}
	if count(t, tab, "#passkey") != 1 || count(t, tab, "#totp-form") != 0 {
		t.Fatalf("second-factor page: want the passkey button only")
	}
	shot(t, tab, "second-factor-passkey")
	if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS("#passkey"), chromedp.NodeVisible)); err != nil {
		t.Fatalf("click passkey: %v", err)
	}
	waitFor(t, tab, "#devices")
	es := e.entries(t)
	if len(find(es, "admin.enrol_factor", "bob", "success")) != 1 {
		t.Errorf("no admin.enrol_factor success for bob")
	}
	logins := find(es, "admin.login", "bob", "success")
	if len(logins) != 1 || logins[0].Details["step"] != "webauthn" {
		t.Errorf("admin.login successes of bob %v, want one by webauthn", logins)
	}
}

// TestBrowserTOTPEnrolment: an admin without a second factor sets up an
// authenticator app at first login, from the secret the page shows.
func TestBrowserTOTPEnrolment(t *testing.T) {
	if testing.Short() {
		t.Skip("short: real servers end to end; make test runs it")
	}
	e := newEnv(t, envOptions{})
	e.seedDevices(t, 1)
	e.admin(t, "carol", "viewer")
	b := e.browser(t)
	tab := b.tab(t, false)
	if st := b.loginPassword(t, tab, "carol", e.passwords["carol"]); st != http.StatusOK || b.path(t, tab) != "/console/enrol" {
		t.Fatalf("first login: %d at %s, want the enrolment page", st, b.path(t, tab))
	}
	// An enrolment session opens nothing else.
	if st := b.open(t, tab, "/console/inventory"); st != http.StatusOK || b.path(t, tab) != "/console/login" {
		t.Fatalf("inventory with an enrolment session: %d at %s, want the login", st, b.path(t, tab))
	}
	if st := b.loginPassword(t, tab, "carol", e.passwords["carol"]); st != http.StatusOK {
		t.Fatalf("second password step: %d", st)
	}
	if st := submit(t, tab, "#enrol-totp-start"); st != http.StatusOK || count(t, tab, "img.qr") != 1 {
		t.Fatalf("TOTP enrolment page: %d, %d QR codes", st, count(t, tab, "img.qr"))
	}
	src, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.querySelector("img.qr").src.slice(0, 22)`))
	if err != nil || src != "data:image/png;base64," {
		t.Fatalf("QR code source %q, %v; want a data: PNG", src, err)
	}
	shot(t, tab, "enrol-totp")
	secret := adminauth.TOTPSecret(text(t, tab, "#totp-secret"))
	typeIn(t, tab, "#code", e.code(t, secret))
	if st := submit(t, tab, "#enrol-confirm-submit"); st != http.StatusOK || b.path(t, tab) != "/console/inventory" {
		t.Fatalf("after confirming the code: %d at %s", st, b.path(t, tab))
	}
	e.secrets["carol"] = secret
	submit(t, tab, "#logout")
	b.loginTOTP(t, tab, "carol")
}

// TestBrowserTwoPersonApproval: alice proposes a role change, cannot
// approve it herself (not even by posting the approval from her page),
// and bob approves it from his own browser after stepping up with his
// passkey. The change happens only then, and the audit trail has each
// step.
func TestBrowserTwoPersonApproval(t *testing.T) {
	if testing.Short() {
		t.Skip("short: real servers end to end; make test runs it")
	}
	e := newEnv(t, envOptions{})
	e.admin(t, "alice", "security_admin")
	e.enrolTOTP(t, "alice")
	e.admin(t, "bob", "security_admin")
	carol := e.admin(t, "carol", "viewer")
	b := e.browser(t)

	alice := b.tab(t, false)
	b.loginTOTP(t, alice, "alice")
	b.open(t, alice, "/console/admins")
	if err := chromedp.Do(alice, chromedp.SetValue(chromedp.CSS("#admin-carol select"), "operator")); err != nil {
		t.Fatalf("choose carol's role: %v", err)
	}
	submit(t, alice, "#admin-carol .role-form button")
	cs, err := e.console.approvals.List(ctx, "pending", 10)
	if err != nil || len(cs) != 1 {
		t.Fatalf("pending changes %v, %v; want 1", cs, err)
	}
	id := string(cs[0].ID)
	// The page offers no approve button; the server refuses the post
	// all the same.
	st, err := chromedp.Run(alice, chromedp.Evaluate[int](fmt.Sprintf(`fetch("/console/approvals/%s/approve", {method: "POST",
		headers: {"X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content}}).then(r => r.status)`, id),
		chromedp.EvalAwaitPromise))
	if err != nil || st != http.StatusForbidden {
		t.Fatalf("alice approving her own change: %d, %v; want 403", st, err)
	}

	bob := b.tab(t, true)
	if st := b.loginPassword(t, bob, "bob", e.passwords["bob"]); st != http.StatusOK {
		t.Fatalf("bob's password step: %d", st)
	}
	if err := chromedp.Do(bob, chromedp.Click(chromedp.CSS("#passkey-register"), chromedp.NodeVisible)); err != nil {
		t.Fatalf("bob registers a passkey: %v", err)
	}
	waitFor(t, bob, "body.page-inventory")
	// Later: the second factor is no longer recent; approving needs a
	// step-up first.
	e.clock.Advance(6 * time.Minute)
	b.open(t, bob, "/console/approvals")
	if st := submit(t, bob, "#change-"+id+" button.approve"); st != http.StatusOK || !strings.HasPrefix(b.path(t, bob), "/console/stepup?next=") {
		t.Fatalf("bob's first approve: %d at %s, want the step-up page", st, b.path(t, bob))
	}
	shot(t, bob, "step-up")
	if ad, _ := e.authStore.AdminByID(ctx, carol.ID); ad.Role != "viewer" {
		t.Fatalf("carol is %s before the approval went through, want viewer", ad.Role)
	}
	if err := chromedp.Do(bob, chromedp.Click(chromedp.CSS("#passkey"), chromedp.NodeVisible)); err != nil {
		t.Fatalf("bob steps up: %v", err)
	}
	waitFor(t, bob, "body.page-approvals")
	if st := submit(t, bob, "#change-"+id+" button.approve"); st != http.StatusOK || b.path(t, bob) != "/console/approvals" {
		t.Fatalf("bob's approve: %d at %s", st, b.path(t, bob))
	}
	if s := text(t, bob, "#decided #change-"+id); !strings.Contains(s, "applied") || !strings.Contains(s, "bob") {
		t.Fatalf("decided row: %q, want applied by bob", s)
	}
	shot(t, bob, "approvals-decided")
	if ad, _ := e.authStore.AdminByID(ctx, carol.ID); ad.Role != "operator" {
		t.Fatalf("carol is %s after bob's approval, want operator", ad.Role)
	}
	es := e.entries(t)
	for _, w := range []struct {
		action, actor, outcome string
	}{
		{"approval.request", "alice", "pending"},
		{"approval.grant", "alice", "denied"},
		{"admin.step_up", "bob", "success"},
		{"approval.grant", "bob", "success"},
		{"admin.role", "bob", "success"},
	} {
		if len(find(es, auditAction(w.action), w.actor, auditOutcome(w.outcome))) != 1 {
			t.Errorf("audit: want one %s by %s, %s", w.action, w.actor, w.outcome)
		}
	}
}

// TestBrowserRefusals: what the console refuses a browser, and what the
// browser's own defences add.
func TestBrowserRefusals(t *testing.T) {
	if testing.Short() {
		t.Skip("short: real servers end to end; make test runs it")
	}
	e := newEnv(t, envOptions{})
	e.seedDevices(t, 2)
	e.admin(t, "alice", "security_admin")
	e.enrolTOTP(t, "alice")
	e.admin(t, "victor", "viewer")
	e.enrolTOTP(t, "victor")
	carol := e.admin(t, "carol", "viewer")

	// Another site, with a form that posts to the console.
	evilCertFile, evilKeyFile := e.pki.Server(evilHost)
	evilCert, err := tls.LoadX509KeyPair(evilCertFile, evilKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	evilLeaf, _ := x509.ParseCertificate(evilCert.Certificate[0]) // LoadX509KeyPair parsed it
	evilLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	evilOrigin := "https://" + evilHost + ":" + strconv.Itoa(evilLn.Addr().(*net.TCPAddr).Port)
	evil := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><title>prize</title><h1>You won!</h1>
<form method="post" action="%s/console/admins/%s/role"><input type="hidden" name="role" value="security_admin">
<input type="hidden" name="csrf" value="guessed"><button id="go">Claim</button></form>`, e.origin, carol.ID)
	}), TLSConfig: &tls.Config{Certificates: []tls.Certificate{evilCert}}}
	go evil.Serve(tls.NewListener(evilLn, evil.TLSConfig))
	t.Cleanup(func() { evil.Close() })

	b := e.browser(t, evilLeaf)

	t.Run("viewer on operator pages", func(t *testing.T) {
		tab := b.tab(t, false)
		b.loginTOTP(t, tab, "victor")
		for _, p := range []string{"/console/events", "/console/admins", "/console/audit", "/console/approvals"} {
			if st := b.open(t, tab, p); st != http.StatusForbidden || count(t, tab, "#refusal") != 1 {
				t.Fatalf("viewer GET %s: %d, want 403 and the refusal page", p, st)
			}
		}
		shot(t, tab, "refusal-403")
		if n := count(t, tab, "header nav a"); n != 2 {
			t.Errorf("viewer's navigation shows %d links, want 2 (inventory, rollouts)", n)
		}
	})

	alice := b.tab(t, false)
	b.loginTOTP(t, alice, "alice")

	t.Run("CSRF from another site", func(t *testing.T) {
		if st := b.openURL(t, alice, evilOrigin+"/"); st != http.StatusOK {
			t.Fatalf("evil page: %d", st)
		}
		if st := submit(t, alice, "#go"); st != http.StatusForbidden {
			t.Fatalf("cross-site form post: %d, want 403", st)
		}
		if c := text(t, alice, "#refusal"); !strings.Contains(c, "did not come from the console") {
			t.Fatalf("refusal page: %q", c)
		}
		shot(t, alice, "csrf-refused")
		if cs, _ := e.console.approvals.List(ctx, "", 10); len(cs) != 0 {
			t.Fatalf("the cross-site post stored a change: %v", cs)
		}
		// The session cookie (SameSite=Strict) did not go with the
		// cross-site request: the refusal names no admin.
		denied := find(e.entries(t), "access.denied", "", "denied")
		last := denied[len(denied)-1]
		if last.Actor.ID != "anonymous" || last.Details["reason"] != "cross_origin" {
			t.Fatalf("last refusal %v, want an anonymous cross_origin refusal", last)
		}
	})

	t.Run("CSP blocks inline script", func(t *testing.T) {
		b.open(t, alice, "/console/inventory")
		got, err := chromedp.Run(alice, chromedp.Evaluate[string](`new Promise(resolve => {
			document.addEventListener("securitypolicyviolation", ev => resolve(ev.effectiveDirective + " " + ev.disposition));
			const s = document.createElement("script");
			s.textContent = "window.__pwned = 1";
			document.head.appendChild(s);
			const d = document.createElement("div");
			d.setAttribute("onclick", "window.__pwned = 2");
			document.body.appendChild(d);
			d.click();
			setTimeout(() => resolve("no violation, pwned=" + window.__pwned), 2000);
		})`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("inject: %v", err)
		}
		if got != "script-src-elem enforce" {
			t.Fatalf("injected inline script: %q, want a script-src-elem violation enforced", got)
		}
		pwned, err := chromedp.Run(alice, chromedp.Evaluate[string](`String(window.__pwned)`))
		if err != nil || pwned != "undefined" {
			t.Fatalf("window.__pwned = %q, %v; want undefined (no inline script ran)", pwned, err)
		}
	})

	t.Run("markup typed at the login is shown as text", func(t *testing.T) {
		hc := e.client(t, nil)
		payload := `<img src=x id=xss onerror="window.__pwned=3">`
		guess(t, e, hc, payload, "whatever")
		b.open(t, alice, "/console/audit")
		if n := count(t, alice, "#audit img, #xss"); n != 0 {
			t.Fatalf("the audit page holds %d elements from the typed name", n)
		}
		if !strings.Contains(text(t, alice, "#audit"), payload) {
			t.Fatalf("the audit page does not show the typed name as text")
		}
	})

	t.Run("new browser asks for the second factor again", func(t *testing.T) {
		if _, err := chromedp.Call(alice, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: "SomeOtherBrowser/1.0"}); err != nil {
			t.Fatalf("user agent override: %v", err)
		}
		b.open(t, alice, "/console/admins")
		if p := b.path(t, alice); !strings.HasPrefix(p, "/console/reverify?next=") || !strings.Contains(text(t, alice, "main h1"), "New network or browser") {
			t.Fatalf("with another user agent: at %s, want the re-verification page", p)
		}
		shot(t, alice, "reverify")
		typeIn(t, alice, "#code", e.code(t, e.secrets["alice"]))
		if st := submit(t, alice, "#totp-submit"); st != http.StatusOK || b.path(t, alice) != "/console/admins" {
			t.Fatalf("after re-verification: %d at %s, want back on /console/admins", st, b.path(t, alice))
		}
		if len(find(e.entries(t), "admin.second_factor", "alice", "success")) != 1 {
			t.Errorf("no admin.second_factor success for alice")
		}
	})

	t.Run("session replayed after logout", func(t *testing.T) {
		cookies, err := chromedp.Call(alice, network.GetCookies, network.GetCookiesParams{URLs: []string{e.origin + "/"}})
		if err != nil {
			t.Fatalf("cookies: %v", err)
		}
		var session string
		for _, c := range cookies.Cookies {
			if c.Name == cookieSession {
				session = c.Value
				if !c.HTTPOnly || !c.Secure || c.SameSite != network.CookieSameSiteStrict || c.Path != "/" {
					t.Errorf("session cookie %+v: want HttpOnly, Secure, SameSite=Strict, Path=/", c)
				}
			}
		}
		if session == "" {
			t.Fatalf("no session cookie in the browser")
		}
		ua, err := chromedp.Run(alice, chromedp.Evaluate[string](`navigator.userAgent`))
		if err != nil {
			t.Fatal(err)
		}
		hc := e.client(t, nil)
		if got := e.do(t, hc, http.MethodGet, "/console/inventory", nil, session, "", ua); got.status != http.StatusOK {
			t.Fatalf("the browser's cookie from the test client before logout: %d, want 200", got.status)
		}
		if st := submit(t, alice, "#logout"); st != http.StatusOK || b.path(t, alice) != "/console/login" {
			t.Fatalf("logout: %d at %s", st, b.path(t, alice))
		}
		if got := e.do(t, hc, http.MethodGet, "/console/inventory", nil, session, "", ua); got.status != http.StatusSeeOther ||
			got.header.Get("Location") != "/console/login" {
			t.Fatalf("replayed cookie after logout: %d %s, want 303 to the login", got.status, got.header.Get("Location"))
		}
		_, err = chromedp.Call(alice, network.SetCookie, network.SetCookieParams{Name: cookieSession, Value: session,
			URL: e.origin + "/", Path: "/", Secure: new(true), HTTPOnly: new(true), SameSite: network.CookieSameSiteStrict})
		if err != nil {
			t.Fatalf("put the old cookie back: %v", err)
		}
		b.open(t, alice, "/console/inventory")
		if p := b.path(t, alice); p != "/console/login" {
			t.Fatalf("browser with the old cookie put back: at %s, want the login", p)
		}
	})
}

// openURL navigates to any URL and returns the document's status.
func (b *browser) openURL(t *testing.T, tctx context.Context, u string) int64 {
	t.Helper()
	resp, err := chromedp.Run(tctx, chromedp.NavigateResponse(u))
	if err != nil {
		t.Fatalf("navigate %s: %v", u, err)
	}
	return resp.Status
}
