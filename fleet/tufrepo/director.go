package tufrepo

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
)

// ConfigTargetName is the director target that carries a device's
// configuration document.
const ConfigTargetName = "config.toml"

// MaxConfigSize bounds a configuration document (the phone's bound too).
const MaxConfigSize = 1 << 20

// OnlineKeys are the director's keys hpfleet holds. Snapshot and timestamp
// must reach their thresholds alone; targets keys sign every device's
// targets, and when the director root's targets threshold is higher than
// the online keys reach, the rest comes from admins through StageDevice,
// SignStaged and PublishStaged.
type OnlineKeys struct {
	Targets, Snapshot, Timestamp []*Key
}

// Director signs per-device director repositories under one director root
// (made and rotated with Init and RotateRoot like any repository, its root
// keys offline). Each device's repository is served under
// /director/<device-id>/: the root chain (the same files for every
// device), timestamp.json, V.snapshot.json, V.targets.json and the config
// document at targets/<sha256>.config.toml. Its timestamp, snapshot and
// targets name the device (FieldDevice).
type Director struct {
	roots [][]byte
	root  *metadata.Metadata[metadata.RootType]
	keys  OnlineKeys
	life  Lifetimes
	now   func() time.Time
}

// NewDirector checks the root chain (each version signed by a threshold of
// the previous one's root keys and its own) and that the online keys are
// keys of the newest root's roles: snapshot and timestamp keys reaching
// their thresholds, at least one targets key.
func NewDirector(roots [][]byte, keys OnlineKeys, life Lifetimes, opts ...Option) (*Director, error) {
	o, err := applyOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("director: %w", err)
	}
	if life == (Lifetimes{}) {
		life = DefaultLifetimes()
	}
	if err := life.check(); err != nil {
		return nil, fmt.Errorf("director: %w", err)
	}
	if len(roots) == 0 {
		return nil, errors.New("director: no root")
	}
	tm, err := trustedmetadata.New(roots[0])
	if err != nil {
		return nil, fmt.Errorf("director: root v1: %w", err)
	}
	for i, b := range roots[1:] {
		if _, err := tm.UpdateRoot(b); err != nil {
			return nil, fmt.Errorf("director: root v%d: %w", i+2, err)
		}
	}
	d := &Director{roots: roots, root: tm.Root, keys: keys, life: life, now: o.now}
	for role, ks := range map[string][]*Key{RoleTargets: keys.Targets, RoleSnapshot: keys.Snapshot, RoleTimestamp: keys.Timestamp} {
		n := 0
		for _, k := range ks {
			if !k.Private() {
				return nil, fmt.Errorf("director: %s key %s has no private half: %w", role, k.ID(), ErrKeyFile)
			}
			if !isMember(d.root, role, k) {
				return nil, fmt.Errorf("director: %s key %s: %w", role, k.ID(), ErrNotMember)
			}
			n++
		}
		_, th, _ := roleKeys(d.root, role)
		if role != RoleTargets && n < th {
			return nil, fmt.Errorf("director: %d online %s key(s), threshold %d", n, role, th)
		}
		if role == RoleTargets && n == 0 {
			return nil, errors.New("director: no online targets key")
		}
	}
	return d, nil
}

// OpenDirector is NewDirector over the root chain and lifetimes of a
// repository directory made by Init (the director's root repository).
func OpenDirector(repoDir string, keys OnlineKeys, opts ...Option) (*Director, error) {
	r, err := Open(repoDir, opts...)
	if err != nil {
		return nil, err
	}
	roots, err := r.RootChain()
	if err != nil {
		return nil, fmt.Errorf("director: %w", err)
	}
	return NewDirector(roots, keys, r.life, opts...)
}

// Lifetimes are the director's role lifetimes (from its repository's
// repo.json): how often hpfleet must re-sign a device's timestamp.
func (d *Director) Lifetimes() Lifetimes { return d.life }

