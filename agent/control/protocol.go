package control

import (
	"encoding/json"
	"time"

	"github.com/hardphone/hardphone/agent/sip"
)

// Version is the protocol version this build speaks. A change that an
// older peer would misread increments it. Adding a command or a request
// field does not: an older agent refuses the one as an unknown command and
// the other as an unknown field (both bad_request), and clients ignore
// result fields they do not know.
const Version = 1

// Command names one request.
type Command string

// Commands. Call commands need Request.Call; CmdUpdateInstall needs
// Request.Install.
const (
	// CmdStatus answers a Status.
	CmdStatus Command = "status"
	// CmdCallAnswer, CmdCallHangup, CmdCallHold and CmdCallUnhold act on one
	// call and answer its sip.CallStatus. Answering a call while others are
	// up (call waiting) puts those on hold first.
	CmdCallAnswer Command = "call.answer"
	CmdCallHangup Command = "call.hangup"
	CmdCallHold   Command = "call.hold"
	CmdCallUnhold Command = "call.unhold"
	// CmdCallMute and CmdCallUnmute stop and resume sending the
	// microphone on one call (the call keeps sending encoded silence, so
	// the peer sees a live stream); they answer its sip.CallStatus.
	CmdCallMute   Command = "call.mute"
	CmdCallUnmute Command = "call.unmute"
	// CmdUpdateStatus answers the updater's update.Status.
	CmdUpdateStatus Command = "update.status"
	// CmdUpdateInstall installs a bundle file on the phone and answers an
	// update.InstallResult.
	CmdUpdateInstall Command = "update.install"
	// CmdUpdateMarkGood marks the booted slot good and answers the new
	// update.Status.
	CmdUpdateMarkGood Command = "update.mark-good"
	// CmdWatch streams Events until the client closes.
	CmdWatch Command = "watch"
	// CmdEventsList answers security-event journal records
	// ([]events.Record), from Request.Events.From, at most Limit.
	CmdEventsList Command = "events.list"
	// CmdEventsVerify proves the journal's hash chain and signatures and
	// answers the events.Report.
	CmdEventsVerify Command = "events.verify"
	// CmdCallDial places a call (Request.Dial) and answers its
	// sip.CallStatus once it is established or has failed.
	CmdCallDial Command = "call.dial"
	// CmdCallDTMF sends RFC 4733 digits on a call (Request.Call,
	// Request.DTMF).
	CmdCallDTMF Command = "call.dtmf"
	// CmdHistory answers the call history ([]history.Entry, newest first).
	CmdHistory Command = "history"
	// CmdContacts answers the contacts ([]history.Contact).
	CmdContacts Command = "contacts"
	// CmdCallTransfer transfers a call (Request.Call) to Request.Transfer:
	// blind to a target, or attended to another call's party (RFC 3515
	// REFER, with Replaces for attended). It answers the call's
	// sip.CallStatus once the peer accepted the REFER; the transfer's
	// progress follows as sip.EventTransfer events and in the status's
	// transfer.
	CmdCallTransfer Command = "call.transfer"
	// CmdCallSwap makes one call (Request.Call) the active one: every other
	// established call goes on hold, then this one comes off hold. It
	// answers the call's sip.CallStatus.
	CmdCallSwap Command = "call.swap"
	// CmdContactsImport imports a vCard file on the phone
	// (Request.Import.Path) and answers how many contacts it holds.
	CmdContactsImport Command = "contacts.import"
)

// Request is what a client sends.
type Request struct {
	// V is the protocol version the client speaks (Version).
	V       int     `json:"v"`
	Command Command `json:"command"`
	// Call names the call for the call commands.
	Call *CallRef `json:"call,omitempty"`
	// Install holds CmdUpdateInstall's arguments.
	Install *InstallArgs `json:"install,omitempty"`
	// Events holds CmdEventsList's arguments.
	Events *EventsArgs `json:"events,omitempty"`
	// Dial holds CmdCallDial's arguments.
	Dial *DialArgs `json:"dial,omitempty"`
	// DTMF holds CmdCallDTMF's digits (0-9, *, #, A-D).
	DTMF string `json:"dtmf,omitempty"`
	// Search and Limit filter CmdHistory and CmdContacts.
	Search string `json:"search,omitempty"`
	Limit  int    `json:"limit,omitempty"`
	// Import holds CmdContactsImport's file.
	Import *ImportArgs `json:"import,omitempty"`
	// Transfer holds CmdCallTransfer's arguments.
	Transfer *TransferArgs `json:"transfer,omitempty"`
}

