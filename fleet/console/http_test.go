package console

import (
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/console/approval"
	"github.com/hardphone/hardphone/fleet/console/consoleapi"
)

// The direct HTTP tests: the console's rules checked request by request
// with a plain HTTPS client, on the real stores.

const testUA = "console-test/1"

var loopback = adminauth.Client{Addr: netip.MustParseAddr("127.0.0.1"), UserAgent: testUA}

func TestRouteTable(t *testing.T) {
	e := newEnv(t, envOptions{})
	seen := map[string]bool{}
	for _, rt := range e.console.table() {
		key := rt.method + " " + rt.path
		if seen[key] {
			t.Errorf("route %s twice", key)
		}
		seen[key] = true
		if rt.access == accessFull && !slices.Contains(adminauth.Permissions(), rt.perm) {
			t.Errorf("route %s: permission %q is not in adminauth's table", key, rt.perm)
		}
		if rt.also != "" && (rt.access != accessFull || !slices.Contains(adminauth.Permissions(), rt.also)) {
			t.Errorf("route %s: second permission %q not in adminauth's table or on a route not authorized", key, rt.also)
		}
		if rt.access != accessFull && rt.perm != "" {
			t.Errorf("route %s names permission %s but is not authorized with it", key, rt.perm)
		}
		prefix := WebPrefix
		if rt.api {
			prefix = consoleapi.Prefix
		}
		if !strings.HasPrefix(rt.path, prefix) {
			t.Errorf("route %s outside %s", key, prefix)
		}
		if rt.method != http.MethodGet && rt.method != http.MethodPost {
			t.Errorf("route %s: method %s, want GET or POST", key, rt.method)
		}
		if !rt.api && rt.method == http.MethodPost && rt.access == accessFull && rt.back == "" {
			t.Errorf("route %s: a web POST needs the page to return to after a step-up", key)
		}
	}
}

// roleSessions makes one admin per role with TOTP and a full session from
// the test client, and returns the session tokens by role.
func roleSessions(t *testing.T, e *env) map[adminauth.Role]string {
	t.Helper()
	out := map[adminauth.Role]string{}
	for _, r := range adminauth.Roles() {
		name := "r-" + strings.ReplaceAll(string(r), "_", "-")
		e.admin(t, name, r)
		e.enrolTOTP(t, name)
		out[r] = e.session(t, name, loopback)
	}
	return out
}

// TestPermissionMatrix: every authorized web route, for every role,
// answers 403 exactly when the role lacks the route's permission. GETs
// run for real; POSTs aim at nothing (an unknown ID) so a role that holds
// the permission gets past authorization and no further.
func TestPermissionMatrix(t *testing.T) {
	e := newEnv(t, envOptions{})
	devs := e.seedDevices(t, 2)
	sessions := roleSessions(t, e)
	hc := e.client(t, nil)
	fill := strings.NewReplacer("{id}", string(devs[0]), "{$}", "")
	for _, rt := range e.console.Routes() {
		if rt.API || rt.Permission == "-" {
			continue
		}
		perm := adminauth.Permission(rt.Permission)
		for _, role := range adminauth.Roles() {
			t.Run(rt.Method+" "+rt.Path+" as "+string(role), func(t *testing.T) {
				path := fill.Replace(rt.Path)
				var form url.Values
				if rt.Method == http.MethodPost {
					path = strings.Replace(rt.Path, "{id}", "chg-00000000000000000000000000000000", 1)
					if strings.HasPrefix(rt.Path, "/console/admins/") {
						path = strings.Replace(rt.Path, "{id}", strings.Repeat("0", 32), 1)
					}
					form = url.Values{"csrf": {csrfToken(sessions[role])}, "role": {"operator"}}
				}
				got := e.do(t, hc, rt.Method, path, form, sessions[role], e.origin, testUA)
				allowed := adminauth.Check(role, perm, time.Now()) == nil ||
					rt.Also != "" && adminauth.Check(role, adminauth.Permission(rt.Also), time.Now()) == nil
				if !allowed && got.status != http.StatusForbidden {
					t.Fatalf("%s %s as %s = %d, want 403 (role lacks %s)", rt.Method, path, role, got.status, perm)
				}
				if allowed && (got.status == http.StatusForbidden || got.status == http.StatusUnauthorized ||
					got.status >= 500 && got.status != http.StatusNotImplemented) {
					t.Fatalf("%s %s as %s = %d, want past authorization:\n%s", rt.Method, path, role, got.status, got.body)
				}
			})
		}
	}
	// Each refusal is in the audit log, naming the admin and the permission.
	denied := find(e.entries(t), audit.ActionAccessDenied, "r-viewer", audit.OutcomeDenied)
	if len(denied) == 0 {
		t.Fatalf("no access.denied entry for the viewer")
	}
	for _, d := range denied {
		if d.Details["permission"] == "" || d.Details["reason"] != "forbidden" || d.Source != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("access.denied entry %v: want permission, reason forbidden, source 127.0.0.1", d)
		}
	}
}