// TargetsThreshold is how many signatures a device's targets needs.
func (d *Director) TargetsThreshold() int {
	_, th, _ := roleKeys(d.root, RoleTargets)
	return th
}

// RootFiles are the root chain's files, served in every device's
// directory: "1.root.json" ... "N.root.json".
func (d *Director) RootFiles() map[string][]byte {
	m := make(map[string][]byte, len(d.roots))
	for i, b := range d.roots {
		m[fmt.Sprintf("%d.root.json", i+1)] = b
	}
	return m
}

// Assignment is what one device should have. A nil field means none.
type Assignment struct {
	// Firmware is a target of the image repository, copied as its targets
	// lists it (Repo.Targets, ParseImageTargets).
	Firmware *Firmware
	Config   *ConfigDoc
}

// ConfigDoc is a configuration document and its version (increasing per
// device; the phone reverts to the previous one on failure).
type ConfigDoc struct {
	Version uint64
	Data    []byte
}

// DeviceRepo is one device's published director metadata: exactly the
// bytes served under /director/<device-id>/ (besides the root chain).
type DeviceRepo struct {
	DeviceID string
	// Timestamp, Snapshot and Targets are the served files; Config is the
	// configuration document, nil when none is assigned.
	Timestamp, Snapshot, Targets []byte
	Config                       []byte

	TimestampVersion, SnapshotVersion, TargetsVersion int64
}

// Files are the device's files by name relative to its directory.
func (r *DeviceRepo) Files() map[string][]byte {
	m := map[string][]byte{
		"timestamp.json": r.Timestamp,
		fmt.Sprintf("%d.snapshot.json", r.SnapshotVersion): r.Snapshot,
		fmt.Sprintf("%d.targets.json", r.TargetsVersion):   r.Targets,
	}
	if r.Config != nil {
		sum := sha256.Sum256(r.Config)
		m[consistentTargetPath(ConfigTargetName, hex.EncodeToString(sum[:]))] = r.Config
	}
	return m
}

// StagedDevice is a device's next targets waiting for signatures.
type StagedDevice struct {
	DeviceID string
	// Targets is the targets metadata; signers add to it (SignStaged).
	Targets []byte
	Config  []byte
}

// Publish signs and publishes a device's assignment with the online keys
// alone: a *ThresholdError when the director's targets threshold needs
// admin signatures (use StageDevice then). prev is the device's current
// repository, nil for its first.
func (d *Director) Publish(prev *DeviceRepo, deviceID string, a Assignment) (*DeviceRepo, error) {
	s, err := d.StageDevice(prev, deviceID, a)
	if err != nil {
		return nil, err
	}
	return d.PublishStaged(prev, s)
}

