package rollout

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/hardphone/hardphone/fleet/director"
	"github.com/hardphone/hardphone/fleet/store"
)

// State is where a rollout is in its life.
type State string

// States. Pending waits for approval; Running moves ring by ring; Halted
// waits for an operator (resume or abort); Aborting points the devices
// already moved back, then Aborted; Completing writes the group's
// assignment, then Completed. Aborted, Completed and Refused are final.
const (
	StatePending    State = "pending"
	StateRunning    State = "running"
	StateHalted     State = "halted"
	StateAborting   State = "aborting"
	StateAborted    State = "aborted"
	StateCompleting State = "completing"
	StateCompleted  State = "completed"
	StateRefused    State = "refused"
)

// Final reports whether nothing more happens to a rollout in state s.
func (s State) Final() bool { return s == StateAborted || s == StateCompleted || s == StateRefused }

// formatVersion is the encoding of a rollout's record.
const formatVersion = 1

// maxHistory bounds the transitions a rollout keeps (older ones are in the
// audit log).
const maxHistory = 200

// maxFailuresShown bounds the failing devices a halt names.
const maxFailuresShown = 100

// Actor is who acts on a rollout: an admin (their login name and
// address) or the system (Name "system").
type Actor struct {
	Name   string
	Source netip.Addr
}

// System is the engine acting by itself.
var System = Actor{Name: "system"}

// record is a rollout as the store's Data holds it.
type record struct {
	Format    int       `json:"format"`
	ID        string    `json:"id"`
	Spec      Spec      `json:"spec"`
	State     State     `json:"state"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	// Target is the resolved firmware (KindFirmware); ConfigSHA256 the
	// document's hash (KindConfig); PolicyChange whether the document
	// changes the group's security policy.
	Target       *store.FirmwareTarget `json:"target,omitempty"`
	ConfigSHA256 string                `json:"config_sha256,omitempty"`
	PolicyChange bool                  `json:"policy_change,omitempty"`
	// GroupRevision is the group assignment's revision when the rollout
	// was created (0: none): completion writes the new assignment only
	// over that revision.
	GroupRevision uint64 `json:"group_revision"`
	// Signatures is how many admins' signatures each device's targets
	// needs (0: the director signs alone, the approval is the server's).
	Signatures int    `json:"signatures"`
	Rings      []ring `json:"rings"`
	// Current is the ring in progress (-1 before the first starts).
	Current   int        `json:"current"`
	Approvals []approval `json:"approvals,omitempty"`
	Halt      *Halt      `json:"halt,omitempty"`
	History   []Event    `json:"history"`
	// Seq numbers the transitions; Audited is the last one in the
	// audit log.
	Seq     int64 `json:"seq"`
	Audited int64 `json:"audited"`
	// Lease: the replica advancing the rollout, until when.
	LeaseHolder string    `json:"lease_holder,omitempty"`
	LeaseUntil  time.Time `json:"lease_until,omitzero"`
	Excluded    []string  `json:"excluded,omitempty"`
}

type ring struct {
	Name      string           `json:"name"`
	Devices   []store.DeviceID `json:"devices"`
	StartedAt time.Time        `json:"started_at,omitzero"`
	DoneAt    time.Time        `json:"done_at,omitzero"`
}

type approval struct {
	Admin string    `json:"admin"`
	KeyID string    `json:"key_id,omitempty"`
	At    time.Time `json:"at"`
}

// Halt says why a rollout stopped.
type Halt struct {
	At time.Time `json:"at"`
	// By is "system" for an automatic halt, else the admin.
	By       string    `json:"by"`
	Ring     string    `json:"ring"`
	Reason   string    `json:"reason"`
	Failures []Failure `json:"failures,omitempty"`
}

// Failure is one failing device and why.
type Failure struct {
	Device string `json:"device"`
	Reason string `json:"reason"`
}

// Event is one transition of a rollout.
type Event struct {
	Seq    int64     `json:"seq"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Detail string    `json:"detail,omitempty"`
	// Source is the admin's address ("" for the system).
	Source string `json:"source,omitempty"`
	// Outcome is the audit outcome ("" for success).
	Outcome string `json:"outcome,omitempty"`
}

func (r *record) event(at time.Time, a Actor, action, detail string) {
	r.Seq++
	e := Event{Seq: r.Seq, At: at, Actor: a.Name, Action: action, Detail: detail}
	if a.Source.IsValid() {
		e.Source = a.Source.String()
	}
	r.History = append(r.History, e)
	if len(r.History) > maxHistory {
		r.History = r.History[len(r.History)-maxHistory:]
	}
}

func (r *record) encode() ([]byte, error) {
	r.Format = formatVersion
	return json.Marshal(r)
}

func decodeRecord(b []byte) (*record, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("rollout record: %w", err)
	}
	if r.Format != formatVersion {
		return nil, fmt.Errorf("rollout record format %d, want %d", r.Format, formatVersion)
	}
	return &r, nil
}

// DeviceStatus is where a device is in a rollout.
type DeviceStatus string

// Device statuses.
const (
	// DeviceWaiting: its ring has not started.
	DeviceWaiting DeviceStatus = "waiting"
	// DeviceUpdating: released, its reports do not show the change done
	// yet.
	DeviceUpdating DeviceStatus = "updating"
	DeviceDone     DeviceStatus = "done"
	DeviceFailed   DeviceStatus = "failed"
	// DeviceReverted: pointed back at what it had (abort).
	DeviceReverted DeviceStatus = "reverted"
)

// deviceRecord is a device's part in a rollout (the store's
// RolloutDevice.Data).
type deviceRecord struct {
	Ring       int          `json:"ring"`
	Released   bool         `json:"released"`
	ReleasedAt time.Time    `json:"released_at,omitzero"`
	Status     DeviceStatus `json:"status"`
	Reason     string       `json:"reason,omitempty"`
	// Accepted: an operator resumed past this device's failure; it no
	// longer counts against the ring.
	Accepted bool `json:"accepted,omitempty"`
	// TargetsVersion and ConfigVersion are what the director published
	// for the rollout; the device is done when it reports ConfigVersion
	// (configuration) or the firmware (firmware) marked good.
	TargetsVersion int64  `json:"targets_version,omitempty"`
	ConfigVersion  uint64 `json:"config_version,omitempty"`
	// Evidence from the reports since release.
	SawInstalled bool   `json:"saw_installed,omitempty"`
	SawBooted    bool   `json:"saw_booted,omitempty"`
	LastUptime   uint64 `json:"last_uptime,omitempty"`
	// Staged are the device's forward and revert targets for admins'
	// signatures (nil without a threshold); Unchanged when the rollout
	// changes nothing for the device.
	Staged    *director.Staged `json:"staged,omitempty"`
	Unchanged bool             `json:"unchanged,omitempty"`
	// SignedBy lists the approval keys whose signatures on Staged (both
	// targets) verified.
	SignedBy []string `json:"signed_by,omitempty"`
	// Reverted: an abort pointed the device back.
	Reverted bool `json:"reverted,omitempty"`
}

func (d *deviceRecord) encode() ([]byte, error) { return json.Marshal(d) }

func decodeDevice(b []byte) (*deviceRecord, error) {
	var d deviceRecord
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("rollout device record: %w", err)
	}
	return &d, nil
}
