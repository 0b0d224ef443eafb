package tufrepo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
)

// maxRootVersions bounds the root chain a repository keeps.
const maxRootVersions = 1024

// set is one published repository state: the root chain and the top-level
// metadata with the exact bytes served. Timestamp, snapshot and targets are
// nil before the first publication.
type set struct {
	roots     [][]byte // roots[i] is version i+1
	root      *metadata.Metadata[metadata.RootType]
	timestamp *metadata.Metadata[metadata.TimestampType]
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	targets   *metadata.Metadata[metadata.TargetsType]
	tsBytes   []byte
	snapBytes []byte
	tgtBytes  []byte
}

// staging is what waits for signatures.
type staging struct {
	root    *metadata.Metadata[metadata.RootType]
	targets *metadata.Metadata[metadata.TargetsType]
}

// load reads the published set from DIR/public: every N.root.json (1..N
// without a gap), timestamp.json and the snapshot and targets it names.
func (r *Repo) load() (*set, error) {
	s, err := loadPublic(r.public())
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", r.dir, err)
	}
	return s, nil
}

func loadPublic(dir string) (*set, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var versions []int
	for _, e := range ents {
		n, ok := strings.CutSuffix(e.Name(), ".root.json")
		if !ok {
			continue
		}
		v, err := strconv.Atoi(n)
		if err != nil || v < 1 {
			return nil, fmt.Errorf("unexpected root file %s", e.Name())
		}
		versions = append(versions, v)
	}
	sort.Ints(versions)
	if len(versions) > maxRootVersions {
		return nil, fmt.Errorf("%d root versions, more than %d", len(versions), maxRootVersions)
	}
	s := &set{}
	for i, v := range versions {
		if v != i+1 {
			return nil, fmt.Errorf("root versions have a gap: %d.root.json after %d.root.json", v, i)
		}
		b, err := readBounded(filepath.Join(dir, fmt.Sprintf("%d.root.json", v)), maxMetadata)
		if err != nil {
			return nil, err
		}
		s.roots = append(s.roots, b)
	}
	if len(s.roots) == 0 {
		return s, nil
	}
	if s.root, err = metadata.Root().FromBytes(s.roots[len(s.roots)-1]); err != nil {
		return nil, fmt.Errorf("%d.root.json: %w", len(s.roots), err)
	}
	s.tsBytes, err = readBounded(filepath.Join(dir, "timestamp.json"), maxMetadata)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	if s.timestamp, err = metadata.Timestamp().FromBytes(s.tsBytes); err != nil {
		return nil, fmt.Errorf("timestamp.json: %w", err)
	}
	sm, ok := s.timestamp.Signed.Meta["snapshot.json"]
	if !ok {
		return nil, errors.New("timestamp.json names no snapshot.json")
	}
	name := fmt.Sprintf("%d.snapshot.json", sm.Version)
	if s.snapBytes, err = readBounded(filepath.Join(dir, name), maxMetadata); err != nil {
		return nil, err
	}
	if s.snapshot, err = metadata.Snapshot().FromBytes(s.snapBytes); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	tm, ok := s.snapshot.Signed.Meta["targets.json"]
	if !ok {
		return nil, fmt.Errorf("%s names no targets.json", name)
	}
	name = fmt.Sprintf("%d.targets.json", tm.Version)
	if s.tgtBytes, err = readBounded(filepath.Join(dir, name), maxMetadata); err != nil {
		return nil, err
	}
	if s.targets, err = metadata.Targets().FromBytes(s.tgtBytes); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

func (r *Repo) loadStaged() (*staging, error) {
	st := &staging{}
	b, err := readBounded(filepath.Join(r.staged(), "root.json"), maxMetadata)
	switch {
	case err == nil:
		if st.root, err = metadata.Root().FromBytes(b); err != nil {
			return nil, fmt.Errorf("staged root: %w", err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	b, err = readBounded(filepath.Join(r.staged(), "targets.json"), maxMetadata)
	switch {
	case err == nil:
		if st.targets, err = metadata.Targets().FromBytes(b); err != nil {
			return nil, fmt.Errorf("staged targets: %w", err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	return st, nil
}

// SigningKeys are the online keys Publish signs snapshot and timestamp
// with; they are needed only when those change.
type SigningKeys struct {
	Snapshot, Timestamp []*Key
}

// Published says which versions a publication wrote (0: unchanged).
type Published struct {
	Root, Targets, Snapshot, Timestamp int64
}

func (p Published) String() string {
	var parts []string
	for _, x := range []struct {
		role string
		v    int64
	}{{RoleRoot, p.Root}, {RoleTargets, p.Targets}, {RoleSnapshot, p.Snapshot}, {RoleTimestamp, p.Timestamp}} {
		if x.v != 0 {
			parts = append(parts, fmt.Sprintf("%s v%d", x.role, x.v))
		}
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// Publish makes the staged root and targets public once each has its
// threshold (a new root: a threshold of the previous root's root keys and
// of its own), signs a new snapshot when targets changed or the snapshot
// keys were rotated, and a new timestamp when the snapshot changed or the
// timestamp keys were rotated. The whole new set is verified the way a
// client verifies it (go-tuf's trustedmetadata, with the previous
// timestamp for the rollback checks) before any file is written; a
// *ThresholdError or any other failure writes nothing and keeps what is
// staged. Files are written targets, snapshot, root, timestamp last.
func (r *Repo) Publish(keys SigningKeys) (Published, error) {
	cur, err := r.load()
	if err != nil {
		return Published{}, fmt.Errorf("publish: %w", err)
	}
	stg, err := r.loadStaged()
	if err != nil {
		return Published{}, fmt.Errorf("publish: %w", err)
	}
	next, pub, err := r.plan(cur, stg, keys)
	if err != nil {
		return Published{}, fmt.Errorf("publish: %w", err)
	}
	if pub == (Published{}) {
		return pub, fmt.Errorf("publish: %w", ErrNothingStaged)
	}
	if err := verifyAsClient(next, cur, r.now(), ""); err != nil {
		return Published{}, fmt.Errorf("publish: %w", err)
	}
	if err := r.write(next, pub); err != nil {
		return Published{}, fmt.Errorf("publish: %w", err)
	}
	if pub.Root != 0 {
		if err := os.Remove(filepath.Join(r.staged(), "root.json")); err != nil {
			return pub, fmt.Errorf("publish: clear staged root: %w", err)
		}
	}
	if pub.Targets != 0 {
		if err := os.Remove(filepath.Join(r.staged(), "targets.json")); err != nil {
			return pub, fmt.Errorf("publish: clear staged targets: %w", err)
		}
	}
	return pub, nil
}

// plan builds the set Publish would write.
func (r *Repo) plan(cur *set, stg *staging, keys SigningKeys) (*set, Published, error) {
	now := r.now()
	next := *cur
	var pub Published
	if stg.root != nil {
		want := int64(len(cur.roots) + 1)
		if stg.root.Signed.Version != want {
			return nil, pub, fmt.Errorf("staged root is version %d, want %d", stg.root.Signed.Version, want)
		}
		if cur.root != nil {
			if err := checkThreshold(cur.root, RoleRoot, stg.root); err != nil {
				return nil, pub, err
			}
		}
		if err := checkThreshold(stg.root, RoleRoot, stg.root); err != nil {
			return nil, pub, err
		}
		b, err := encode(stg.root)
		if err != nil {
			return nil, pub, err
		}
		next.roots = append(slices.Clone(cur.roots), b)
		next.root = stg.root
		pub.Root = stg.root.Signed.Version
	}
	if next.root == nil {
		return nil, pub, errors.New("no root published or staged")
	}
	if next.root.Signed.IsExpired(now) {
		return nil, pub, fmt.Errorf("root v%d expired at %v", next.root.Signed.Version, next.root.Signed.Expires)
	}
	if stg.targets != nil {
		want := int64(1)
		if cur.targets != nil {
			want = cur.targets.Signed.Version + 1
		}
		if stg.targets.Signed.Version != want {
			return nil, pub, fmt.Errorf("staged targets is version %d, want %d", stg.targets.Signed.Version, want)
		}
		if err := checkThreshold(next.root, RoleTargets, stg.targets); err != nil {
			return nil, pub, err
		}
		b, err := encode(stg.targets)
		if err != nil {
			return nil, pub, err
		}
		next.targets, next.tgtBytes = stg.targets, b
		pub.Targets = stg.targets.Signed.Version
	} else if next.targets != nil && pub.Root != 0 {
		if err := checkThreshold(next.root, RoleTargets, next.targets); err != nil {
			return nil, pub, fmt.Errorf("targets v%d does not verify under the new root (renew and sign it): %w", next.targets.Signed.Version, err)
		}
	}
	if next.targets == nil {
		return nil, pub, errors.New("no targets published or staged")
	}
	if pub.Targets != 0 || next.snapshot == nil || next.root.VerifyDelegate(RoleSnapshot, next.snapshot) != nil {
		v := int64(1)
		if cur.snapshot != nil {
			v = cur.snapshot.Signed.Version + 1
		}
		snap := metadata.Snapshot(expiry(now, r.life.Snapshot))
		snap.Signed.Version = v
		snap.Signed.Meta = map[string]*metadata.MetaFiles{"targets.json": metaFile(next.targets.Signed.Version, next.tgtBytes)}
		b, err := signRole(next.root, RoleSnapshot, snap, keys.Snapshot)
		if err != nil {
			return nil, pub, err
		}
		next.snapshot, next.snapBytes = snap, b
		pub.Snapshot = v
	}
	if pub.Snapshot != 0 || next.timestamp == nil || next.root.VerifyDelegate(RoleTimestamp, next.timestamp) != nil {
		ts, b, err := newTimestamp(next.root, cur.timestamp, next.snapshot.Signed.Version, next.snapBytes, now, r.life.Timestamp, "", keys.Timestamp)
		if err != nil {
			return nil, pub, err
		}
		next.timestamp, next.tsBytes = ts, b
		pub.Timestamp = ts.Signed.Version
	}
	return &next, pub, nil
}

// signRole signs m with the given keys that root lists for role, checks
// the threshold and returns the encoded metadata.
func signRole[T metadata.Roles](root *metadata.Metadata[metadata.RootType], role string, m *metadata.Metadata[T], keys []*Key) ([]byte, error) {
	var members []*Key
	for _, k := range keys {
		if isMember(root, role, k) {
			members = append(members, k)
		}
	}
	if err := signWith(m, members); err != nil {
		return nil, err
	}
	if err := checkThreshold(root, role, m); err != nil {
		return nil, err
	}
	return encode(m)
}

// newTimestamp signs the timestamp that follows prev (version+1, or 1) for
// the given snapshot, with the signed time and, for a director, the device.
func newTimestamp(root *metadata.Metadata[metadata.RootType], prev *metadata.Metadata[metadata.TimestampType], snapVersion int64, snapBytes []byte,
	now time.Time, life time.Duration, device string, keys []*Key) (*metadata.Metadata[metadata.TimestampType], []byte, error) {
	v := int64(1)
	if prev != nil {
		v = prev.Signed.Version + 1
	}
	ts := metadata.Timestamp(expiry(now, life))
	ts.Signed.Version = v
	ts.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": metaFile(snapVersion, snapBytes)}
	setField(&ts.Signed.UnrecognizedFields, FieldSignedTime, now.UTC().Truncate(time.Second).Format(time.RFC3339))
	if device != "" {
		setField(&ts.Signed.UnrecognizedFields, FieldDevice, device)
	}
	b, err := signRole(root, RoleTimestamp, ts, keys)
	if err != nil {
		return nil, nil, err
	}
	return ts, b, nil
}

// verifyAsClient runs next through go-tuf's trusted-metadata checks the way
// a client that trusts prev's root would: the root chain from prev's
// newest root (or version 1), prev's timestamp for the rollback checks,
// then next's timestamp, snapshot (length and hashes from the timestamp)
// and targets (from the snapshot), none expired at now. device, if set,
// must be named by timestamp, snapshot and targets.
func verifyAsClient(next, prev *set, now time.Time, device string) error {
	start := 0
	if prev != nil && len(prev.roots) > 0 {
		start = len(prev.roots) - 1
	}
	tm, err := trustedmetadata.New(next.roots[start])
	if err != nil {
		return fmt.Errorf("client check: root v%d: %w", start+1, err)
	}
	tm.RefTime = now
	for i := start + 1; i < len(next.roots); i++ {
		if _, err := tm.UpdateRoot(next.roots[i]); err != nil {
			return fmt.Errorf("client check: root v%d: %w", i+1, err)
		}
	}
	if prev != nil && prev.tsBytes != nil && !bytesEqual(prev.tsBytes, next.tsBytes) {
		// The previous timestamp is only the rollback reference: it may
		// have expired or been signed by rotated keys.
		if _, err := tm.UpdateTimestamp(prev.tsBytes); err != nil &&
			!errors.Is(err, &metadata.ErrExpiredMetadata{}) && !errors.Is(err, &metadata.ErrUnsignedMetadata{}) {
			return fmt.Errorf("client check: previous timestamp: %w", err)
		}
	}
	if _, err := tm.UpdateTimestamp(next.tsBytes); err != nil {
		return fmt.Errorf("client check: timestamp: %w", err)
	}
	if _, err := tm.UpdateSnapshot(next.snapBytes, false); err != nil {
		return fmt.Errorf("client check: snapshot: %w", err)
	}
	if _, err := tm.UpdateTargets(next.tgtBytes); err != nil {
		return fmt.Errorf("client check: targets: %w", err)
	}
	if device != "" {
		for role, fields := range map[string]map[string]any{
			RoleTimestamp: tm.Timestamp.Signed.UnrecognizedFields,
			RoleSnapshot:  tm.Snapshot.Signed.UnrecognizedFields,
			RoleTargets:   tm.Targets[RoleTargets].Signed.UnrecognizedFields,
		} {
			if got, _ := field(fields, FieldDevice); got != device {
				return fmt.Errorf("client check: %s names device %q, want %q", role, got, device)
			}
		}
	}
	return nil
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }
