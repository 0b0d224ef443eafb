package adminauth

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRBACTable(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		role Role
		perm Permission
		ok   bool
	}{
		{RoleViewer, PermInventoryRead, true},
		{RoleViewer, PermRolloutRead, true},
		{RoleViewer, PermRolloutStart, false},
		{RoleViewer, PermAuditRead, false},
		{RoleViewer, PermEventsRead, false},
		{RoleOperator, PermRolloutStart, true},
		{RoleOperator, PermRolloutControl, true},
		{RoleOperator, PermApproveRollout, true},
		{RoleOperator, PermApproveSecurity, false},
		{RoleOperator, PermPolicyWrite, false},
		{RoleOperator, PermAdminManage, false},
		{RoleOperator, PermBundleRegister, false},
		{RoleOperator, PermAuditRead, false},
		{RoleSecurityAdmin, PermPolicyWrite, true},
		{RoleSecurityAdmin, PermKeyManage, true},
		{RoleSecurityAdmin, PermAdminManage, true},
		{RoleSecurityAdmin, PermApproveSecurity, true},
		{RoleSecurityAdmin, PermDeviceRevoke, true},
		{RoleSecurityAdmin, PermDeviceAdmit, true},
		{RoleOperator, PermDeviceAdmit, false},
		{RoleViewer, PermDeviceRevoke, false},
		{RoleAuditor, PermDeviceAdmit, false},
		{RoleSecurityAdmin, PermRolloutStart, false},
		{RoleSecurityAdmin, PermApproveRollout, false},
		{RoleSecurityAdmin, PermAuditExport, false},
		{RoleAuditor, PermAuditRead, true},
		{RoleAuditor, PermAuditExport, true},
		{RoleAuditor, PermPolicyRead, true},
		{RoleAuditor, PermPolicyWrite, false},
		{RoleAuditor, PermRolloutStart, false},
		{RoleAuditor, PermAdminManage, false},
		{"root", PermInventoryRead, false},
		{"", PermInventoryRead, false},
		{RoleSecurityAdmin, "everything", false},
	}
	for _, tt := range tests {
		err := Check(tt.role, tt.perm, now)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrForbidden)) {
			t.Errorf("Check(%s, %s) = %v, want allowed %v", tt.role, tt.perm, err, tt.ok)
		}
	}
	// No role holds everything; every permission is held by someone; an
	// unknown permission is privileged.
	for _, r := range Roles() {
		if len(grants[r]) == len(Permissions()) {
			t.Errorf("role %s holds every permission", r)
		}
	}
	for _, p := range Permissions() {
		if _, ok := permissions[p]; !ok {
			t.Errorf("permission %s has no description", p)
		}
		held := false
		for _, r := range Roles() {
			held = held || Check(r, p, now) == nil
		}
		if !held {
			t.Errorf("permission %s held by no role", p)
		}
	}
	if !Permission("unknown").Privileged() || PermInventoryRead.Privileged() || !PermPolicyWrite.Privileged() {
		t.Errorf("Privileged: unknown %v, inventory.read %v, policy.write %v", Permission("unknown").Privileged(), PermInventoryRead.Privileged(), PermPolicyWrite.Privileged())
	}
	table := PermissionTable()
	if !strings.Contains(table, "| `policy.write` |") || strings.Count(table, "\n") != len(Permissions())+2 {
		t.Errorf("PermissionTable() =\n%s", table)
	}
}

func TestRBACWindows(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		berlin = time.FixedZone("CET", 3600)
	}
	r, err := NewRBAC(map[Role][]Window{
		// Operators on weekdays 08:00-18:00 Berlin time.
		RoleOperator: {{Days: []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}, Start: 8 * 60, End: 18 * 60, Location: berlin}},
		// Auditors Saturday night 22:00 to Sunday 02:00 UTC.
		RoleAuditor: {{Days: []time.Weekday{time.Saturday}, Start: 22 * 60, End: 2 * 60, Location: time.UTC}},
	})
	if err != nil {
		t.Fatalf("NewRBAC error %v", err)
	}
	at := func(s string, loc *time.Location) time.Time {
		tm, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	for _, tt := range []struct {
		role Role
		when time.Time
		ok   bool
	}{
		{RoleOperator, at("2026-12-04 08:00", berlin), true}, // Friday
		{RoleOperator, at("2026-12-04 17:59", berlin), true},
		{RoleOperator, at("2026-12-04 18:00", berlin), false},
		{RoleOperator, at("2026-12-04 07:59", berlin), false},
		{RoleOperator, at("2026-12-05 12:00", berlin), false},  // Saturday
		{RoleOperator, at("2026-12-04 07:30", time.UTC), true}, // 08:30 in Berlin
		{RoleAuditor, at("2026-12-05 23:00", time.UTC), true},  // Saturday night
		{RoleAuditor, at("2026-12-06 01:59", time.UTC), true},  // Sunday early
		{RoleAuditor, at("2026-12-06 02:00", time.UTC), false},
		{RoleAuditor, at("2026-12-05 21:59", time.UTC), false},
		{RoleAuditor, at("2026-12-07 01:00", time.UTC), false}, // Monday early
		{RoleViewer, at("2026-12-06 03:00", time.UTC), true},   // no window: always
	} {
		perm := PermRolloutRead
		err := r.Check(tt.role, perm, tt.when)
		if (err == nil) != tt.ok {
			t.Errorf("Check(%s, %s, %v) = %v, want allowed %v", tt.role, perm, tt.when, err, tt.ok)
		}
	}
	for _, w := range []Window{{}, {Days: []time.Weekday{1}, Start: 0, End: 0, Location: time.UTC}, {Days: []time.Weekday{1}, Start: -1, End: 5, Location: time.UTC}, {Days: []time.Weekday{1}, Start: 1, End: 5}} {
		if _, err := NewRBAC(map[Role][]Window{RoleViewer: {w}}); !errors.Is(err, ErrInvalid) {
			t.Errorf("NewRBAC(%+v) error %v, want ErrInvalid", w, err)
		}
	}
	if _, err := NewRBAC(map[Role][]Window{"root": nil}); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewRBAC(unknown role) error %v, want ErrInvalid", err)
	}
}

// TestSecretsNeverLogged: types holding secrets print REDACTED.
func TestSecretsNeverLogged(t *testing.T) {
	e, err := NewTOTP("fleet", "alice")
	if err != nil {
		t.Fatal(err)
	}
	h := "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4"
	ad := Admin{ID: NewAdminID(), Name: "alice", Role: RoleViewer, PasswordHash: h, TOTPSecret: e.Secret}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	log.Info("x", "admin", ad, "enrol", e, "secret", e.Secret, "login", LoginResult{Token: "tok-secret-value"},
		"session", Session{AdminID: ad.ID, Ceremony: []byte("ceremony-secret")})
	out := buf.String() + fmt.Sprint(e.Secret) + fmt.Sprintf("%v %#v", e.Secret, e.Secret)
	for _, s := range []string{string(e.Secret), "nf65EOgLrQ", "tok-secret-value", "ceremony-secret"} {
		if strings.Contains(out, s) {
			t.Fatalf("secret %q in output:\n%s", s, out)
		}
	}
	if !strings.Contains(out, "REDACTED") || !strings.Contains(out, "alice") {
		t.Fatalf("output %s: want REDACTED and the admin's name", out)
	}
}
