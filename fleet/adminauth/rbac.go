package adminauth

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hardphone/hardphone/internal/weekly"
)

// Role is an admin's role. An admin has exactly one; a new admin is a
// Viewer until a security admin (with a second's approval) says otherwise.
type Role string

// Roles.
const (
	// RoleViewer reads the inventory and rollouts.
	RoleViewer Role = "viewer"
	// RoleOperator runs rollouts of bundles already approved, and
	// approves other operators' rollouts.
	RoleOperator Role = "operator"
	// RoleSecurityAdmin changes policies, keys and admins, revokes
	// devices, registers bundles.
	RoleSecurityAdmin Role = "security_admin"
	// RoleAuditor reads everything an audit needs, the audit trail
	// above all, and changes nothing.
	RoleAuditor Role = "auditor"
)

// Roles lists the roles in the order of the permission table.
func Roles() []Role { return []Role{RoleViewer, RoleOperator, RoleSecurityAdmin, RoleAuditor} }

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return slices.Contains(Roles(), r) }

// Permission is one thing an admin may do.
type Permission string

// Permissions.
const (
	PermInventoryRead   Permission = "inventory.read"
	PermRolloutRead     Permission = "rollout.read"
	PermRolloutStart    Permission = "rollout.start"
	PermRolloutControl  Permission = "rollout.control"
	PermApproveRollout  Permission = "approval.rollout"
	PermApproveSecurity Permission = "approval.security"
	PermEventsRead      Permission = "events.read"
	PermPolicyRead      Permission = "policy.read"
	PermPolicyWrite     Permission = "policy.write"
	PermBundleRegister  Permission = "bundle.register"
	PermKeyManage       Permission = "key.manage"
	PermDeviceRevoke    Permission = "device.revoke"
	PermDeviceAdmit     Permission = "device.admit"
	PermAdminRead       Permission = "admin.read"
	PermAdminManage     Permission = "admin.manage"
	PermAuditRead       Permission = "audit.read"
	PermAuditExport     Permission = "audit.export"
)

// permInfo describes a permission: what it allows and whether it is
// privileged (needs a second factor proved within the step-up window).
type permInfo struct {
	text       string
	privileged bool
}

var permissions = map[Permission]permInfo{
	PermInventoryRead:   {"list devices and read their state", false},
	PermRolloutRead:     {"read rollouts, rings and their health", false},
	PermRolloutStart:    {"start a rollout of an approved bundle or configuration (takes effect on a second approval)", true},
	PermRolloutControl:  {"halt, resume or abort a rollout", true},
	PermApproveRollout:  {"approve another admin's rollout", true},
	PermApproveSecurity: {"approve another admin's policy, key, admin or role change", true},
	PermEventsRead:      {"read device security events", false},
	PermPolicyRead:      {"read groups' lockdown policies", false},
	PermPolicyWrite:     {"change a group's lockdown policy (takes effect on a second approval), or the fleet's minimum security version", true},
	PermBundleRegister:  {"register a firmware bundle or configuration for rollouts, or assign one directly where no approval is needed", true},
	PermKeyManage:       {"rotate the server's keys, admins' approval keys and devices' SIP passwords", true},
	PermDeviceRevoke:    {"revoke or retire a device", true},
	PermDeviceAdmit:     {"import devices into the allow-list (who may enrol), lift a block or quarantine the anomaly detector put on a device", true},
	PermAdminRead:       {"list admins and their roles", false},
	PermAdminManage:     {"create, disable an admin or change a role (takes effect on a second approval)", true},
	PermAuditRead:       {"read the audit trail and its checkpoints", false},
	PermAuditExport:     {"export the audit trail for verification", true},
}

// Permissions lists every permission in table order.
func Permissions() []Permission {
	return []Permission{PermInventoryRead, PermRolloutRead, PermRolloutStart, PermRolloutControl, PermApproveRollout,
		PermApproveSecurity, PermEventsRead, PermPolicyRead, PermPolicyWrite, PermBundleRegister, PermKeyManage,
		PermDeviceRevoke, PermDeviceAdmit, PermAdminRead, PermAdminManage, PermAuditRead, PermAuditExport}
}

