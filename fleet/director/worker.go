package director

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hardphone/hardphone/fleet/store"
)

// workerBatch bounds the devices one pass of the worker takes on.
const workerBatch = 200

// Run is the background worker every replica runs until ctx ends: each
// interval it takes the devices whose state is due (a timestamp past half
// its life, targets in their last quarter, a password to rotate, a
// publication left half done) and brings them up to date. Replicas racing
// on a device resolve by compare-and-swap; one of them signs.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := s.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("director worker", "err", err)
		} else if n > 0 {
			s.log.Debug("director worker pass", "devices", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunOnce does one pass of the worker and returns how many devices it
// looked at.
func (s *Service) RunOnce(ctx context.Context) (int, error) {
	ids, err := s.st.ListProvisionDue(ctx, s.o.now(), workerBatch)
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, id := range ids {
		if err := s.Refresh(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return len(ids), errors.Join(errs...)
}

// Refresh brings one device up to date whatever is due: a new timestamp
// (and snapshot) when half the timestamp's life is gone, new targets in
// their last quarter, password rotations, a publication left half done.
func (s *Service) Refresh(ctx context.Context, id store.DeviceID) error {
	defer s.lock(id)()
	var lastErr error
	for attempt := 0; attempt < casAttempts; attempt++ {
		err := s.refreshOnce(ctx, id)
		if !errors.Is(err, store.ErrState) {
			return err
		}
		lastErr = err
		s.count("cas_retries")
	}
	return fmt.Errorf("refresh %s: lost %d races to other replicas: %w", id, casAttempts, lastErr)
}

func (s *Service) refreshOnce(ctx context.Context, id store.DeviceID) error {
	st, rev, err := s.load(ctx, id)
	if err != nil {
		return fmt.Errorf("refresh %s: %w", id, err)
	}
	if rev == 0 {
		return nil
	}
	d, err := s.st.GetDevice(ctx, id)
	if err != nil {
		return fmt.Errorf("refresh %s: %w", id, err)
	}
	if d.State != store.StateEnrolled && !st.Retired {
		// Revoked or retired under us: stop, and take its accounts off
		// the registrar.
		for _, a := range st.Accounts {
			if s.reg == nil {
				break
			}
			if err := s.reg.Remove(ctx, a.User, a.Domain); err != nil {
				return fmt.Errorf("refresh %s: %w", id, err)
			}
		}
		st.Accounts, st.Retired = nil, true
	}
	if st.Retired {
		_, err := s.save(ctx, id, st, rev)
		return err
	}
	now := s.o.now()
	rotate := false
	for _, a := range st.Accounts {
		if t, ok := s.rotationDue(a); a.Pending != nil || ok && !now.Before(t) {
			rotate = true
		}
	}
	switch {
	case st.Repo == nil || rotate:
		_, err := s.publishOnce(ctx, id, publishOpts{})
		return err
	case !now.Before(st.Repo.TargetsExpires.Add(-s.life.Targets / 4)):
		_, err := s.publishOnce(ctx, id, publishOpts{force: true})
		if err == nil {
			s.count("targets_renewed")
		}
		return err
	case !now.Before(st.Repo.TimestampExpires.Add(-s.life.Timestamp / 2)):
		repo, err := s.dir.RefreshTimestamp(st.Repo.deviceRepo(string(id)))
		if err != nil {
			return fmt.Errorf("refresh %s: %w", id, err)
		}
		files, err := filesOf(repo)
		if err != nil {
			return fmt.Errorf("refresh %s: %w", id, err)
		}
		if files.SnapshotVersion != st.Repo.SnapshotVersion {
			st.Prev = st.Repo
		}
		st.Repo = files
		if _, err := s.save(ctx, id, st, rev); err != nil {
			return err
		}
		s.count("timestamps_refreshed")
		return nil
	}
	// Nothing due after all (another replica did it): store the due time
	// this state really has.
	_, err = s.save(ctx, id, st, rev)
	return err
}
