package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/remote"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/adminauth/authtest"
	"github.com/hardphone/hardphone/fleet/adminauth/pgauth"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/client"
	"github.com/hardphone/hardphone/fleet/rollout/rollouttest"
	"github.com/hardphone/hardphone/test"
)

// consoleBrowser is Debian's headless Chromium driven over the DevTools
// protocol against hpfleet's console on fleet.test (the browser maps the
// name to the server's loopback address; WebAuthn refuses IP origins),
// trusting the test PKI's server certificate by its key.
type consoleBrowser struct {
	chrome *test.Chromium
	alloc  context.Context
	origin string
}

// browserTimeout bounds one tab's protocol calls: a hung browser fails
// the test rather than the run.
const browserTimeout = 4 * time.Minute

func newConsoleBrowser(t *testing.T, pki, addr string) *consoleBrowser {
	t.Helper()
	leaf, err := ca.LoadCertificate(filepath.Join(pki, ca.ServerCertFile))
	if err != nil {
		t.Fatalf("server certificate: %v", err)
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("hpfleet address %q: %v", addr, err)
	}
	chrome := test.StartChromium(t, test.ChromiumOptions{Hosts: map[string]string{fleetName: "127.0.0.1"},
		TrustLeaves: []*x509.Certificate{leaf}})
	alloc, cancel := remote.NewAllocator(context.Background(), chrome.DevToolsURL, remote.NoModifyURL)
	t.Cleanup(cancel)
	return &consoleBrowser{chrome: chrome, alloc: alloc, origin: "https://" + net.JoinHostPort(fleetName, port)}
}

