package api

import (
	"fmt"
	"time"
)

// Paths of staged rollouts, approvals and the audit trail. {id} is a
// rollout ID ("ro-" and 32 hex digits).
const (
	// PathAdminRollouts: POST starts a rollout (RolloutRequest → Rollout,
	// state pending until approved); GET lists them, newest first
	// (?after=&limit=, RolloutPage).
	PathAdminRollouts = "/v1/admin/rollouts"
	// PathAdminRollout: GET shows one (Rollout).
	PathAdminRollout = "/v1/admin/rollouts/{id}"
	// PathAdminRolloutDevices: GET its devices and their health
	// (?after=&limit=, RolloutDevicePage).
	PathAdminRolloutDevices = "/v1/admin/rollouts/{id}/devices"
	// PathAdminRolloutApprove: POST approves a rollout whose director
	// signs alone (→ Rollout); a second admin, never its creator.
	PathAdminRolloutApprove = "/v1/admin/rollouts/{id}/approve"
	// PathAdminRolloutStaged: GET the targets staged for approvers'
	// signatures (?after=&limit=, StagedPage).
	PathAdminRolloutStaged = "/v1/admin/rollouts/{id}/staged"
	// PathAdminRolloutSignatures: POST an approver's signatures over
	// staged targets (SignatureUpload → Rollout).
	PathAdminRolloutSignatures = "/v1/admin/rollouts/{id}/signatures"
	// PathAdminRolloutHalt, Resume, Abort: POST (RolloutAction → Rollout).
	PathAdminRolloutHalt   = "/v1/admin/rollouts/{id}/halt"
	PathAdminRolloutResume = "/v1/admin/rollouts/{id}/resume"
	PathAdminRolloutAbort  = "/v1/admin/rollouts/{id}/abort"
	// PathAdminApproverKeys: POST registers the calling admin's approval
	// key (ApproverKeyRequest → ApproverKey); GET lists them
	// (ApproverKeyList).
	PathAdminApproverKeys = "/v1/admin/approver-keys"
	// PathAdminAuditExport: GET the audit log as JSON lines
	// (fleet/audit's export format).
	PathAdminAuditExport = "/v1/admin/audit/export"
)

// RolloutPath fills {id} of a rollout path.
func RolloutPath(path, id string) string { return fill(path, "{id}", id) }