// StageDevice builds the device's next targets (version prev+1) naming the
// assignment, signed by the online targets keys, for more signatures.
func (d *Director) StageDevice(prev *DeviceRepo, deviceID string, a Assignment) (*StagedDevice, error) {
	if err := CheckDeviceID(deviceID); err != nil {
		return nil, fmt.Errorf("stage device: %w", err)
	}
	if prev != nil && prev.DeviceID != deviceID {
		return nil, fmt.Errorf("stage device %s: previous repository is device %s's", deviceID, prev.DeviceID)
	}
	t := metadata.Targets(expiry(d.now(), d.life.Targets))
	if prev != nil {
		t.Signed.Version = prev.TargetsVersion + 1
	}
	setField(&t.Signed.UnrecognizedFields, FieldDevice, deviceID)
	s := &StagedDevice{DeviceID: deviceID}
	if a.Firmware != nil {
		if err := CheckTargetName(a.Firmware.Name); err != nil {
			return nil, fmt.Errorf("stage device: firmware: %w", err)
		}
		if a.Firmware.Name == ConfigTargetName {
			return nil, fmt.Errorf("stage device: firmware target named %s", ConfigTargetName)
		}
		tf, err := a.Firmware.targetFile(KindFirmware)
		if err != nil {
			return nil, fmt.Errorf("stage device: %w", err)
		}
		t.Signed.Targets[a.Firmware.Name] = tf
	}
	if a.Config != nil {
		if len(a.Config.Data) == 0 || len(a.Config.Data) > MaxConfigSize {
			return nil, fmt.Errorf("stage device: config of %d bytes: want 1..%d", len(a.Config.Data), MaxConfigSize)
		}
		c, err := json.Marshal(configCustom{Kind: KindConfig, Version: a.Config.Version})
		if err != nil {
			return nil, fmt.Errorf("stage device: %w", err)
		}
		raw := json.RawMessage(c)
		sum := sha256.Sum256(a.Config.Data)
		t.Signed.Targets[ConfigTargetName] = &metadata.TargetFiles{Length: int64(len(a.Config.Data)), Hashes: metadata.Hashes{"sha256": sum[:]}, Custom: &raw}
		s.Config = append([]byte(nil), a.Config.Data...)
	}
	var members []*Key
	for _, k := range d.keys.Targets {
		if isMember(d.root, RoleTargets, k) {
			members = append(members, k)
		}
	}
	if err := signWith(t, members); err != nil {
		return nil, fmt.Errorf("stage device: %w", err)
	}
	b, err := encode(t)
	if err != nil {
		return nil, fmt.Errorf("stage device: %w", err)
	}
	s.Targets = b
	return s, nil
}

// SignStaged adds k's signature to a staged device targets; k must be a
// targets key of the director root.
func (d *Director) SignStaged(s *StagedDevice, k *Key) error {
	if !isMember(d.root, RoleTargets, k) {
		return fmt.Errorf("sign staged device %s: %s: %w", s.DeviceID, k, ErrNotMember)
	}
	b, err := AddSignature(s.Targets, k)
	if err != nil {
		return fmt.Errorf("sign staged device %s: %w", s.DeviceID, err)
	}
	s.Targets = b
	return nil
}

// PublishStaged checks a staged targets (the device it names, its version
// after prev's, the threshold of the director root's targets keys, the
// config document against its length and hash), signs the snapshot and
// timestamp for it with the online keys, and verifies the result as the
// device will before returning it.
func (d *Director) PublishStaged(prev *DeviceRepo, s *StagedDevice) (*DeviceRepo, error) {
	t, err := metadata.Targets().FromBytes(s.Targets)
	if err != nil {
		return nil, fmt.Errorf("publish device %s: %w", s.DeviceID, err)
	}
	if got, _ := field(t.Signed.UnrecognizedFields, FieldDevice); got != s.DeviceID {
		return nil, fmt.Errorf("publish device %s: targets names device %q", s.DeviceID, got)
	}
	want := int64(1)
	if prev != nil {
		want = prev.TargetsVersion + 1
	}
	if t.Signed.Version != want {
		return nil, fmt.Errorf("publish device %s: targets version %d, want %d", s.DeviceID, t.Signed.Version, want)
	}
	if err := checkThreshold(d.root, RoleTargets, t); err != nil {
		return nil, fmt.Errorf("publish device %s: %w", s.DeviceID, err)
	}
	if tf, ok := t.Signed.Targets[ConfigTargetName]; ok {
		if s.Config == nil {
			return nil, fmt.Errorf("publish device %s: targets names a config but none is staged", s.DeviceID)
		}
		if err := tf.VerifyLengthHashes(s.Config); err != nil {
			return nil, fmt.Errorf("publish device %s: config: %w", s.DeviceID, err)
		}
	} else if s.Config != nil {
		return nil, fmt.Errorf("publish device %s: a config is staged but targets does not name it", s.DeviceID)
	}
	now := d.now()
	snap := metadata.Snapshot(expiry(now, d.life.Snapshot))
	if prev != nil {
		snap.Signed.Version = prev.SnapshotVersion + 1
	}
	snap.Signed.Meta = map[string]*metadata.MetaFiles{"targets.json": metaFile(t.Signed.Version, s.Targets)}
	setField(&snap.Signed.UnrecognizedFields, FieldDevice, s.DeviceID)
	snapBytes, err := signRole(d.root, RoleSnapshot, snap, d.keys.Snapshot)
	if err != nil {
		return nil, fmt.Errorf("publish device %s: %w", s.DeviceID, err)
	}
	prevSet := d.setOf(prev)
	ts, tsBytes, err := newTimestamp(d.root, prevSet.timestamp, snap.Signed.Version, snapBytes, now, d.life.Timestamp, s.DeviceID, d.keys.Timestamp)
	if err != nil {
		return nil, fmt.Errorf("publish device %s: %w", s.DeviceID, err)
	}
	next := &DeviceRepo{DeviceID: s.DeviceID, Timestamp: tsBytes, Snapshot: snapBytes, Targets: s.Targets, Config: s.Config,
		TimestampVersion: ts.Signed.Version, SnapshotVersion: snap.Signed.Version, TargetsVersion: t.Signed.Version}
	if err := verifyAsClient(d.setOf(next), prevSet, now, s.DeviceID); err != nil {
		return nil, fmt.Errorf("publish device %s: %w", s.DeviceID, err)
	}
	return next, nil
}

