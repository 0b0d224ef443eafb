package tufrepo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// write puts what a publication changed under DIR/public, each file by
// rename: targets, then snapshot, then root, and the timestamp last, so a
// client that reads the new timestamp finds everything it names.
func (r *Repo) write(next *set, pub Published) error {
	files := []struct {
		changed int64
		name    string
		data    []byte
	}{
		{pub.Targets, fmt.Sprintf("%d.targets.json", pub.Targets), next.tgtBytes},
		{pub.Snapshot, fmt.Sprintf("%d.snapshot.json", pub.Snapshot), next.snapBytes},
		{pub.Root, fmt.Sprintf("%d.root.json", pub.Root), lastRoot(next)},
		{pub.Timestamp, "timestamp.json", next.tsBytes},
	}
	for _, f := range files {
		if f.changed == 0 {
			continue
		}
		if err := writeAtomic(filepath.Join(r.public(), f.name), f.data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func lastRoot(s *set) []byte {
	if len(s.roots) == 0 {
		return nil
	}
	return s.roots[len(s.roots)-1]
}

// Timestamp signs a new timestamp for the published snapshot: a new
// version, a fresh expiry and signed time. With snapshot keys it first
// signs a new snapshot version (same targets, fresh expiry), which must
// happen more often than the snapshot lifetime. Run it more often than the
// timestamp lifetime, or clients report the repository stale.
func (r *Repo) Timestamp(keys SigningKeys) (Published, error) {
	cur, err := r.load()
	if err != nil {
		return Published{}, fmt.Errorf("timestamp: %w", err)
	}
	if cur.snapshot == nil || cur.root == nil {
		return Published{}, errors.New("timestamp: nothing published yet")
	}
	now := r.now()
	next := *cur
	var pub Published
	if len(keys.Snapshot) > 0 {
		snap := metadata.Snapshot(expiry(now, r.life.Snapshot))
		snap.Signed.Version = cur.snapshot.Signed.Version + 1
		snap.Signed.Meta = cur.snapshot.Signed.Meta
		b, err := signRole(cur.root, RoleSnapshot, snap, keys.Snapshot)
		if err != nil {
			return Published{}, fmt.Errorf("timestamp: snapshot: %w", err)
		}
		next.snapshot, next.snapBytes, pub.Snapshot = snap, b, snap.Signed.Version
	}
	ts, b, err := newTimestamp(cur.root, cur.timestamp, next.snapshot.Signed.Version, next.snapBytes, now, r.life.Timestamp, "", keys.Timestamp)
	if err != nil {
		return Published{}, fmt.Errorf("timestamp: %w", err)
	}
	next.timestamp, next.tsBytes, pub.Timestamp = ts, b, ts.Signed.Version
	if err := verifyAsClient(&next, cur, now, ""); err != nil {
		return Published{}, fmt.Errorf("timestamp: %w", err)
	}
	if err := r.write(&next, pub); err != nil {
		return Published{}, fmt.Errorf("timestamp: %w", err)
	}
	return pub, nil
}

// editTargets returns the staged targets to change: the staged one if
// there is one, else a copy of the published one with the next version.
// Its signatures are cleared, since they were over other content, and its
// expiry renewed.
func (r *Repo) editTargets(cur *set, stg *staging) *metadata.Metadata[metadata.TargetsType] {
	t := stg.targets
	if t == nil {
		t = metadata.Targets()
		if cur.targets != nil {
			c := *cur.targets
			c.Signed.Targets = map[string]*metadata.TargetFiles{}
			for k, v := range cur.targets.Signed.Targets {
				c.Signed.Targets[k] = v
			}
			c.Signed.Version = cur.targets.Signed.Version + 1
			t = &c
		}
	}
	t.Signed.Expires = expiry(r.now(), r.life.Targets)
	t.ClearSignatures()
	return t
}

// editRoot is editTargets for root.
func (r *Repo) editRoot(cur *set, stg *staging) (*metadata.Metadata[metadata.RootType], error) {
	if stg.root != nil {
		stg.root.Signed.Expires = expiry(r.now(), r.life.Root)
		stg.root.ClearSignatures()
		return stg.root, nil
	}
	if cur.root == nil {
		return nil, errors.New("no root published yet")
	}
	// A deep copy through the encoding: roles and keys are maps of
	// pointers.
	b, err := encode(cur.root)
	if err != nil {
		return nil, err
	}
	c, err := metadata.Root().FromBytes(b)
	if err != nil {
		return nil, err
	}
	c.Signed.Version++
	c.Signed.Expires = expiry(r.now(), r.life.Root)
	c.ClearSignatures()
	return c, nil
}

// signingRoot is the root whose role keys sign staged targets: the staged
// root when a rotation is pending, else the published one.
func signingRoot(cur *set, stg *staging) *metadata.Metadata[metadata.RootType] {
	if stg.root != nil {
		return stg.root
	}
	return cur.root
}

// stageTargets signs t with the keys the signing root lists for targets
// and stages it.
func (r *Repo) stageTargets(cur *set, stg *staging, t *metadata.Metadata[metadata.TargetsType], signers []*Key) error {
	root := signingRoot(cur, stg)
	if root == nil {
		return errors.New("no root")
	}
	for _, k := range signers {
		if !isMember(root, RoleTargets, k) {
			return fmt.Errorf("%s for targets: %w", k, ErrNotMember)
		}
	}
	if err := signWith(t, signers); err != nil {
		return err
	}
	return writeStaged(r, RoleTargets, t)
}

// Sign adds k's signature to the staged role (root or targets): the step
// each holder of a threshold key runs. A root signature counts if k is a
// root key of the published root or of the staged one (a rotation needs
// both); a targets signature if k is a targets key of the root it will be
// published under.
func (r *Repo) Sign(role string, k *Key) error {
	cur, err := r.load()
	if err != nil {
		return fmt.Errorf("sign %s: %w", role, err)
	}
	stg, err := r.loadStaged()
	if err != nil {
		return fmt.Errorf("sign %s: %w", role, err)
	}
	switch role {
	case RoleRoot:
		if stg.root == nil {
			return fmt.Errorf("sign root: %w (rotate-root or renew first)", ErrNothingStaged)
		}
		if !isMember(stg.root, RoleRoot, k) && (cur.root == nil || !isMember(cur.root, RoleRoot, k)) {
			return fmt.Errorf("sign root: %s: %w", k, ErrNotMember)
		}
		if err := signWith(stg.root, []*Key{k}); err != nil {
			return fmt.Errorf("sign root: %w", err)
		}
		return writeStaged(r, RoleRoot, stg.root)
	case RoleTargets:
		if stg.targets == nil {
			return fmt.Errorf("sign targets: %w (add a target or renew first)", ErrNothingStaged)
		}
		if !isMember(signingRoot(cur, stg), RoleTargets, k) {
			return fmt.Errorf("sign targets: %s: %w", k, ErrNotMember)
		}
		if err := signWith(stg.targets, []*Key{k}); err != nil {
			return fmt.Errorf("sign targets: %w", err)
		}
		return writeStaged(r, RoleTargets, stg.targets)
	}
	return fmt.Errorf("sign %q: %w: want root or targets (snapshot and timestamp are signed when published)", role, errRole)
}

// Renew stages the next version of a published role (root or targets)
// with the same content and a fresh expiry, signed by the given keys:
// what offline keys do before the role expires.
func (r *Repo) Renew(role string, signers []*Key) error {
	cur, err := r.load()
	if err != nil {
		return fmt.Errorf("renew %s: %w", role, err)
	}
	stg, err := r.loadStaged()
	if err != nil {
		return fmt.Errorf("renew %s: %w", role, err)
	}
	switch role {
	case RoleTargets:
		if err := r.stageTargets(cur, stg, r.editTargets(cur, stg), signers); err != nil {
			return fmt.Errorf("renew targets: %w", err)
		}
		return nil
	case RoleRoot:
		root, err := r.editRoot(cur, stg)
		if err != nil {
			return fmt.Errorf("renew root: %w", err)
		}
		return r.stageRoot(cur, root, signers)
	}
	return fmt.Errorf("renew %q: %w: want root or targets", role, errRole)
}

func (r *Repo) stageRoot(cur *set, root *metadata.Metadata[metadata.RootType], signers []*Key) error {
	for _, k := range signers {
		if !isMember(root, RoleRoot, k) && (cur.root == nil || !isMember(cur.root, RoleRoot, k)) {
			return fmt.Errorf("stage root: %s: %w", k, ErrNotMember)
		}
	}
	if err := signWith(root, signers); err != nil {
		return fmt.Errorf("stage root: %w", err)
	}
	return writeStaged(r, RoleRoot, root)
}

// Rotation replaces role keys in a new root version; a nil role keeps its
// keys.
type Rotation struct {
	Root, Targets, Snapshot, Timestamp *RoleKeys
}

// RotateRoot stages the next root version with the keys rot changes,
// signed by every signer that is a root key of the current root or of the
// new one. Publish accepts it once it has a threshold of both (TUF §5.3.4:
// a client checks the new root against the old root's keys and its own).
// When snapshot or timestamp keys change, Publish re-signs them with the
// new keys; when targets keys change, the targets role must be renewed
// and signed by the new keys in the same publication.
func (r *Repo) RotateRoot(rot Rotation, signers []*Key) error {
	cur, err := r.load()
	if err != nil {
		return fmt.Errorf("rotate root: %w", err)
	}
	stg, err := r.loadStaged()
	if err != nil {
		return fmt.Errorf("rotate root: %w", err)
	}
	root, err := r.editRoot(cur, stg)
	if err != nil {
		return fmt.Errorf("rotate root: %w", err)
	}
	roles := map[string]RoleKeys{}
	for name, rk := range map[string]*RoleKeys{RoleRoot: rot.Root, RoleTargets: rot.Targets, RoleSnapshot: rot.Snapshot, RoleTimestamp: rot.Timestamp} {
		if rk == nil {
			continue
		}
		if err := rk.check(name); err != nil {
			return fmt.Errorf("rotate root: %w", err)
		}
		roles[name] = *rk
	}
	if len(roles) == 0 {
		return errors.New("rotate root: no role keys change")
	}
	setRoles(root, roles)
	return r.stageRoot(cur, root, signers)
}

// Discard drops what is staged for role (root or targets).
func (r *Repo) Discard(role string) error {
	if role != RoleRoot && role != RoleTargets {
		return fmt.Errorf("discard %q: %w", role, errRole)
	}
	err := os.Remove(filepath.Join(r.staged(), role+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("discard %s: %w", role, ErrNothingStaged)
	}
	return err
}