// TransferArgs are CmdCallTransfer's arguments: exactly one of Target
// (blind transfer) and To (attended transfer) is set.
type TransferArgs struct {
	// Target is a number, a user at the account's domain or a SIP URI.
	Target string `json:"target,omitempty"`
	// To names our established call with the target, on the same account:
	// the transferred party replaces it (RFC 3891).
	To *CallRef `json:"to,omitempty"`
}

// DialArgs are CmdCallDial's arguments.
type DialArgs struct {
	Account string `json:"account,omitempty"`
	Target  string `json:"target"`
}

// ImportArgs name a file on the phone, by absolute path.
type ImportArgs struct {
	Path string `json:"path"`
}

// EventsArgs select journal records: from seq From (0: the oldest), at
// most Limit (0: the most the agent answers).
type EventsArgs struct {
	From  uint64 `json:"from,omitempty"`
	Limit int    `json:"limit,omitempty"`
}

// CallRef names one call on an account ("" is the first): by its Call-ID,
// which is what a user sees, or, when two dialogs share that Call-ID (a
// second INVITE with another From tag), by Dialog, the call's "dialog" in
// status and events (CALL-ID;LOCAL-TAG;REMOTE-TAG). A Call-ID alone that
// names two calls is refused as a bad request rather than guessed.
type CallRef struct {
	Account string `json:"account,omitempty"`
	CallID  string `json:"call_id"`
	Dialog  string `json:"dialog,omitempty"`
}

// InstallArgs are CmdUpdateInstall's arguments.
type InstallArgs struct {
	// Bundle is an absolute path to a regular file on the phone.
	Bundle string `json:"bundle"`
	// Force installs an image that rolled back before, or over a booted
	// slot that is not yet marked good.
	Force bool `json:"force,omitempty"`
}

// Response is what the server answers: Result on success, Error otherwise.
type Response struct {
	V      int             `json:"v"`
	Error  *Error          `json:"error,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
}

// Status is the agent-wide snapshot CmdStatus answers.
type Status struct {
	// Version is the agent's build version.
	Version  string              `json:"version,omitempty"`
	Accounts []sip.AccountStatus `json:"accounts"`
	Lockdown *LockdownStatus     `json:"lockdown,omitempty"`
	// Credentials is how secrets are protected: "tpm", "software" (with
	// Weaker set), or "none" (files, Weaker set).
	Credentials string `json:"credentials"`
	Weaker      bool   `json:"credentials_weaker,omitempty"`
	// Updater is true when the agent runs an A/B updater.
	Updater bool `json:"updater"`
	// Runtime is where the agent's own memory goes (Go's runtime/metrics).
	Runtime RuntimeStatus `json:"runtime"`
	// Fleet is the phone's standing with its fleet; nil without one.
	Fleet *FleetStatus `json:"fleet,omitempty"`
	// Provisioning is what the fleet's repositories (configuration
	// documents, firmware) told the phone; nil when it follows none.
	Provisioning *ProvisioningStatus `json:"provisioning,omitempty"`
}

// ProvisioningStatus is the phone's view of the fleet's director and
// image repositories and what it did with them.
type ProvisioningStatus struct {
	// ConfigVersion is the fleet document the agent runs over its image's
	// config (0: the image's config alone). Trial is true while that
	// document is not proven yet: TrialWatch are the accounts that must
	// register again; GoodVersion is the last proven document.
	ConfigVersion uint64   `json:"config_version"`
	Trial         bool     `json:"trial,omitempty"`
	TrialWatch    []string `json:"trial_watch,omitempty"`
	GoodVersion   uint64   `json:"good_version"`
	// RunningError says why the agent runs without the current document
	// (it does not apply to this image's config).
	RunningError string `json:"running_error,omitempty"`
	// PendingVersion is a document applied while calls were up (a
	// password rotation: its passwords are in use already) that the
	// agent starts on once they end; 0 for none.
	PendingVersion uint64 `json:"pending_version,omitempty"`
	// Reverted and Refused are the last document the phone reverted by
	// itself and the last one it refused, with why.
	Reverted *DocumentOutcome `json:"reverted,omitempty"`
	Refused  *DocumentOutcome `json:"refused,omitempty"`
	// Stale is true when trusted metadata expired (a frozen server or a
	// replay): the phone keeps its last good configuration and refuses
	// what is stale. StaleRepository and StaleRole say which expired.
	Stale           bool   `json:"stale"`
	StaleRepository string `json:"stale_repository,omitempty"`
	StaleRole       string `json:"stale_role,omitempty"`
	// DirectorTargets and ImageTargets are the trusted targets versions;
	// SignedTime the director's signed time.
	DirectorTargets int64     `json:"director_targets"`
	ImageTargets    int64     `json:"image_targets"`
	SignedTime      time.Time `json:"signed_time,omitzero"`
	// LastRefresh is when the phone last asked the repositories, and
	// LastError why the last refresh or resolve failed ("" if it did not).
	LastRefresh time.Time `json:"last_refresh,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	// Firmware is the firmware the director assigns and where it stands;
	// nil when none is assigned.
	Firmware *FirmwareStatus `json:"firmware,omitempty"`
}