// RefreshTimestamp signs a new timestamp for a device's current snapshot:
// fresh expiry and signed time; and a new snapshot version first when the
// current one has less than half its lifetime left. hpfleet runs it for
// every device well within the timestamp lifetime, or the devices report
// stale. Targets are not renewed here (they may need admin signatures):
// publish the assignment again before TargetsExpiry.
func (d *Director) RefreshTimestamp(prev *DeviceRepo) (*DeviceRepo, error) {
	if prev == nil {
		return nil, errors.New("refresh timestamp: no repository")
	}
	p := d.setOf(prev)
	if p.timestamp == nil {
		return nil, fmt.Errorf("refresh timestamp %s: no timestamp", prev.DeviceID)
	}
	now := d.now()
	next := *prev
	old, err := metadata.Snapshot().FromBytes(prev.Snapshot)
	if err != nil {
		return nil, fmt.Errorf("refresh timestamp %s: snapshot: %w", prev.DeviceID, err)
	}
	if old.Signed.Expires.Sub(now) < d.life.Snapshot/2 {
		snap := metadata.Snapshot(expiry(now, d.life.Snapshot))
		snap.Signed.Version = old.Signed.Version + 1
		snap.Signed.Meta = old.Signed.Meta
		setField(&snap.Signed.UnrecognizedFields, FieldDevice, prev.DeviceID)
		b, err := signRole(d.root, RoleSnapshot, snap, d.keys.Snapshot)
		if err != nil {
			return nil, fmt.Errorf("refresh timestamp %s: snapshot: %w", prev.DeviceID, err)
		}
		next.Snapshot, next.SnapshotVersion = b, snap.Signed.Version
	}
	ts, b, err := newTimestamp(d.root, p.timestamp, next.SnapshotVersion, next.Snapshot, now, d.life.Timestamp, prev.DeviceID, d.keys.Timestamp)
	if err != nil {
		return nil, fmt.Errorf("refresh timestamp %s: %w", prev.DeviceID, err)
	}
	next.Timestamp, next.TimestampVersion = b, ts.Signed.Version
	if err := verifyAsClient(d.setOf(&next), p, now, prev.DeviceID); err != nil {
		return nil, fmt.Errorf("refresh timestamp %s: %w", prev.DeviceID, err)
	}
	return &next, nil
}

// TargetsExpiry is when a device's director targets expires: before then
// hpfleet publishes the assignment again (with admin signatures where the
// threshold needs them).
func TargetsExpiry(r *DeviceRepo) (time.Time, error) {
	t, err := metadata.Targets().FromBytes(r.Targets)
	if err != nil {
		return time.Time{}, fmt.Errorf("targets expiry: %w", err)
	}
	return t.Signed.Expires, nil
}

