package uptane

import (
	"fmt"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	bolt "go.etcd.io/bbolt"
)

// The trusted sets in the state file:
//
//	uptane/                 bucket owned by this package
//	  image/                one sub-bucket per repository
//	    root       the newest trusted root's bytes
//	    timestamp  snapshot  targets   (absent before the first refresh)
//	  director/
//	    ...
//
// A refresh writes every key of each repository it changes in one
// transaction (commit); nothing else writes these buckets.
var (
	bucketUptane = []byte("uptane")
	keyRoot      = []byte("root")
	keyTimestamp = []byte("timestamp")
	keySnapshot  = []byte("snapshot")
	keyTargets   = []byte("targets")
)

// stored is one repository's trusted set as bytes; only root is set before
// the first successful refresh.
type stored struct {
	root, timestamp, snapshot, targets []byte
}

func (s *stored) complete() bool {
	return s.timestamp != nil && s.snapshot != nil && s.targets != nil
}

// view is a stored set parsed for Status and Resolve. The bytes were
// verified before they were committed and again when loaded.
type view struct {
	raw       stored
	root      *metadata.Metadata[metadata.RootType]
	timestamp *metadata.Metadata[metadata.TimestampType]
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	targets   *metadata.Metadata[metadata.TargetsType]
	// rootSwapped is set when root is a pinned root newer than the stored
	// one: the next refresh verifies everything under it and commits it.
	rootSwapped bool
}

// readStored reads a repository's set; nil when the state file has none.
func readStored(db *bolt.DB, repo string) (*stored, error) {
	var s *stored
	err := db.View(func(tx *bolt.Tx) error {
		top := tx.Bucket(bucketUptane)
		if top == nil {
			return nil
		}
		b := top.Bucket([]byte(repo))
		if b == nil {
			return nil
		}
		get := func(k []byte) []byte {
			v := b.Get(k)
			if v == nil {
				return nil
			}
			return append([]byte(nil), v...)
		}
		s = &stored{root: get(keyRoot), timestamp: get(keyTimestamp), snapshot: get(keySnapshot), targets: get(keyTargets)}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s metadata: %w", repo, err)
	}
	if s != nil && s.root == nil {
		return nil, fmt.Errorf("%s metadata: %w: no root", repo, ErrState)
	}
	return s, nil
}

// commit writes each repository's new set in one transaction: all of
// them or, if bbolt fails or the process dies, none.
func commit(db *bolt.DB, sets map[string]*stored) error {
	if len(sets) == 0 {
		return nil
	}
	return db.Update(func(tx *bolt.Tx) error {
		top, err := tx.CreateBucketIfNotExists(bucketUptane)
		if err != nil {
			return err
		}
		for repo, s := range sets {
			b, err := top.CreateBucketIfNotExists([]byte(repo))
			if err != nil {
				return err
			}
			for _, kv := range []struct {
				k, v []byte
			}{{keyRoot, s.root}, {keyTimestamp, s.timestamp}, {keySnapshot, s.snapshot}, {keyTargets, s.targets}} {
				if kv.v == nil {
					if err := b.Delete(kv.k); err != nil {
						return err
					}
					continue
				}
				if err := b.Put(kv.k, kv.v); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// parseView parses and checks a stored set without the expiry checks (a
// stored set may have expired since): the root signs itself with its
// threshold; the timestamp, snapshot and targets have their thresholds
// under it and chain by version, length and hashes. A set that fails is a
// damaged or planted state file (ErrState).
func parseView(s *stored) (*view, error) {
	v := &view{raw: *s}
	var err error
	if v.root, err = metadata.Root().FromBytes(s.root); err != nil {
		return nil, fmt.Errorf("%w: root: %v", ErrState, err)
	}
	if err := v.root.VerifyDelegate(metadata.ROOT, v.root); err != nil {
		return nil, fmt.Errorf("%w: root v%d: %v", ErrState, v.root.Signed.Version, err)
	}
	if s.timestamp == nil && s.snapshot == nil && s.targets == nil {
		return v, nil
	}
	if !s.complete() {
		return nil, fmt.Errorf("%w: timestamp, snapshot and targets not all present", ErrState)
	}
	if v.timestamp, err = metadata.Timestamp().FromBytes(s.timestamp); err != nil {
		return nil, fmt.Errorf("%w: timestamp: %v", ErrState, err)
	}
	if err := v.root.VerifyDelegate(metadata.TIMESTAMP, v.timestamp); err != nil {
		return nil, fmt.Errorf("%w: timestamp: %v", ErrState, err)
	}
	sm, ok := v.timestamp.Signed.Meta["snapshot.json"]
	if !ok {
		return nil, fmt.Errorf("%w: timestamp names no snapshot", ErrState)
	}
	if err := sm.VerifyLengthHashes(s.snapshot); err != nil {
		return nil, fmt.Errorf("%w: snapshot: %v", ErrState, err)
	}
	if v.snapshot, err = metadata.Snapshot().FromBytes(s.snapshot); err != nil {
		return nil, fmt.Errorf("%w: snapshot: %v", ErrState, err)
	}
	if err := v.root.VerifyDelegate(metadata.SNAPSHOT, v.snapshot); err != nil {
		return nil, fmt.Errorf("%w: snapshot: %v", ErrState, err)
	}
	if v.snapshot.Signed.Version != sm.Version {
		return nil, fmt.Errorf("%w: snapshot v%d, timestamp names v%d", ErrState, v.snapshot.Signed.Version, sm.Version)
	}
	tmeta, ok := v.snapshot.Signed.Meta["targets.json"]
	if !ok {
		return nil, fmt.Errorf("%w: snapshot names no targets", ErrState)
	}
	if err := tmeta.VerifyLengthHashes(s.targets); err != nil {
		return nil, fmt.Errorf("%w: targets: %v", ErrState, err)
	}
	if v.targets, err = metadata.Targets().FromBytes(s.targets); err != nil {
		return nil, fmt.Errorf("%w: targets: %v", ErrState, err)
	}
	if err := v.root.VerifyDelegate(metadata.TARGETS, v.targets); err != nil {
		return nil, fmt.Errorf("%w: targets: %v", ErrState, err)
	}
	if v.targets.Signed.Version != tmeta.Version {
		return nil, fmt.Errorf("%w: targets v%d, snapshot names v%d", ErrState, v.targets.Signed.Version, tmeta.Version)
	}
	return v, nil
}

// expiredRole is the first role of the view that expired at now, in the
// order the TUF client checks them; "" when all are fresh. A view without
// timestamp, snapshot and targets reports "timestamp": it has nothing
// fresh to use.
func (v *view) expiredRole(now time.Time) string {
	switch {
	case v.root.Signed.IsExpired(now):
		return metadata.ROOT
	case v.timestamp == nil || v.snapshot == nil || v.targets == nil || v.timestamp.Signed.IsExpired(now):
		return metadata.TIMESTAMP
	case v.snapshot.Signed.IsExpired(now):
		return metadata.SNAPSHOT
	case v.targets.Signed.IsExpired(now):
		return metadata.TARGETS
	}
	return ""
}
