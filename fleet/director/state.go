package director

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/hardphone/hardphone/fleet/tufrepo"
)

// stateFormat is the version of the provision record's encoding.
const stateFormat = 1

// state is a device's provisioning state (the store's Provision.Data).
type state struct {
	Format int `json:"format"`
	// Repo is the published repository, Prev the one before it (kept so
	// a phone that read the old timestamp finds the snapshot, targets
	// and document it names).
	Repo *repoFiles `json:"repo,omitempty"`
	Prev *repoFiles `json:"prev,omitempty"`
	// ConfigVersion is the published document's version (0: none yet).
	ConfigVersion uint64 `json:"config_version"`
	// Inputs is the hash of what the published targets say (document
	// and firmware): a publication that would say the same is skipped.
	Inputs string `json:"inputs,omitempty"`
	// Firmware is the published firmware target, nil for none.
	Firmware *firmware `json:"firmware,omitempty"`
	// Accounts are the registrar accounts the fleet manages.
	Accounts []*account `json:"accounts,omitempty"`
	// Reported is the document version the phone last said it runs.
	Reported uint64 `json:"reported,omitempty"`
	// Retired is set once the device left the fleet: nothing more is
	// published or refreshed.
	Retired bool `json:"retired,omitempty"`
}

type firmware struct {
	Name            string `json:"name"`
	Length          int64  `json:"length"`
	SHA256          []byte `json:"sha256"`
	Compatible      string `json:"compatible"`
	Version         string `json:"version"`
	SecurityVersion uint64 `json:"security_version"`
}

// repoFiles is a tufrepo.DeviceRepo with the expiry dates it carries.
type repoFiles struct {
	Timestamp        []byte    `json:"timestamp"`
	Snapshot         []byte    `json:"snapshot"`
	Targets          []byte    `json:"targets"`
	Config           []byte    `json:"config,omitempty"`
	TimestampVersion int64     `json:"timestamp_version"`
	SnapshotVersion  int64     `json:"snapshot_version"`
	TargetsVersion   int64     `json:"targets_version"`
	TimestampExpires time.Time `json:"timestamp_expires"`
	SnapshotExpires  time.Time `json:"snapshot_expires"`
	TargetsExpires   time.Time `json:"targets_expires"`
}

// account is one registrar account the fleet manages for the device.
type account struct {
	// Name is the [[account]]'s name; User and Domain the subscriber;
	// Credential the phone's credential-store name (bound into the seal).
	Name       string `json:"name"`
	User       string `json:"user"`
	Domain     string `json:"domain"`
	Credential string `json:"credential"`
	// Generation counts passwords made; Sealed is the current one sealed
	// for the phone, for document version SealedVersion.
	Generation    uint64 `json:"generation"`
	Sealed        string `json:"sealed,omitempty"`
	SealedVersion uint64 `json:"sealed_version,omitempty"`
	// PreviousValid: the registrar still accepts the password before the
	// current one, until the phone reports SealedVersion or later.
	PreviousValid bool      `json:"previous_valid,omitempty"`
	RotatedAt     time.Time `json:"rotated_at"`
	// Pending is a new password on its way: sealed and hashed, stored
	// before the registrar is written, promoted to current once the
	// document carrying it is published.
	Pending *pending `json:"pending,omitempty"`
}

type pending struct {
	Sealed        string `json:"sealed"`
	SealedVersion uint64 `json:"sealed_version"`
	HA1           string `json:"ha1"`
	HA1b          string `json:"ha1b"`
	KeepPrevious  bool   `json:"keep_previous,omitempty"`
}

func decodeState(b []byte) (*state, error) {
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("provisioning state: %w", err)
	}
	if st.Format != stateFormat {
		return nil, fmt.Errorf("provisioning state format %d, want %d", st.Format, stateFormat)
	}
	return &st, nil
}

func (st *state) encode() ([]byte, error) {
	st.Format = stateFormat
	return json.Marshal(st)
}

// deviceRepo converts back to what tufrepo signs from.
func (r *repoFiles) deviceRepo(id string) *tufrepo.DeviceRepo {
	if r == nil {
		return nil
	}
	return &tufrepo.DeviceRepo{DeviceID: id, Timestamp: r.Timestamp, Snapshot: r.Snapshot, Targets: r.Targets, Config: r.Config,
		TimestampVersion: r.TimestampVersion, SnapshotVersion: r.SnapshotVersion, TargetsVersion: r.TargetsVersion}
}

// filesOf reads the expiry dates of a published repository.
func filesOf(r *tufrepo.DeviceRepo) (*repoFiles, error) {
	ts, err := metadata.Timestamp().FromBytes(r.Timestamp)
	if err != nil {
		return nil, err
	}
	snap, err := metadata.Snapshot().FromBytes(r.Snapshot)
	if err != nil {
		return nil, err
	}
	tgt, err := metadata.Targets().FromBytes(r.Targets)
	if err != nil {
		return nil, err
	}
	return &repoFiles{Timestamp: r.Timestamp, Snapshot: r.Snapshot, Targets: r.Targets, Config: r.Config,
		TimestampVersion: r.TimestampVersion, SnapshotVersion: r.SnapshotVersion, TargetsVersion: r.TargetsVersion,
		TimestampExpires: ts.Signed.Expires, SnapshotExpires: snap.Signed.Expires, TargetsExpires: tgt.Signed.Expires}, nil
}