// setOf views a device repository as a set under the director's roots
// (timestamp parsed for version chaining; nil repo: empty set).
func (d *Director) setOf(r *DeviceRepo) *set {
	s := &set{roots: d.roots, root: d.root}
	if r == nil {
		return s
	}
	s.tsBytes, s.snapBytes, s.tgtBytes = r.Timestamp, r.Snapshot, r.Targets
	if ts, err := metadata.Timestamp().FromBytes(r.Timestamp); err == nil {
		s.timestamp = ts
	}
	return s
}

// WriteDeviceRepo writes a device's repository under dir/<device-id>/ for
// a static HTTP server: the root chain, the config document, targets,
// snapshot and the timestamp last, each by rename.
func WriteDeviceRepo(dir string, d *Director, r *DeviceRepo) error {
	if err := CheckDeviceID(r.DeviceID); err != nil {
		return fmt.Errorf("write device repository: %w", err)
	}
	base := filepath.Join(dir, r.DeviceID)
	if err := os.MkdirAll(filepath.Join(base, "targets"), 0o755); err != nil {
		return fmt.Errorf("write device repository: %w", err)
	}
	files := r.Files()
	order := []string{}
	for name := range d.RootFiles() {
		order = append(order, name)
	}
	for name := range files {
		if filepath.Dir(name) == "targets" {
			order = append(order, name)
		}
	}
	order = append(order, fmt.Sprintf("%d.targets.json", r.TargetsVersion), fmt.Sprintf("%d.snapshot.json", r.SnapshotVersion), "timestamp.json")
	roots := d.RootFiles()
	for _, name := range order {
		data, ok := files[name]
		if !ok {
			data = roots[name]
		}
		if err := writeAtomic(filepath.Join(base, filepath.FromSlash(name)), data, 0o644); err != nil {
			return fmt.Errorf("write device repository %s: %w", r.DeviceID, err)
		}
	}
	return nil
}

// ReadDeviceRepo reads back what WriteDeviceRepo wrote; an error wrapping
// fs.ErrNotExist when the device has none yet.
func ReadDeviceRepo(dir, deviceID string) (*DeviceRepo, error) {
	if err := CheckDeviceID(deviceID); err != nil {
		return nil, fmt.Errorf("read device repository: %w", err)
	}
	base := filepath.Join(dir, deviceID)
	if _, err := os.Stat(filepath.Join(base, "timestamp.json")); err != nil {
		return nil, fmt.Errorf("read device repository %s: %w", deviceID, err)
	}
	s, err := loadPublic(base)
	if err != nil {
		return nil, fmt.Errorf("read device repository %s: %w", deviceID, err)
	}
	if s.timestamp == nil {
		return nil, fmt.Errorf("read device repository %s: %w", deviceID, fs.ErrNotExist)
	}
	r := &DeviceRepo{DeviceID: deviceID, Timestamp: s.tsBytes, Snapshot: s.snapBytes, Targets: s.tgtBytes,
		TimestampVersion: s.timestamp.Signed.Version, SnapshotVersion: s.snapshot.Signed.Version, TargetsVersion: s.targets.Signed.Version}
	if tf, ok := s.targets.Signed.Targets[ConfigTargetName]; ok {
		name := consistentTargetPath(ConfigTargetName, hex.EncodeToString(tf.Hashes["sha256"]))
		b, err := readBounded(filepath.Join(base, filepath.FromSlash(name)), MaxConfigSize)
		if err != nil {
			return nil, fmt.Errorf("read device repository %s: %w", deviceID, err)
		}
		if err := tf.VerifyLengthHashes(b); err != nil {
			return nil, fmt.Errorf("read device repository %s: config: %w", deviceID, err)
		}
		r.Config = b
	}
	return r, nil
}
