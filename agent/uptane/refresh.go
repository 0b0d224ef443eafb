package uptane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
)

// Hard caps on downloads whose length no signed metadata gives (the root
// chain and the timestamp), and on lengths metadata may claim.
const (
	MaxRootSize      = 512 << 10
	MaxTimestampSize = 16 << 10
	MaxSnapshotSize  = 2 << 20
	MaxTargetsSize   = 8 << 20
	// MaxRootRotations bounds the root versions one refresh walks
	// (go-tuf's updater uses the same default).
	MaxRootRotations = 32
)

// repo is one repository the client follows.
type repo struct {
	name    string
	pinned  []byte
	fetcher Fetcher
	// device is the device ID director metadata must name; "" for the
	// image repository.
	device string
}

// result is what refreshing one repository found.
type result struct {
	// next is the new trusted set to commit; nil when nothing changed.
	next *stored
	// fetched counts the bytes downloaded.
	fetched int64
}

// refresh runs the TUF client workflow (specification §5.3 to §5.6) for
// one repository against its trusted set cur (its root alone before the
// first refresh), entirely in memory. It returns the set to commit when
// anything changed; an error leaves nothing to commit.
func (r *repo) refresh(ctx context.Context, cur *view, now time.Time) (result, error) {
	var res result
	base := &cur.raw
	fetch := func(name string, max int64) ([]byte, error) {
		b, err := r.fetcher.Fetch(ctx, name, max)
		if err != nil {
			return nil, err
		}
		// The fetcher is the phone's, but its bound is checked here too.
		if int64(len(b)) > max {
			return nil, fmt.Errorf("fetch %s: %d bytes, want at most %d: %w", name, len(b), max, ErrTooLarge)
		}
		res.fetched += int64(len(b))
		return b, nil
	}

	// §5.3: every newer root. They are verified below, in order, before
	// anything else is.
	var roots [][]byte
	for i := 0; i < MaxRootRotations; i++ {
		v := cur.root.Signed.Version + 1 + int64(i)
		b, err := fetch(fmt.Sprintf("%d.root.json", v), MaxRootSize)
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil {
			return res, err
		}
		roots = append(roots, b)
	}
	tsb, err := fetch("timestamp.json", MaxTimestampSize)
	if err != nil {
		return res, err
	}
	// The poll that finds nothing new: no new root, and the very
	// timestamp already trusted. Those bytes were verified before they
	// were committed (and again when loaded); only time has passed.
	if len(roots) == 0 && !cur.rootSwapped && cur.timestamp != nil && bytes.Equal(tsb, base.timestamp) {
		if role := cur.expiredRole(now); role != "" {
			return res, &ExpiredError{Repository: r.name, Role: role}
		}
		return res, nil
	}

	tm, err := trustedmetadata.New(base.root)
	if err != nil {
		return res, fmt.Errorf("trusted root: %w", refused(err))
	}
	tm.RefTime = now
	next := stored{root: base.root, timestamp: base.timestamp, snapshot: base.snapshot, targets: base.targets}
	// A newer pinned root is committed with the first set verified under
	// it.
	changed := cur.rootSwapped
	// Each newer root is signed by a threshold of the previous root's keys
	// and of its own, its version exactly one more.
	for _, b := range roots {
		v := tm.Root.Signed.Version + 1
		if _, err := tm.UpdateRoot(b); err != nil {
			return res, fmt.Errorf("root v%d: %w", v, refused(err))
		}
		next.root, changed = b, true
	}

	// §5.4: the timestamp. The trusted one (if it still verifies under the
	// newest root: rotated timestamp keys drop it, §5.3.11) is only the
	// rollback reference for the new one.
	if base.timestamp != nil {
		if _, err := tm.UpdateTimestamp(base.timestamp); err != nil && !errors.Is(err, &metadata.ErrExpiredMetadata{}) {
			if !changed {
				// Same root as when it was committed: the state is
				// damaged.
				return res, fmt.Errorf("trusted timestamp: %w", errors.Join(ErrState, err))
			}
		}
	}
	if tm.Root.Signed.IsExpired(now) {
		return res, &ExpiredError{Repository: r.name, Role: metadata.ROOT}
	}
	tsChanged := true
	if _, err := tm.UpdateTimestamp(tsb); err != nil {
		switch {
		case errors.Is(err, &metadata.ErrEqualVersionNumber{}):
			// Unchanged: keep the trusted one, which must still be fresh.
			tsChanged = false
			if tm.Timestamp.Signed.IsExpired(now) {
				return res, &ExpiredError{Repository: r.name, Role: metadata.TIMESTAMP}
			}
		case errors.Is(err, &metadata.ErrExpiredMetadata{}):
			return res, &ExpiredError{Repository: r.name, Role: metadata.TIMESTAMP}
		default:
			return res, fmt.Errorf("timestamp: %w", refused(err))
		}
	}
	if tsChanged {
		next.timestamp, changed = tsb, true
		if err := r.checkTimestamp(tm.Timestamp); err != nil {
			return res, err
		}
	}

	// §5.5: the snapshot the timestamp names, by its length and hashes.
	// The trusted one, if it verifies, is the reference no role version
	// may fall below; it is kept when it is exactly the one named.
	sm, ok := tm.Timestamp.Signed.Meta["snapshot.json"]
	if !ok {
		return res, fmt.Errorf("timestamp names no snapshot.json: %w", ErrRefused)
	}
	snapOK := false
	if base.snapshot != nil {
		_, err := tm.UpdateSnapshot(base.snapshot, true)
		snapOK = err == nil && sm.VerifyLengthHashes(base.snapshot) == nil
	}
	if !snapOK {
		n, err := boundedLength(sm.Length, MaxSnapshotSize, "snapshot")
		if err != nil {
			return res, err
		}
		name := "snapshot.json"
		if tm.Root.Signed.ConsistentSnapshot {
			name = fmt.Sprintf("%d.snapshot.json", sm.Version)
		}
		b, err := fetch(name, n)
		if err != nil {
			return res, err
		}
		if _, err := tm.UpdateSnapshot(b, false); err != nil {
			if errors.Is(err, &metadata.ErrExpiredMetadata{}) {
				return res, &ExpiredError{Repository: r.name, Role: metadata.SNAPSHOT}
			}
			return res, fmt.Errorf("snapshot: %w", refused(err))
		}
		next.snapshot, changed = b, true
	}
	if err := r.checkDevice(metadata.SNAPSHOT, tm.Snapshot.Signed.UnrecognizedFields); err != nil {
		return res, err
	}

	// §5.6: the top-level targets the snapshot names. Delegations are
	// not followed: every target this client uses is in top-level
	// targets.
	tmeta, ok := tm.Snapshot.Signed.Meta["targets.json"]
	if !ok {
		return res, fmt.Errorf("snapshot names no targets.json: %w", ErrRefused)
	}
	targetsOK := false
	if base.targets != nil {
		_, err := tm.UpdateTargets(base.targets)
		targetsOK = err == nil
		if errors.Is(err, &metadata.ErrExpiredMetadata{}) && tmeta.VerifyLengthHashes(base.targets) == nil && tmeta.Hashes != nil {
			// The very file named has expired: fetching it again
			// cannot help.
			return res, &ExpiredError{Repository: r.name, Role: metadata.TARGETS}
		}
	}
	if !targetsOK {
		n, err := boundedLength(tmeta.Length, MaxTargetsSize, "targets")
		if err != nil {
			return res, err
		}
		name := "targets.json"
		if tm.Root.Signed.ConsistentSnapshot {
			name = fmt.Sprintf("%d.targets.json", tmeta.Version)
		}
		b, err := fetch(name, n)
		if err != nil {
			return res, err
		}
		if _, err := tm.UpdateTargets(b); err != nil {
			if errors.Is(err, &metadata.ErrExpiredMetadata{}) {
				return res, &ExpiredError{Repository: r.name, Role: metadata.TARGETS}
			}
			return res, fmt.Errorf("targets: %w", refused(err))
		}
		next.targets, changed = b, true
	}
	if err := r.checkDevice(metadata.TARGETS, tm.Targets[metadata.TARGETS].Signed.UnrecognizedFields); err != nil {
		return res, err
	}
	if changed {
		res.next = &next
	}
	return res, nil
}