// Privileged reports whether p needs a recent second factor (step-up).
// An unknown permission is privileged.
func (p Permission) Privileged() bool {
	i, ok := permissions[p]
	return !ok || i.privileged
}

// grants is the permission table: what each role holds, nothing more
// (least privilege: a permission not listed is denied).
var grants = map[Role][]Permission{
	RoleViewer: {PermInventoryRead, PermRolloutRead},
	RoleOperator: {PermInventoryRead, PermRolloutRead, PermRolloutStart, PermRolloutControl, PermApproveRollout,
		PermEventsRead},
	RoleSecurityAdmin: {PermInventoryRead, PermRolloutRead, PermEventsRead, PermPolicyRead, PermPolicyWrite,
		PermApproveSecurity, PermBundleRegister, PermKeyManage, PermDeviceRevoke, PermDeviceAdmit, PermAdminRead,
		PermAdminManage, PermAuditRead},
	RoleAuditor: {PermInventoryRead, PermRolloutRead, PermEventsRead, PermPolicyRead, PermAdminRead, PermAuditRead,
		PermAuditExport},
}

// Window is a weekly time window in a location (package weekly): the
// days it opens on and the minutes of the day [Start, End). End < Start
// spans midnight (22:00 to 06:00); the day is the day it opens.
type Window = weekly.Window

// ParseWindow reads a role's window as hpfleet's --role-window takes it,
// "DAYS HH:MM-HH:MM ZONE" ("Mon-Fri 08:00-18:00 Europe/Berlin"). Its
// errors wrap ErrInvalid.
func ParseWindow(s string) (Window, error) {
	w, err := weekly.Parse(s)
	if err != nil {
		return w, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return w, nil
}

// RBAC checks permissions against the table and the optional time
// windows of each role. The zero value has no windows.
type RBAC struct {
	windows map[Role][]Window // read-only after NewRBAC
}

// NewRBAC returns an RBAC where each role listed in windows acts only
// inside one of its windows; roles not listed act at any time.
func NewRBAC(windows map[Role][]Window) (*RBAC, error) {
	r := &RBAC{windows: map[Role][]Window{}}
	for role, ws := range windows {
		if !role.Valid() {
			return nil, fmt.Errorf("rbac: role %q: %w", role, ErrInvalid)
		}
		for _, w := range ws {
			if err := w.Validate(); err != nil {
				return nil, fmt.Errorf("rbac: role %s: %w: %v", role, ErrInvalid, err)
			}
			r.windows[role] = append(r.windows[role], Window{Days: slices.Clone(w.Days), Start: w.Start, End: w.End, Location: w.Location})
		}
	}
	return r, nil
}

// Check returns nil if role holds p at now, else an error wrapping
// ErrForbidden. Unknown roles and permissions are denied.
func (r *RBAC) Check(role Role, p Permission, now time.Time) error {
	if !role.Valid() || !slices.Contains(grants[role], p) {
		return fmt.Errorf("role %q does not hold %q: %w", role, p, ErrForbidden)
	}
	if ws := r.windows[role]; len(ws) > 0 && !slices.ContainsFunc(ws, func(w Window) bool { return w.Contains(now) }) {
		return fmt.Errorf("role %s acts only inside its time windows: %w", role, ErrForbidden)
	}
	return nil
}

// Check is RBAC.Check without time windows.
func Check(role Role, p Permission, now time.Time) error { return (&RBAC{}).Check(role, p, now) }

// PermissionTable renders the table as Markdown, for the README.
func PermissionTable() string {
	var b strings.Builder
	b.WriteString("| permission | what it allows | step-up |")
	for _, r := range Roles() {
		b.WriteString(" " + string(r) + " |")
	}
	b.WriteString("\n|---|---|---|")
	for range Roles() {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, p := range Permissions() {
		step := ""
		if p.Privileged() {
			step = "yes"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |", p, permissions[p].text, step)
		for _, r := range Roles() {
			mark := ""
			if slices.Contains(grants[r], p) {
				mark = "✓"
			}
			b.WriteString(" " + mark + " |")
		}
		b.WriteString("\n")
	}
	return b.String()
}