// ValidRolloutID reports whether id has the form of a rollout ID.
func ValidRolloutID(id string) bool {
	if len(id) != 35 || id[:3] != "ro-" {
		return false
	}
	for i := 3; i < len(id); i++ {
		if c := id[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Bounds of the rollout bodies.
const (
	// MaxRolloutRequest bounds a rollout request (its document included).
	MaxRolloutRequest = 300 << 10
	// MaxStagedPage bounds the devices of one staged page (each may carry
	// a document of up to 1 MiB twice).
	MaxStagedPage = 3
	// MaxSignatureUpload bounds the devices of one signature upload.
	MaxSignatureUpload = 1000
	// MaxSignatureBody bounds a signature upload's body.
	MaxSignatureBody = 512 << 10
)

// RolloutRing is one ring of a request: named devices, or a cumulative
// percentage of the group (the last ring: 100).
type RolloutRing struct {
	Name    string   `json:"name"`
	Devices []string `json:"devices,omitempty"`
	Percent int      `json:"percent,omitempty"`
}

// RolloutRequest starts a rollout of firmware (an image repository target)
// or of a configuration document to a group.
type RolloutRequest struct {
	// Kind is "firmware" or "config".
	Kind string `json:"kind"`
	// Group is the group the rollout moves; or Device, one device (its
	// own firmware or document: a device-scope rollout, of the device's
	// group's rollouts while it runs). Exactly one of them.
	Group  string `json:"group,omitempty"`
	Device string `json:"device,omitempty"`
	// Firmware names the target; Config is the group's (or the device's)
	// new document (TOML).
	Firmware string        `json:"firmware,omitempty"`
	Config   string        `json:"config,omitempty"`
	Rings    []RolloutRing `json:"rings"`
	// MaxFailurePercent of a ring may fail before the rollout halts (0:
	// the first failure halts it).
	MaxFailurePercent int `json:"max_failure_percent"`
	// Deadline and ReportTimeout are Go durations ("24h", "30m"); empty
	// takes the defaults (24h, 1h).
	Deadline      string `json:"deadline,omitempty"`
	ReportTimeout string `json:"report_timeout,omitempty"`
	// Window is the maintenance window in the phones' local time,
	// "Mon-Fri 02:00-04:00 Europe/Berlin"; empty: any time.
	Window string `json:"window,omitempty"`
}

// Validate checks the request's bounds (the server checks the rest).
func (r *RolloutRequest) Validate() error {
	if len(r.Rings) == 0 || len(r.Rings) > 8 {
		return fmt.Errorf("%d rings, want 1..8", len(r.Rings))
	}
	if len(r.Config) > 256<<10 || len(r.Firmware) > 255 || len(r.Window) > 128 || len(r.Group) > 64 || len(r.Device) > 64 {
		return fmt.Errorf("rollout request fields over their bounds")
	}
	if (r.Group == "") == (r.Device == "") {
		return fmt.Errorf("a rollout names a group or a device, exactly one of them")
	}
	return nil
}

// RolloutApproval is one approval: an admin, with the key they signed
// with when signatures are needed.
type RolloutApproval struct {
	Admin string    `json:"admin"`
	KeyID string    `json:"key_id,omitempty"`
	At    time.Time `json:"at"`
}

// RolloutRingView is a ring and its devices' health.
type RolloutRingView struct {
	Name      string    `json:"name"`
	Devices   int       `json:"devices"`
	StartedAt time.Time `json:"started_at,omitzero"`
	DoneAt    time.Time `json:"done_at,omitzero"`
	Waiting   int       `json:"waiting"`
	Updating  int       `json:"updating"`
	Done      int       `json:"done"`
	Failed    int       `json:"failed"`
	Reverted  int       `json:"reverted"`
}

// RolloutFailure is a failing device and why.
type RolloutFailure struct {
	Device string `json:"device"`
	Reason string `json:"reason"`
}

// RolloutHalt says why a rollout stopped: "system" for an automatic halt.
type RolloutHalt struct {
	At       time.Time        `json:"at"`
	By       string           `json:"by"`
	Ring     string           `json:"ring"`
	Reason   string           `json:"reason"`
	Failures []RolloutFailure `json:"failures,omitempty"`
}

// RolloutEvent is one transition.
type RolloutEvent struct {
	Seq    int64     `json:"seq"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Detail string    `json:"detail,omitempty"`
}

// Rollout is a rollout as admins see it.
type Rollout struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"`
	Group string `json:"group"`
	// Device is set for a device-scope rollout (Group is its group).
	Device    string    `json:"device,omitempty"`
	State     string    `json:"state"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	// Firmware is the target a firmware rollout installs.
	Firmware *FirmwareTarget `json:"firmware,omitempty"`
	// Config is the document a configuration rollout sets (TOML), with
	// its SHA-256; PolicyChange lists the lockdown policy keys it
	// changes (such a rollout needs a security admin's approval).
	Config       string   `json:"config,omitempty"`
	ConfigSHA256 string   `json:"config_sha256,omitempty"`
	PolicyChange []string `json:"policy_change,omitempty"`
	// Signatures is how many admins' signatures each device's targets
	// needs (0: the director signs alone and the approval is the
	// server's).
	Signatures        int               `json:"signatures"`
	Approvals         []RolloutApproval `json:"approvals,omitempty"`
	Rings             []RolloutRingView `json:"rings"`
	CurrentRing       string            `json:"current_ring,omitempty"`
	MaxFailurePercent int               `json:"max_failure_percent"`
	Deadline          string            `json:"deadline"`
	ReportTimeout     string            `json:"report_timeout"`
	Window            string            `json:"window,omitempty"`
	Halt              *RolloutHalt      `json:"halt,omitempty"`
	History           []RolloutEvent    `json:"history,omitempty"`
	// Excluded lists the group's devices left out and why (a device's own
	// firmware pin, not published yet).
	Excluded []string `json:"excluded,omitempty"`
}

// RolloutPage is one page of rollouts.
type RolloutPage struct {
	Rollouts []Rollout `json:"rollouts"`
	Next     string    `json:"next,omitempty"`
}

// RolloutDevice is one device's part in a rollout.
type RolloutDevice struct {
	Device         string    `json:"device"`
	Ring           string    `json:"ring"`
	Status         string    `json:"status"`
	Reason         string    `json:"reason,omitempty"`
	ReleasedAt     time.Time `json:"released_at,omitzero"`
	TargetsVersion int64     `json:"targets_version,omitempty"`
	ConfigVersion  uint64    `json:"config_version,omitempty"`
}

// RolloutDevicePage is one page of a rollout's devices.
type RolloutDevicePage struct {
	Devices []RolloutDevice `json:"devices"`
	Next    string          `json:"next,omitempty"`
}

// StagedTargets is one staged director targets and its document.
type StagedTargets struct {
	Targets []byte `json:"targets"`
	Config  []byte `json:"config,omitempty"`
}

// StagedDevice is what approvers sign for one device: Forward (the
// rollout's change) and Revert (back to what it has, for an abort), and
// the device's own configuration overrides the document was composed
// with (TOML, "" for none); for a device-scope rollout, whose document
// takes the overrides' place, GroupConfig is the group's document it was
// composed over.
type StagedDevice struct {
	Device      string         `json:"device"`
	Unchanged   bool           `json:"unchanged,omitempty"`
	Override    string         `json:"override,omitempty"`
	GroupConfig string         `json:"group_config,omitempty"`
	Forward     *StagedTargets `json:"forward,omitempty"`
	Revert      *StagedTargets `json:"revert,omitempty"`
}

// StagedPage is one page of staged devices.
type StagedPage struct {
	Rollout string         `json:"rollout"`
	Devices []StagedDevice `json:"devices"`
	Next    string         `json:"next,omitempty"`
	// Total is the number of the rollout's devices.
	Total int `json:"total"`
}

// DeviceSignatures are one approver's detached signatures over a device's
// staged Forward and Revert targets.
type DeviceSignatures struct {
	Device  string `json:"device"`
	Forward []byte `json:"forward"`
	Revert  []byte `json:"revert"`
}

// SignatureUpload is POST PathAdminRolloutSignatures: signatures by one
// key (the calling admin's registered approval key).
type SignatureUpload struct {
	KeyID   string             `json:"key_id"`
	Devices []DeviceSignatures `json:"devices"`
}

// Validate bounds the upload.
func (u *SignatureUpload) Validate() error {
	if len(u.KeyID) != 64 || len(u.Devices) == 0 || len(u.Devices) > MaxSignatureUpload {
		return fmt.Errorf("signature upload: key ID of %d bytes and %d devices, want 64 and 1..%d", len(u.KeyID), len(u.Devices), MaxSignatureUpload)
	}
	for _, d := range u.Devices {
		if len(d.Forward) > 128 || len(d.Revert) > 128 {
			return fmt.Errorf("signature upload: device %.40q: signatures over 128 bytes", d.Device)
		}
	}
	return nil
}

// RolloutAction carries an operator's reason (halt, resume, abort).
type RolloutAction struct {
	Reason string `json:"reason,omitempty"`
}

// Validate bounds the reason.
func (a *RolloutAction) Validate() error {
	if len(a.Reason) > 256 {
		return fmt.Errorf("reason of %d bytes, at most 256", len(a.Reason))
	}
	return nil
}

// ApproverKeyRequest registers the calling admin's approval key: its
// public half (PKIX DER) and a proof of possession (tufrepo.SignProof over
// tufrepo.ProofMessage(server name, admin, key ID)).
type ApproverKeyRequest struct {
	PublicKey []byte `json:"public_key"`
	Proof     []byte `json:"proof"`
}

// Validate bounds the request.
func (r *ApproverKeyRequest) Validate() error {
	if len(r.PublicKey) == 0 || len(r.PublicKey) > 512 || len(r.Proof) == 0 || len(r.Proof) > 128 {
		return fmt.Errorf("approver key: public key of %d bytes, proof of %d, want 1..512 and 1..128", len(r.PublicKey), len(r.Proof))
	}
	return nil
}

// ApproverKey is a registered approval key.
type ApproverKey struct {
	KeyID        string    `json:"key_id"`
	Admin        string    `json:"admin"`
	RegisteredAt time.Time `json:"registered_at"`
}

// ApproverKeyList lists the registered keys.
type ApproverKeyList struct {
	Keys []ApproverKey `json:"keys"`
	// Fleet is the name approvers sign proofs for (the server's).
	Fleet string `json:"fleet"`
	// Needed is how many admins' signatures a device's targets needs.
	Needed int `json:"needed"`
}