// checkTimestamp applies this package's rules to a newly verified
// timestamp: director timestamps name this device and carry signed time,
// and signed time (where present) is not after the expiry it was signed
// with.
func (r *repo) checkTimestamp(ts *metadata.Metadata[metadata.TimestampType]) error {
	if err := r.checkDevice(metadata.TIMESTAMP, ts.Signed.UnrecognizedFields); err != nil {
		return err
	}
	st, ok, err := parseSignedTime(ts.Signed.UnrecognizedFields)
	if err != nil {
		return fmt.Errorf("timestamp: %w: %w", ErrRefused, err)
	}
	if !ok && r.device != "" {
		return fmt.Errorf("director timestamp: %w: %w: none", ErrRefused, errSignedTim)
	}
	if ok && st.After(ts.Signed.Expires) {
		return fmt.Errorf("timestamp: %w: %w: signed at %v, after its expiry %v", ErrRefused, errSignedTim, st, ts.Signed.Expires)
	}
	return nil
}

// checkDevice: director metadata must name this device.
func (r *repo) checkDevice(role string, fields map[string]any) error {
	if r.device == "" {
		return nil
	}
	got, _ := fields[fieldDevice].(string)
	if got != r.device {
		return fmt.Errorf("director %s names device %q, this is %q: %w", role, got, r.device, ErrWrongDevice)
	}
	return nil
}

// boundedLength is the download bound for a file whose metadata gives
// length (0: none given): the length itself, refused above the hard cap.
func boundedLength(length, hardCap int64, what string) (int64, error) {
	switch {
	case length == 0:
		return hardCap, nil
	case length < 0 || length > hardCap:
		return 0, fmt.Errorf("%s length %d, want 1..%d: %w", what, length, hardCap, ErrTooLarge)
	}
	return length, nil
}

// refused marks a go-tuf verification failure.
func refused(err error) error {
	return fmt.Errorf("%w: %w", ErrRefused, err)
}