// TestCSRFAndOrigin: a state-changing request needs the console's Origin
// and the session's CSRF token; each refusal changes nothing and is
// recorded.
func TestCSRFAndOrigin(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.admin(t, "alice", adminauth.RoleSecurityAdmin)
	e.enrolTOTP(t, "alice")
	carol := e.admin(t, "carol", adminauth.RoleViewer)
	tok := e.session(t, "alice", loopback)
	hc := e.client(t, nil)
	path := "/console/admins/" + carol.ID + "/role"
	good := url.Values{"csrf": {csrfToken(tok)}, "role": {"operator"}}
	tests := []struct {
		name   string
		form   url.Values
		origin string
		reason string
	}{
		{"no origin", good, "", "cross_origin"},
		{"other site", good, "https://evil.test", "cross_origin"},
		{"other port", good, strings.Replace(e.origin, consoleHost+":", consoleHost+":1", 1), "cross_origin"},
		{"http", good, strings.Replace(e.origin, "https:", "http:", 1), "cross_origin"},
		{"null origin", good, "null", "cross_origin"},
		{"no token", url.Values{"role": {"operator"}}, e.origin, "csrf"},
		{"another session's token", url.Values{"csrf": {csrfToken("x" + tok[1:])}, "role": {"operator"}}, e.origin, "csrf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := e.do(t, hc, http.MethodPost, path, tt.form, tok, tt.origin, testUA)
			if got.status != http.StatusForbidden {
				t.Fatalf("POST %s (%s) = %d, want 403:\n%s", path, tt.name, got.status, got.body)
			}
			if cs, _ := e.console.approvals.List(ctx, "", 10); len(cs) != 0 {
				t.Fatalf("refused request (%s) stored change %v", tt.name, cs[0])
			}
			es := find(e.entries(t), audit.ActionAccessDenied, "", audit.OutcomeDenied)
			if len(es) == 0 || es[len(es)-1].Details["reason"] != tt.reason {
				t.Fatalf("last access.denied = %v, want reason %s", es, tt.reason)
			}
		})
	}
	// The same request from the console's own page goes through.
	got := e.do(t, hc, http.MethodPost, path, good, tok, e.origin, testUA)
	if got.status != http.StatusSeeOther || got.header.Get("Location") != "/console/approvals" {
		t.Fatalf("POST %s from the console = %d %s, want 303 to /console/approvals:\n%s", path, got.status, got.header.Get("Location"), got.body)
	}
	cs, _ := e.console.approvals.List(ctx, "", 10)
	if len(cs) != 1 || cs[0].Kind != approval.KindAdminRole || cs[0].State != approval.StatePending {
		t.Fatalf("after the proposal: changes %v, want one pending role change", cs)
	}
}

// TestReplayAfterLogout: a session cookie used after logout is dead, with
// the same browser and address.
func TestReplayAfterLogout(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.admin(t, "alice", adminauth.RoleOperator)
	e.enrolTOTP(t, "alice")
	tok := e.session(t, "alice", loopback)
	hc := e.client(t, nil)
	if got := e.do(t, hc, http.MethodGet, "/console/inventory", nil, tok, "", testUA); got.status != http.StatusOK {
		t.Fatalf("GET inventory before logout = %d, want 200", got.status)
	}
	got := e.do(t, hc, http.MethodPost, "/console/logout", url.Values{"csrf": {csrfToken(tok)}}, tok, e.origin, testUA)
	if got.status != http.StatusSeeOther || !strings.Contains(got.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("logout = %d, Set-Cookie %q; want 303 clearing the cookie", got.status, got.header.Get("Set-Cookie"))
	}
	got = e.do(t, hc, http.MethodGet, "/console/inventory", nil, tok, "", testUA)
	if got.status != http.StatusSeeOther || got.header.Get("Location") != "/console/login" {
		t.Fatalf("GET inventory with the old cookie = %d %s, want 303 to the login", got.status, got.header.Get("Location"))
	}
	got = e.do(t, hc, http.MethodPost, "/console/logout", url.Values{"csrf": {csrfToken(tok)}}, tok, e.origin, testUA)
	if _, err := e.auth.Authenticate(ctx, tok, loopback); err == nil {
		t.Fatalf("Authenticate(old token) succeeded after logout")
	}
	es := e.entries(t)
	if len(find(es, audit.ActionLogout, "alice", audit.OutcomeSuccess)) != 1 {
		t.Errorf("want one admin.logout success of alice")
	}
	replays := 0
	for _, x := range find(es, audit.ActionAccessDenied, "", audit.OutcomeDenied) {
		if x.Details["reason"] == "session_invalid" {
			replays++
		}
	}
	if replays == 0 {
		t.Errorf("the replayed cookie left no access.denied session_invalid entry")
	}
}

