package console

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/console/approval"
	"github.com/hardphone/hardphone/fleet/console/consoleapi"
)

// TestNoAuditNoAction: when the audit log cannot record, nothing it would
// have recorded takes effect: no login, no approvable proposal.
func TestNoAuditNoAction(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.admin(t, "alice", adminauth.RoleSecurityAdmin)
	e.enrolTOTP(t, "alice")
	carol := e.admin(t, "carol", adminauth.RoleViewer)
	tok := e.session(t, "alice", loopback)
	hc := e.client(t, nil)
	if err := e.storage.Close(); err != nil {
		t.Fatalf("close the audit storage: %v", err)
	}
	got := e.do(t, hc, http.MethodPost, "/console/admins/"+carol.ID+"/role",
		url.Values{"csrf": {csrfToken(tok)}, "role": {"security_admin"}}, tok, e.origin, testUA)
	if got.status != http.StatusServiceUnavailable {
		t.Fatalf("proposal without an audit log = %d, want 503", got.status)
	}
	cs, err := e.console.approvals.List(ctx, "", 10)
	if err != nil || len(cs) != 1 || cs[0].State != approval.StateRefused || cs[0].Pending(e.clock.Now()) {
		t.Fatalf("changes after an unrecorded proposal: %v, %v; want one, withdrawn", cs, err)
	}
	a := guess(t, e, hc, "alice", e.passwords["alice"])
	if a.status != http.StatusServiceUnavailable {
		t.Fatalf("login without an audit log = %d, want 503", a.status)
	}
	// The CLI's login likewise: no token comes back.
	_, err = e.cli(t, e.adminCert(t, "alice")).Login(ctx, "alice", e.passwords["alice"])
	wantCode(t, "CLI login without an audit log", err, consoleapi.CodeUnavailable)
}

// TestAuditRateLimit: refusals of clients that are not logged in are
// recorded at a bounded rate; the excess is counted into the next entry.
func TestAuditRateLimit(t *testing.T) {
	e := newEnv(t, envOptions{console: []Option{WithAuditRate(1, 3)}})
	hc := e.client(t, nil)
	for range 10 {
		e.do(t, hc, http.MethodPost, "/console/logout", url.Values{}, "", "https://evil.test", testUA)
	}
	if n := len(find(e.entries(t), audit.ActionAccessDenied, "anonymous", "")); n != 3 {
		t.Fatalf("%d anonymous refusals recorded of 10, want the burst of 3", n)
	}
	e.clock.Advance(2 * time.Second)
	e.do(t, hc, http.MethodPost, "/console/logout", url.Values{}, "", "https://evil.test", testUA)
	es := find(e.entries(t), audit.ActionAccessDenied, "anonymous", "")
	if len(es) != 4 || es[3].Details["suppressed_before"] != "7" {
		t.Fatalf("after the rate refilled: %d entries, last %v; want 4, the last with suppressed_before=7", len(es), es[len(es)-1])
	}
}

// TestProposeAdminCreate: a new admin exists only after a second admin's
// approval; its password travels as an argon2id hash, never into the
// audit log, and the hash leaves the change once decided.
func TestProposeAdminCreate(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.admin(t, "alice", adminauth.RoleSecurityAdmin)
	e.enrolTOTP(t, "alice")
	e.admin(t, "bob", adminauth.RoleSecurityAdmin)
	e.enrolTOTP(t, "bob")
	alice := e.cli(t, e.adminCert(t, "alice"))
	if _, err := alice.Login(ctx, "alice", e.passwords["alice"]); err != nil {
		t.Fatal(err)
	}
	if err := alice.ProveTOTP(ctx, e.code(t, e.secrets["alice"])); err != nil {
		t.Fatal(err)
	}
	const pw = "frank's long initial password"
	_, err := alice.ProposeAdmin(ctx, "frank", "operator", "short")
	wantCode(t, "ProposeAdmin(short password)", err, consoleapi.CodeBadRequest)
	_, err = alice.ProposeAdmin(ctx, "bob", "operator", pw)
	wantCode(t, "ProposeAdmin(taken name)", err, consoleapi.CodeConflict)
	ch, err := alice.ProposeAdmin(ctx, "Frank", "operator", pw)
	if err != nil || ch.Target != "frank" || ch.State != "pending" {
		t.Fatalf("ProposeAdmin = %+v, %v", ch, err)
	}
	if _, err := e.authStore.AdminByName(ctx, "frank"); err == nil {
		t.Fatalf("frank exists before any approval")
	}
	stored, err := e.console.approvals.Get(ctx, approval.ID(ch.ID))
	if err != nil || !strings.HasPrefix(stored.PasswordHash, "$argon2id$") {
		t.Fatalf("stored proposal %v, %v: want an argon2id hash", stored, err)
	}
	bob := e.cli(t, e.adminCert(t, "bob"))
	if _, err := bob.Login(ctx, "bob", e.passwords["bob"]); err != nil {
		t.Fatal(err)
	}
	if err := bob.ProveTOTP(ctx, e.code(t, e.secrets["bob"])); err != nil {
		t.Fatal(err)
	}
	done, err := bob.Approve(ctx, ch.ID)
	if err != nil || done.State != "applied" {
		t.Fatalf("Approve = %+v, %v", done, err)
	}
	frank, err := e.authStore.AdminByName(ctx, "frank")
	if err != nil || frank.Role != adminauth.RoleOperator || frank.ID != ch.TargetID {
		t.Fatalf("frank after the approval: %+v, %v", frank, err)
	}
	res, err := e.auth.Login(ctx, "frank", pw, loopback)
	if err != nil || res.Kind != adminauth.SessionEnrol {
		t.Fatalf("frank's first login = %+v, %v; want an enrolment session", res, err)
	}
	if stored, _ := e.console.approvals.Get(ctx, approval.ID(ch.ID)); stored.PasswordHash != "" {
		t.Errorf("the applied change keeps the password hash")
	}
	for _, x := range e.entries(t) {
		s := x.String() + " " + strings.Join(x.Approvals, " ")
		for _, v := range x.Details {
			s += " " + v
		}
		if strings.Contains(s, pw) || strings.Contains(s, "argon2id") {
			t.Errorf("audit entry %d holds the password or its hash: %s", x.Index, s)
		}
	}
	if len(find(e.entries(t), audit.ActionAdminCreate, "bob", audit.OutcomeSuccess)) != 1 {
		t.Errorf("no admin.create success recorded")
	}
}
