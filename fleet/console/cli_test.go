package console

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/console/consoleapi"
	"github.com/hardphone/hardphone/fleet/console/consoleclient"
)

func (e *env) cli(t *testing.T, cert *tls.Certificate) *consoleclient.Client {
	t.Helper()
	c, err := consoleclient.New(consoleclient.Config{URL: e.origin, Roots: e.roots, Certificate: cert, DialAddr: e.addr})
	if err != nil {
		t.Fatalf("consoleclient.New error %v", err)
	}
	return c
}

func wantCode(t *testing.T, what string, err error, code consoleapi.Code) {
	t.Helper()
	var ae *consoleapi.Error
	if !errors.As(err, &ae) || ae.Code != code {
		t.Fatalf("%s error %v, want %s", what, err, code)
	}
}

// TestCLI: hpctl's flow, client certificate + password + TOTP, under the
// same rules as the browser: RBAC per call, step-up for privileged calls,
// the two-person rule, and no login without the admin's own certificate.
func TestCLI(t *testing.T) {
	e := newEnv(t, envOptions{})
	devs := e.seedDevices(t, 3)
	e.admin(t, "alice", adminauth.RoleSecurityAdmin)
	e.enrolTOTP(t, "alice")
	bobAdmin := e.admin(t, "bob", adminauth.RoleSecurityAdmin)
	e.enrolTOTP(t, "bob")
	carol := e.admin(t, "carol", adminauth.RoleViewer)
	e.enrolTOTP(t, "carol")

	t.Run("certificate required and bound to the name", func(t *testing.T) {
		// Another admin's certificate, or none, and the right password:
		// the same answer as a wrong password.
		_, err := e.cli(t, e.adminCert(t, "bob")).Login(ctx, "alice", e.passwords["alice"])
		wantCode(t, "Login(alice with bob's certificate)", err, consoleapi.CodeUnauthenticated)
		hc := e.client(t, nil)
		got := e.do(t, hc, http.MethodGet, "/v1/console/session", nil, "", "", testUA)
		if got.status != http.StatusUnauthorized {
			t.Fatalf("GET session without a client certificate = %d, want 401", got.status)
		}
		// A certificate of a CA that is not an admin CA is not even
		// accepted by TLS verification.
		rogueCert, rogueKey, _ := e.pki.RogueClient("alice")
		rc, _ := tls.LoadX509KeyPair(rogueCert, rogueKey)
		if _, err := e.cli(t, &rc).Login(ctx, "alice", e.passwords["alice"]); err == nil {
			t.Fatalf("Login with a rogue CA's certificate succeeded")
		}
	})

	alice := e.cli(t, e.adminCert(t, "alice"))
	res, err := alice.Login(ctx, "alice", e.passwords["alice"])
	if err != nil || res.Stage != consoleapi.StageSecondFactor || !res.TOTP {
		t.Fatalf("Login(alice) = %+v, %v; want the second-factor stage", res, err)
	}
	// A pending login authorizes nothing.
	_, err = alice.Devices(ctx, "")
	wantCode(t, "Devices(pending)", err, consoleapi.CodeUnauthenticated)
	wantCode(t, "ProveTOTP(wrong)", alice.ProveTOTP(ctx, "000000"), consoleapi.CodeUnauthenticated)
	if err := alice.ProveTOTP(ctx, e.code(t, e.secrets["alice"])); err != nil {
		t.Fatalf("ProveTOTP error %v", err)
	}
	s, err := alice.Session(ctx)
	if err != nil || s.Name != "alice" || s.Role != "security_admin" {
		t.Fatalf("Session = %+v, %v", s, err)
	}
	page, err := alice.Devices(ctx, "")
	if err != nil || len(page.Devices) != 3 {
		t.Fatalf("Devices = %+v, %v; want 3", page, err)
	}
	evs, err := alice.DeviceEvents(ctx, string(devs[0]))
	if err != nil || len(evs) == 0 {
		t.Fatalf("DeviceEvents = %v, %v; want events", evs, err)
	}

	// Privileged calls need a recent second factor.
	e.clock.Advance(adminauth.DefaultStepUp + time.Minute)
	_, err = alice.ProposeRole(ctx, carol.ID, "operator")
	wantCode(t, "ProposeRole(stale second factor)", err, consoleapi.CodeStepUp)
	if err := alice.StepUp(ctx, e.code(t, e.secrets["alice"])); err != nil {
		t.Fatalf("StepUp error %v", err)
	}
	ch, err := alice.ProposeRole(ctx, carol.ID, "operator")
	if err != nil || ch.State != "pending" || ch.ToRole != "operator" {
		t.Fatalf("ProposeRole = %+v, %v; want pending", ch, err)
	}
	// With two security admins, neither can be disabled or demoted: no
	// admin change could be approved after.
	_, err = alice.ProposeDisable(ctx, bobAdmin.ID)
	wantCode(t, "ProposeDisable(one of the last two security admins)", err, consoleapi.CodeConflict)
	_, err = alice.ProposeRole(ctx, bobAdmin.ID, "viewer")
	wantCode(t, "ProposeRole(one of the last two security admins)", err, consoleapi.CodeConflict)
	// Not by the proposer.
	_, err = alice.Approve(ctx, ch.ID)
	wantCode(t, "Approve(own change)", err, consoleapi.CodeSamePerson)

	// A viewer reads the inventory but not the events.
	cv := e.cli(t, e.adminCert(t, "carol"))
	if _, err := cv.Login(ctx, "carol", e.passwords["carol"]); err != nil {
		t.Fatalf("Login(carol) error %v", err)
	}
	if err := cv.ProveTOTP(ctx, e.code(t, e.secrets["carol"])); err != nil {
		t.Fatalf("ProveTOTP(carol) error %v", err)
	}
	if _, err := cv.Devices(ctx, ""); err != nil {
		t.Fatalf("Devices(viewer) error %v", err)
	}
	_, err = cv.DeviceEvents(ctx, string(devs[0]))
	wantCode(t, "DeviceEvents(viewer)", err, consoleapi.CodeForbidden)
	_, err = cv.Approve(ctx, ch.ID)
	wantCode(t, "Approve(viewer, the change's target)", err, consoleapi.CodeForbidden)

	// The second admin approves; the role changes and carol's sessions end.
	bob := e.cli(t, e.adminCert(t, "bob"))
	if _, err := bob.Login(ctx, "bob", e.passwords["bob"]); err != nil {
		t.Fatalf("Login(bob) error %v", err)
	}
	if err := bob.ProveTOTP(ctx, e.code(t, e.secrets["bob"])); err != nil {
		t.Fatalf("ProveTOTP(bob) error %v", err)
	}
	done, err := bob.Approve(ctx, ch.ID)
	if err != nil || done.State != "applied" || done.DecidedBy != "bob" {
		t.Fatalf("Approve(bob) = %+v, %v; want applied by bob", done, err)
	}
	if ad, _ := e.authStore.AdminByID(ctx, carol.ID); ad.Role != adminauth.RoleOperator {
		t.Fatalf("carol's role = %s after the approval, want operator", ad.Role)
	}
	_, err = cv.Devices(ctx, "")
	wantCode(t, "Devices(carol after her role changed)", err, consoleapi.CodeUnauthenticated)
	_, err = bob.Approve(ctx, ch.ID)
	wantCode(t, "Approve(again)", err, consoleapi.CodeConflict)

	// The audit trail holds the request, the grant and the change, the
	// change naming both.
	es := e.entries(t)
	req := find(es, audit.ActionApprovalRequest, "alice", audit.OutcomePending)
	grant := find(es, audit.ActionApprovalGrant, "bob", audit.OutcomeSuccess)
	role := find(es, audit.ActionAdminRole, "bob", audit.OutcomeSuccess)
	self := find(es, audit.ActionApprovalGrant, "alice", audit.OutcomeDenied)
	if len(req) != 1 || len(grant) != 1 || len(role) != 1 || len(self) != 1 {
		t.Fatalf("audit: %d requests, %d grants, %d role changes, %d refused self-approvals; want 1 each", len(req), len(grant), len(role), len(self))
	}
	if role[0].Details["proposed_by"] != "alice" || role[0].Details["approved_by"] != "bob" || len(role[0].Approvals) != 3 {
		t.Errorf("admin.role entry %+v: want proposed by alice, approved by bob, 3 references", role[0])
	}

	// The export needs audit.export: an auditor has it, alice not.
	var buf bytes.Buffer
	_, err = alice.AuditExport(ctx, &buf)
	wantCode(t, "AuditExport(security admin)", err, consoleapi.CodeForbidden)
	e.admin(t, "erin", adminauth.RoleAuditor)
	e.enrolTOTP(t, "erin")
	erin := e.cli(t, e.adminCert(t, "erin"))
	if _, err := erin.Login(ctx, "erin", e.passwords["erin"]); err != nil {
		t.Fatal(err)
	}
	if err := erin.ProveTOTP(ctx, e.code(t, e.secrets["erin"])); err != nil {
		t.Fatal(err)
	}
	if _, err := e.log.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := erin.AuditExport(ctx, &buf); err != nil {
		t.Fatalf("AuditExport(auditor) error %v", err)
	}
	rep, err := audit.Verify(&buf, e.log.Trust())
	if err != nil || !rep.OK() || rep.Entries == 0 {
		t.Fatalf("Verify(export) = %+v, %v; want a clean report", rep, err)
	}
	if len(find(e.entries(t), audit.ActionAuditExport, "erin", audit.OutcomeSuccess)) != 1 {
		t.Errorf("the export is not in the audit log")
	}

	// Logout kills the token.
	if err := alice.Logout(ctx); err != nil {
		t.Fatalf("Logout error %v", err)
	}
	if _, err := alice.Devices(ctx, ""); !errors.Is(err, consoleclient.ErrNotLoggedIn) {
		var ae *consoleapi.Error
		if !errors.As(err, &ae) || ae.Code != consoleapi.CodeUnauthenticated {
			t.Fatalf("Devices after logout error %v, want unauthenticated", err)
		}
	}
}