// TestSessionBoundToClient: the cookie sent by another browser (user
// agent) must prove the second factor again; the page asks for it.
func TestSessionBoundToClient(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.admin(t, "alice", adminauth.RoleOperator)
	e.enrolTOTP(t, "alice")
	tok := e.session(t, "alice", loopback)
	hc := e.client(t, nil)
	got := e.do(t, hc, http.MethodGet, "/console/inventory", nil, tok, "", "stolen-cookie-browser/9")
	if got.status != http.StatusSeeOther || !strings.HasPrefix(got.header.Get("Location"), "/console/reverify?next=") {
		t.Fatalf("GET inventory from another user agent = %d %s, want 303 to /console/reverify", got.status, got.header.Get("Location"))
	}
	es := find(e.entries(t), audit.ActionAccessDenied, "", audit.OutcomeDenied)
	if len(es) == 0 || es[len(es)-1].Details["reason"] != "second_factor_required" {
		t.Fatalf("access.denied entries %v, want the last with reason second_factor_required", es)
	}
}

func TestSafeNext(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/console/approvals", "/console/approvals"},
		{"/console/audit?before=100", "/console/inventory"},
		{"", "/console/inventory"},
		{"https://evil.test/console/", "/console/inventory"},
		{"//evil.test/console/", "/console/inventory"},
		{"/console//evil.test", "/console/inventory"},
		{"/console/\\evil", "/console/inventory"},
		{"/v1/console/session", "/console/inventory"},
		{"/console/login", "/console/inventory"},
		{"/console/x\r\nSet-Cookie: a=b", "/console/inventory"},
		{"/console/%2e%2e/x", "/console/inventory"},
	}
	for _, tt := range tests {
		if got := safeNext(tt.in); got != tt.want {
			t.Errorf("safeNext(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestSecurityHeaders: every answer carries the CSP and the other
// headers, the session cookie its attributes.
func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, envOptions{})
	hc := e.client(t, nil)
	for _, path := range []string{"/console/login", "/console/inventory", "/console/static/console.js", "/console/nope", "/v1/console/session"} {
		got := e.do(t, hc, http.MethodGet, path, nil, "", "", testUA)
		for h, want := range map[string]string{"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff",
			"X-Frame-Options": "DENY", "Referrer-Policy": "same-origin"} {
			if v := got.header.Get(h); v != want {
				t.Errorf("GET %s: %s = %q, want %q", path, h, v, want)
			}
		}
		if !strings.Contains(got.header.Get("Content-Security-Policy"), "default-src 'self'") ||
			strings.Contains(got.header.Get("Content-Security-Policy"), "unsafe") {
			t.Errorf("GET %s: CSP %q", path, got.header.Get("Content-Security-Policy"))
		}
	}
	got := e.do(t, hc, http.MethodGet, "/console/login", nil, "", "", testUA)
	ck := got.header.Get("Set-Cookie")
	for _, attr := range []string{cookieLogin + "=", "Path=/", "HttpOnly", "Secure", "SameSite=Strict"} {
		if !strings.Contains(ck, attr) {
			t.Errorf("login form cookie %q lacks %s", ck, attr)
		}
	}
	if strings.Contains(ck, "Domain=") {
		t.Errorf("login form cookie %q has a Domain (a __Host- cookie must not)", ck)
	}
}

// TestAddFactorNeedsStepUp: adding a second factor to an account from a
// full session needs a recent one; the browser is sent to prove it.
func TestAddFactorNeedsStepUp(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.admin(t, "alice", adminauth.RoleViewer)
	e.enrolTOTP(t, "alice")
	tok := e.session(t, "alice", loopback)
	hc := e.client(t, nil)
	e.clock.Advance(adminauth.DefaultStepUp + time.Minute)
	got := e.do(t, hc, http.MethodPost, "/console/enrol/totp", url.Values{"csrf": {csrfToken(tok)}}, tok, e.origin, testUA)
	if got.status != http.StatusSeeOther || got.header.Get("Location") != "/console/stepup?next=%2Fconsole%2Fenrol" {
		t.Fatalf("add a factor with a stale second factor = %d %s, want 303 to the step-up page", got.status, got.header.Get("Location"))
	}
	if ad, _ := e.authStore.AdminByName(ctx, "alice"); len(ad.Credentials) != 0 {
		t.Fatalf("alice has credentials after a refused enrolment")
	}
}