// DocumentOutcome is a refused or reverted configuration document.
type DocumentOutcome struct {
	Version uint64    `json:"version"`
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
}

// Firmware states in FirmwareStatus.
const (
	FirmwareRunning   = "running"
	FirmwareInstalled = "installed"
	FirmwareWaiting   = "waiting"
	FirmwareFailed    = "failed"
	FirmwarePending   = "pending"
)

// FirmwareStatus is an assigned bundle: its target and version, and
// State: running (the booted slot has it), installed (in the other slot,
// the next boot runs it), waiting (for the maintenance window), pending
// (download and install under way or next), failed (Detail says why).
type FirmwareStatus struct {
	Target  string    `json:"target"`
	Version string    `json:"version"`
	State   string    `json:"state"`
	Detail  string    `json:"detail,omitempty"`
	At      time.Time `json:"at,omitzero"`
}

// FleetStatus is the phone's standing with the fleet server.
type FleetStatus struct {
	// Enrolled is true while the phone holds a live certificate from the
	// fleet's device CA; Detail says why not.
	Enrolled bool   `json:"enrolled"`
	Detail   string `json:"detail,omitempty"`
	DeviceID string `json:"device_id,omitempty"`
	Serial   string `json:"serial,omitempty"`
	// CertNotAfter is the certificate's expiry, RenewAt when the phone
	// renews it (two-thirds into its life).
	CertNotAfter time.Time `json:"cert_not_after,omitzero"`
	RenewAt      time.Time `json:"renew_at,omitzero"`
}

// RuntimeStatus is the Go runtime's view of the agent's memory, from
// runtime/metrics: what `hardphone status` shows for memory questions.
type RuntimeStatus struct {
	Goroutines int `json:"goroutines"`
	// HeapLiveBytes is the heap the last GC found reachable.
	HeapLiveBytes uint64 `json:"heap_live_bytes"`
	// HeapBytes is heap memory in use or cached for objects.
	HeapBytes uint64 `json:"heap_bytes"`
	// StackBytes is goroutine stack memory.
	StackBytes uint64 `json:"stack_bytes"`
	// RuntimeBytes is the runtime's own metadata (GC, spans, profiling).
	RuntimeBytes uint64 `json:"runtime_bytes"`
	// MappedBytes is all memory the Go runtime has mapped and not released
	// to the OS (an upper bound of its share of RSS; the binary's own pages
	// are not in it).
	MappedBytes uint64 `json:"mapped_bytes"`
	// AllocBytes is all the heap the agent allocated since it started;
	// GCCycles how many collections ran.
	AllocBytes uint64 `json:"alloc_bytes"`
	GCCycles   uint64 `json:"gc_cycles"`
	// CodeRelease is the agent's last release of its idle code pages (nil:
	// the agent does not release them).
	CodeRelease *CodeRelease `json:"code_release,omitempty"`
}

// CodeRelease reports how the agent gives its executable's code pages
// back to the kernel when idle (package resident).
type CodeRelease struct {
	// QuietSeconds is how long the agent waits after its last activity.
	QuietSeconds int `json:"quiet_seconds"`
	// Count is how many releases ran; Last when the last one did.
	Count int       `json:"count"`
	Last  time.Time `json:"last,omitzero"`
	// BeforeKiB and AfterKiB are the executable's read-only pages resident
	// in the agent just before and just after the last release.
	BeforeKiB int `json:"before_kib"`
	AfterKiB  int `json:"after_kib"`
	// Error is why the last release failed ("" when it did not).
	Error string `json:"error,omitempty"`
}

// LockdownStatus says which policy is enforced and how often the periodic
// check found drift.
type LockdownStatus struct {
	Policy      string `json:"policy"`
	DriftEvents uint64 `json:"drift_events"`
}

// EventHistory is the watch event sent once a call is in the call history
// (written after its call_ended, off the call path): a client showing the
// history refreshes on it.
const EventHistory sip.EventKind = "history"

// Event is one state change on the CmdWatch stream.
type Event struct {
	Time time.Time `json:"time"`
	// Kind is an account event's (sip.EventKind) or EventHistory.
	Kind    sip.EventKind `json:"kind"`
	Account string        `json:"account,omitempty"`
	CallID  string        `json:"call_id,omitempty"`
	// Dialog names the call exactly (see CallRef).
	Dialog string `json:"dialog,omitempty"`
	// Call is the call's state after the event, for call events.
	Call *sip.CallStatus `json:"call,omitempty"`
}