// tab opens a tab in a browser context of its own (its own cookies);
// with passkey, a virtual platform authenticator that verifies the user
// is attached.
func (b *consoleBrowser) tab(t *testing.T, passkey bool) context.Context {
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

func (b *consoleBrowser) open(t *testing.T, tctx context.Context, path string) int64 {
	t.Helper()
	resp, err := chromedp.Run(tctx, chromedp.NavigateResponse(b.origin+path))
	if err != nil {
		t.Fatalf("navigate %s: %v", path, err)
	}
	return resp.Status
}

// click clicks a button that submits a form and returns the status of the
// page it leads to (after redirects).
func clickSubmit(t *testing.T, tctx context.Context, sel string) int64 {
	t.Helper()
	resp, err := chromedp.RunResponse(tctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		t.Fatalf("click %s: %v", sel, err)
	}
	return resp.Status
}

func setValue(t *testing.T, tctx context.Context, sel, v string) {
	t.Helper()
	if err := chromedp.Do(tctx, chromedp.SetValue(chromedp.CSS(sel), v, chromedp.NodeVisible)); err != nil {
		t.Fatalf("set %s: %v", sel, err)
	}
}

func pageText(t *testing.T, tctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func countOf(t *testing.T, tctx context.Context, sel string) int {
	t.Helper()
	n, err := chromedp.Run(tctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
	if err != nil {
		t.Fatalf("count %s: %v", sel, err)
	}
	return n
}

func (b *consoleBrowser) path(t *testing.T, tctx context.Context) string {
	t.Helper()
	loc, err := chromedp.Run(tctx, chromedp.Location())
	if err != nil {
		t.Fatalf("location: %v", err)
	}
	return strings.TrimPrefix(loc, b.origin)
}

// screenshot saves the page as out/console/NAME.png at the module root.
func screenshot(t *testing.T, tctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join("..", "..", "out", "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("screenshot dir: %v", err)
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	abs, _ := filepath.Abs(p) // for the log only
	t.Logf("screenshot %s", abs)
}

// TestConsoleBrowserRollout: hpfleet (the binary) on PostgreSQL with its
// director and rollout engine, three simulated phones of group floor-1.
// In Chromium, an operator logs in with password and TOTP and starts a
// configuration rollout from the console's form (a canary ring, then the
// rest); the page offers him no approval of his own rollout. A second
// operator logs in for the first time, registers a passkey on a virtual
// authenticator (the binary's relying party is its certificate's DNS
// name) and approves it. The canary applies the document, loses its
// registration and reverts it; the rollout halts before ring 2, and the
// page names the canary and the reason.
func TestConsoleBrowserRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("short: real servers end to end; make test runs it")
	}
	w := newBinWorld(t, "postgres", 0, 1)
	dsn, err := os.ReadFile(filepath.Join(w.dir, "dsn"))
	if err != nil {
		t.Fatalf("dsn: %v", err)
	}
	// Two more admins, beside the running hpfleet, in its database:
	// oscar with TOTP, amy with no second factor yet.
	as, err := pgauth.Open(bctx, string(dsn), 2)
	if err != nil {
		t.Fatalf("pgauth.Open: %v", err)
	}
	defer as.Close()
	auth, err := adminauth.New(as)
	if err != nil {
		t.Fatalf("adminauth.New: %v", err)
	}
	passwords := map[string]string{"oscar": "oscar's long passphrase 1", "amy": "amy's long passphrase 22"}
	for name, pw := range passwords {
		if _, err := auth.CreateAdmin(bctx, name, pw, adminauth.RoleOperator); err != nil {
			t.Fatalf("CreateAdmin(%s): %v", name, err)
		}
	}
	setup := adminauth.Client{Addr: netip.MustParseAddr("127.0.0.1"), UserAgent: "setup/1"}
	res, err := auth.Login(bctx, "oscar", passwords["oscar"], setup)
	if err != nil {
		t.Fatalf("Login(oscar): %v", err)
	}
	en, err := auth.BeginTOTPEnrolment(bctx, res.Token, setup)
	if err != nil {
		t.Fatalf("BeginTOTPEnrolment: %v", err)
	}
	if _, err := auth.FinishTOTPEnrolment(bctx, res.Token, authtest.Code(t, en.Secret, time.Now()), setup); err != nil {
		t.Fatalf("FinishTOTPEnrolment: %v", err)
	}

	// The group's first document names its account's registrar: a
	// security policy change, started by one security admin and approved
	// by another over the fleet API, before the browser comes in.
	adminCA, err := ca.Load(filepath.Join(w.pki, ca.AdminCACertFile), filepath.Join(w.pki, ca.AdminCAKeyFile))
	if err != nil {
		t.Fatalf("admin CA: %v", err)
	}
	roots, err := ca.LoadPool(filepath.Join(w.pki, ca.ServerCACertFile))
	if err != nil {
		t.Fatalf("roots: %v", err)
	}
	apiClient := func(a admin) *client.Client {
		cert, err := tlsPair(a)
		if err != nil {
			t.Fatalf("certificate of %s: %v", a.name, err)
		}
		base, err := client.New(client.Config{URL: w.fleet.URL, ServerName: fleetName, Roots: roots, Certificate: cert})
		if err != nil {
			t.Fatalf("client.New: %v", err)
		}
		tok, err := os.ReadFile(a.session)
		if err != nil {
			t.Fatalf("session of %s: %v", a.name, err)
		}
		c, err := base.WithSession(strings.TrimSpace(string(tok)), sessionUA)
		if err != nil {
			t.Fatalf("WithSession: %v", err)
		}
		return c
	}
	sam := apiClient(makeAdmin(t, w.dir, auth, adminCA, "sam", adminauth.RoleSecurityAdmin))
	sue := apiClient(makeAdmin(t, w.dir, auth, adminCA, "sue", adminauth.RoleSecurityAdmin))
	base := "[media]\nrtp_port_min = 20000\nrtp_port_max = 20099\n[[account]]\nname = \"line1\"\nuser = \"1001\"\n" +
		"registrar = \"sip.example.test:5061\"\npassword_cred = \"sip/line1\"\n"
	first, err := sam.CreateRollout(bctx, api.RolloutRequest{Kind: "config", Group: "floor-1", Config: base,
		Rings: []api.RolloutRing{{Name: "all", Percent: 100}}, Deadline: "10m", ReportTimeout: "10m"})
	if err != nil {
		t.Fatalf("CreateRollout(first document): %v", err)
	}
	if _, err := sue.ApproveRollout(bctx, first.ID); err != nil {
		t.Fatalf("ApproveRollout(first document): %v", err)
	}
	for start := time.Now(); ; {
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("first document's rollout not completed: %+v", first)
		}
		for _, p := range w.phones {
			p.Follow(rollouttest.Healthy)
		}
		if first, err = sam.Rollout(bctx, first.ID); err != nil {
			t.Fatalf("Rollout: %v", err)
		}
		if first.State == "completed" {
			break
		}
		// "completing" is the step between the last ring and "completed".
		if first.State != "running" && first.State != "completing" {
			t.Fatalf("first document's rollout %s: %+v", first.State, first.Halt)
		}
		time.Sleep(300 * time.Millisecond) // hpfleet's rollout loop runs every second
	}

	b := newConsoleBrowser(t, w.pki, w.fleet.Addr)
	canary := w.phones[0]

	// oscar: password, then TOTP (the next step's code: the enrolment
	// used this one).
	oscar := b.tab(t, false)
	b.open(t, oscar, "/console/login")
	setValue(t, oscar, "#name", "oscar")
	setValue(t, oscar, "#password", passwords["oscar"])
	if st := clickSubmit(t, oscar, "#login"); st != http.StatusOK || countOf(t, oscar, "#totp-form") != 1 {
		t.Fatalf("oscar's password step: %d at %s, want the TOTP form", st, b.path(t, oscar))
	}
	setValue(t, oscar, "#code", authtest.Code(t, en.Secret, time.Now().Add(30*time.Second)))
	if st := clickSubmit(t, oscar, "#totp-submit"); st != http.StatusOK || b.path(t, oscar) != "/console/inventory" {
		t.Fatalf("oscar's TOTP step: %d at %s", st, b.path(t, oscar))
	}
	b.open(t, oscar, "/console/rollouts")
	if st := clickSubmit(t, oscar, "#new-rollout"); st != http.StatusOK || b.path(t, oscar) != "/console/rollouts/new" {
		t.Fatalf("new rollout link: %d at %s", st, b.path(t, oscar))
	}
	// Not a policy change (the media port range): an operator's.
	doc := strings.Replace(base, "20099", "20199", 1)
	for sel, v := range map[string]string{"#group": "floor-1", "#config": doc, "#canary": canary.ID, "#rings": "100",
		"#max-failure": "0", "#deadline": "10m", "#report-timeout": "10m"} {
		setValue(t, oscar, sel, v)
	}
	screenshot(t, oscar, "rollout-new")
	if st := clickSubmit(t, oscar, "#rollout-create"); st != http.StatusOK || !strings.HasPrefix(b.path(t, oscar), "/console/rollouts/ro-") {
		t.Fatalf("start the rollout: %d at %s: %s", st, b.path(t, oscar), pageText(t, oscar, "main"))
	}
	rolloutPath := b.path(t, oscar)
	if s := pageText(t, oscar, "#rollout-facts"); !strings.Contains(s, "pending") || !strings.Contains(s, "oscar") {
		t.Fatalf("new rollout's facts: %q, want pending, created by oscar", s)
	}
	if countOf(t, oscar, "#approve") != 0 || !strings.Contains(pageText(t, oscar, "#decide"), "needs another admin") {
		t.Fatalf("oscar's page offers him the approval of his own rollout")
	}
	screenshot(t, oscar, "rollout-pending")
	// The page offers no approval; the server refuses the post all the
	// same (the engine's two-person rule).
	st, err := chromedp.Run(oscar, chromedp.Evaluate[int](fmt.Sprintf(`fetch("%s/approve", {method: "POST",
		headers: {"X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content}}).then(r => r.status)`, rolloutPath),
		chromedp.EvalAwaitPromise))
	if err != nil || st != http.StatusConflict {
		t.Fatalf("oscar approving his own rollout: %d, %v; want 409", st, err)
	}

	// amy: first login, a passkey on the virtual authenticator, then
	// the approval.
	amy := b.tab(t, true)
	b.open(t, amy, "/console/login")
	setValue(t, amy, "#name", "amy")
	setValue(t, amy, "#password", passwords["amy"])
	if st := clickSubmit(t, amy, "#login"); st != http.StatusOK || b.path(t, amy) != "/console/enrol" {
		t.Fatalf("amy's first login: %d at %s, want the enrolment page", st, b.path(t, amy))
	}
	if countOf(t, amy, "#passkey-register") != 1 {
		t.Fatalf("hpfleet's enrolment page offers no passkey")
	}
	if err := chromedp.Do(amy, chromedp.Click(chromedp.CSS("#passkey-register"), chromedp.NodeVisible)); err != nil {
		t.Fatalf("amy registers a passkey: %v", err)
	}
	if err := chromedp.Do(amy, chromedp.WaitVisible(chromedp.CSS("body.page-inventory"))); err != nil {
		t.Fatalf("after amy's passkey registration: %v (at %s)", err, b.path(t, amy))
	}
	b.open(t, amy, rolloutPath)
	screenshot(t, amy, "rollout-approve")
	if st := clickSubmit(t, amy, "#approve"); st != http.StatusOK || b.path(t, amy) != rolloutPath {
		t.Fatalf("amy approves: %d at %s: %s", st, b.path(t, amy), pageText(t, amy, "main"))
	}
	if s := pageText(t, amy, "#rollout-facts"); !strings.Contains(s, "running") || !strings.Contains(s, "amy") {
		t.Fatalf("approved rollout's facts: %q, want running, approved by amy", s)
	}

	// The phones follow the director; the canary's registration breaks
	// and it reverts the document. hpfleet's loop judges the ring every
	// second.
	start := time.Now()
	for {
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("rollout not halted after 2 minutes:\n%s", pageText(t, amy, "main"))
		}
		for i, p := range w.phones {
			bh := rollouttest.Healthy
			if i == 0 {
				bh = rollouttest.BreaksSIP
			}
			p.Follow(bh)
		}
		b.open(t, amy, rolloutPath)
		if countOf(t, amy, "#halt") == 1 {
			break
		}
		time.Sleep(300 * time.Millisecond) // hpfleet's rollout loop runs every second
	}
	halt := pageText(t, amy, "#halt")
	if !strings.Contains(halt, "canary") || !strings.Contains(halt, canary.ID) || !strings.Contains(halt, "configuration reverted") {
		t.Fatalf("halt section %q: want ring canary, device %s, configuration reverted", halt, canary.ID)
	}
	if s := pageText(t, amy, "#rollout-facts"); !strings.Contains(s, "halted") {
		t.Fatalf("facts %q: want halted", s)
	}
	ring2Started, err := chromedp.Run(amy, chromedp.Text(chromedp.CSS("#rings tbody tr:nth-child(2) td:nth-child(8)")))
	if err != nil {
		t.Fatalf("ring 2's start: %v", err)
	}
	if strings.TrimSpace(ring2Started) != "" {
		t.Fatalf("ring 2 started at %q, want never", ring2Started)
	}
	screenshot(t, amy, "rollout-halted")

	// The audit trail, as an auditor exports it, has each step by the
	// admin who took it.
	export := filepath.Join(w.dir, "audit.jsonl")
	if out, err := w.hpctl(w.admins["audrey"], "fleet", "audit", "export", "-o", export); err != nil {
		t.Fatalf("hpctl fleet audit export: %v\n%s", err, out)
	}
	exp, err := os.ReadFile(export)
	if err != nil {
		t.Fatalf("read export: %v", err)
	}
	for _, want := range []struct{ action, actor, outcome string }{
		{"rollout.create", "oscar", "pending"}, {"access.denied", "oscar", "denied"}, {"approval.grant", "amy", "success"},
		{"rollout.halt", "", ""},
	} {
		found := false
		for _, l := range strings.Split(string(exp), "\n") {
			if strings.Contains(l, `"action":"`+want.action+`"`) && (want.actor == "" || strings.Contains(l, `"`+want.actor+`"`)) &&
				(want.outcome == "" || strings.Contains(l, `"`+want.outcome+`"`)) {
				found = true
			}
		}
		if !found {
			t.Errorf("audit export: no %s by %s (%s)", want.action, want.actor, want.outcome)
		}
	}
	t.Logf("config rollout from the console: approved to halted on the canary in %v", time.Since(start).Round(time.Millisecond))
}
