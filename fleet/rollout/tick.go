package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hardphone/hardphone/fleet/store"
	"github.com/hardphone/hardphone/internal/weekly"
)

// Run advances every active rollout each interval until ctx ends (every
// replica runs it; the lease keeps them from advancing one rollout at
// once).
func (e *Engine) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := e.Tick(ctx); err != nil && ctx.Err() == nil {
				e.log.Warn("rollout tick", "err", err)
			}
		}
	}
}

// Tick advances every active rollout once.
func (e *Engine) Tick(ctx context.Context) error {
	rs, err := e.st.ListActiveRollouts(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range rs {
		if err := e.step(ctx, r.ID); err != nil {
			errs = append(errs, fmt.Errorf("rollout %s: %w", r.ID, err))
		}
	}
	return errors.Join(errs...)
}

// Step advances one rollout now (after an admin's action), logging what
// goes wrong: the next tick tries again.
func (e *Engine) Step(ctx context.Context, id store.RolloutID) {
	if err := e.step(ctx, id); err != nil {
		e.log.Warn("rollout step", "rollout", string(id), "err", err)
	}
}

// stepper carries one step's rollout and its stored revision.
type stepper struct {
	e   *Engine
	r   store.Rollout
	rec *record
}

func (s *stepper) commit(ctx context.Context) error {
	r, err := s.e.save(ctx, s.r, s.rec)
	if err != nil {
		return err
	}
	s.r = r
	s.e.flush(ctx, r.ID)
	// The flush stored how far the audit log got: take that revision,
	// unless someone else wrote the rollout meanwhile (then this step
	// ends and the next one starts from what they wrote).
	cur, rec, err := s.e.reload(ctx, r.ID)
	if err != nil {
		return err
	}
	if rec.Seq != s.rec.Seq || rec.State != s.rec.State {
		return fmt.Errorf("%w: rollout %s changed under the step", store.ErrState, r.ID)
	}
	s.r, s.rec.Audited = cur, rec.Audited
	return nil
}

// reload reads a rollout and its record.
func (e *Engine) reload(ctx context.Context, id store.RolloutID) (store.Rollout, *record, error) {
	rec, r, err := e.load(ctx, id)
	return r, rec, err
}

func (e *Engine) step(ctx context.Context, id store.RolloutID) error {
	rec, r, err := e.load(ctx, id)
	if err != nil {
		return err
	}
	if rec.State.Final() || rec.State == StatePending {
		return nil
	}
	now := e.now()
	if rec.LeaseHolder != "" && rec.LeaseHolder != e.replica && now.Before(rec.LeaseUntil) {
		return nil // another replica is at it
	}
	rec.LeaseHolder, rec.LeaseUntil = e.replica, now.Add(e.o.lease)
	s := &stepper{e: e, r: r, rec: rec}
	if err := s.commit(ctx); errors.Is(err, store.ErrState) {
		return nil // another replica or an admin wrote first: the next step sees it
	} else if err != nil {
		return err
	}
	switch rec.State {
	case StateRunning:
		err = e.advance(ctx, s)
	case StateHalted:
		_, err = e.judgeRing(ctx, rec)
	case StateAborting:
		err = e.revert(ctx, s)
	case StateCompleting:
		err = e.complete(ctx, s)
	}
	// Let go of the lease (whatever happened: the next step starts over).
	if _, uerr := e.updateRaw(context.WithoutCancel(ctx), id, func(rec *record) bool {
		if rec.LeaseHolder != e.replica {
			return false
		}
		rec.LeaseHolder, rec.LeaseUntil = "", time.Time{}
		return true
	}); uerr != nil && !errors.Is(uerr, store.ErrState) {
		e.log.Warn("rollout lease not released", "rollout", string(id), "err", uerr)
	}
	if errors.Is(err, store.ErrState) {
		return nil // an admin acted meanwhile
	}
	return err
}

// ringResult counts a ring's devices.
type ringResult struct {
	total, done, failed, accepted, pending int
	failures                               []Failure
}

// judgeRing updates the current ring's devices from their reports.
func (e *Engine) judgeRing(ctx context.Context, rec *record) (ringResult, error) {
	var res ringResult
	if rec.Current < 0 {
		return res, nil
	}
	id := store.RolloutID(rec.ID)
	j := judge{kind: rec.Spec.Kind, target: rec.Target, deadline: rec.Spec.Deadline, reportTimeout: rec.Spec.ReportTimeout, now: e.now()}
	for _, dev := range rec.Rings[rec.Current].Devices {
		res.total++
		cur, _, err := e.loadDevice(ctx, id, dev)
		if err != nil {
			return res, err
		}
		if cur.Released && !cur.Unchanged && strings.HasPrefix(cur.Reason, reasonPublish) {
			// Try the publication again.
			e.publish(ctx, rec, dev)
		}
		reports, err := e.st.ReportHistory(ctx, dev, store.MaxReportHistory)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return res, err
		}
		var lastSeen time.Time
		if d, err := e.st.GetDevice(ctx, dev); err == nil {
			lastSeen = d.LastSeen
		}
		d, err := e.updateDevice(ctx, id, dev, func(d *deviceRecord) error {
			if strings.HasPrefix(d.Reason, reasonPublish) {
				return nil
			}
			if d.Unchanged && d.Released {
				d.Status = DeviceDone
				return nil
			}
			j.judgeDevice(d, reports, lastSeen)
			return nil
		})
		if err != nil {
			return res, err
		}
		switch {
		case d.Status == DeviceDone:
			res.done++
		case d.Status == DeviceFailed && d.Accepted:
			res.accepted++
		case d.Status == DeviceFailed:
			res.failed++
			if len(res.failures) < maxFailuresShown {
				res.failures = append(res.failures, Failure{Device: string(dev), Reason: d.Reason})
			}
		default:
			res.pending++
		}
	}
	return res, nil
}

// advance judges the ring under way, halts the rollout when its failures
// pass the threshold, and starts the next ring when it is done (inside the
// window), until the last ring is done.
func (e *Engine) advance(ctx context.Context, s *stepper) error {
	rec := s.rec
	for {
		now := e.now()
		if rec.Current >= 0 && rec.Rings[rec.Current].DoneAt.IsZero() {
			res, err := e.judgeRing(ctx, rec)
			if err != nil {
				return err
			}
			if res.failed > 0 && res.failed*100 > rec.Spec.MaxFailurePercent*res.total {
				rg := rec.Rings[rec.Current].Name
				reason := fmt.Sprintf("ring %s: %d of %d devices failed, more than the %d%% allowed", rg, res.failed, res.total, rec.Spec.MaxFailurePercent)
				rec.State = StateHalted
				rec.Halt = &Halt{At: now, By: System.Name, Ring: rg, Reason: reason, Failures: res.failures}
				var b strings.Builder
				b.WriteString(reason)
				for _, f := range res.failures {
					fmt.Fprintf(&b, "; %s: %s", f.Device, f.Reason)
				}
				rec.event(now, System, "rollout.halt", b.String())
				e.log.Warn("rollout halted by itself", "rollout", rec.ID, "ring", rg, "failed", res.failed, "of", res.total)
				return s.commit(ctx)
			}
			if res.pending > 0 {
				return nil
			}
			rec.Rings[rec.Current].DoneAt = now
			rec.event(now, System, "rollout.ring_done", fmt.Sprintf("ring %s: %d done, %d failed (%d accepted by an operator)",
				rec.Rings[rec.Current].Name, res.done, res.failed+res.accepted, res.accepted))
			if err := s.commit(ctx); err != nil {
				return err
			}
		}
		next := rec.Current + 1
		if next == len(rec.Rings) {
			rec.State = StateCompleting
			if err := s.commit(ctx); err != nil {
				return err
			}
			return e.complete(ctx, s)
		}
		if rec.Spec.Window != "" {
			w, err := weekly.Parse(rec.Spec.Window)
			if err != nil {
				return err
			}
			if !w.Contains(now) {
				return nil // the next ring waits for the window
			}
		}
		rec.Current = next
		rec.Rings[next].StartedAt = now
		rec.event(now, System, "rollout.ring_start", fmt.Sprintf("ring %s: %d devices", rec.Rings[next].Name, len(rec.Rings[next].Devices)))
		if err := s.commit(ctx); err != nil {
			return err
		}
		e.log.Info("rollout ring started", "rollout", rec.ID, "ring", rec.Rings[next].Name, "devices", len(rec.Rings[next].Devices))
		for _, dev := range rec.Rings[next].Devices {
			_, err := e.updateDevice(ctx, store.RolloutID(rec.ID), dev, func(d *deviceRecord) error {
				if !d.Released {
					d.Released, d.ReleasedAt, d.Status = true, now, DeviceUpdating
				}
				return nil
			})
			if err != nil {
				return err
			}
			e.publish(ctx, rec, dev)
		}
	}
}

// publish asks the director to publish a released device and records
// what it published (or why it could not).
func (e *Engine) publish(ctx context.Context, rec *record, dev store.DeviceID) {
	res, perr := e.dir.Publish(ctx, dev)
	_, err := e.updateDevice(ctx, store.RolloutID(rec.ID), dev, func(d *deviceRecord) error {
		if perr != nil {
			d.Status, d.Reason = DeviceFailed, clip(reasonPublish+": "+perr.Error())
			return nil
		}
		if strings.HasPrefix(d.Reason, reasonPublish) {
			d.Status, d.Reason = DeviceUpdating, ""
		}
		d.TargetsVersion = res.TargetsVersion
		if rec.Spec.Kind == KindConfig {
			d.ConfigVersion = res.ConfigVersion
		}
		return nil
	})
	if perr != nil {
		e.log.Warn("rollout: device not published", "rollout", rec.ID, "device", string(dev), "err", perr)
	}
	if err != nil {
		e.log.Warn("rollout: device record", "rollout", rec.ID, "device", string(dev), "err", err)
	}
}

// complete writes the new assignment, the group's or the device's own
// (every device has what it says by now), and ends the rollout.
func (e *Engine) complete(ctx context.Context, s *stepper) error {
	rec := s.rec
	sc := rec.Spec.scope()
	by := "rollout " + rec.ID
	var failed []string
	switch rec.Spec.Kind {
	case KindFirmware:
		ch, err := e.dir.AssignFirmware(ctx, sc, rec.Target.Name, by)
		if err != nil {
			return fmt.Errorf("complete: assign the firmware of %s: %w", rec.Spec.target(), err)
		}
		failed = ch.Failed
	case KindConfig:
		ch, err := e.dir.SetConfig(ctx, sc, rec.Spec.Config, by)
		if err != nil {
			return fmt.Errorf("complete: set the document of %s: %w", rec.Spec.target(), err)
		}
		failed = ch.Failed
	}
	rec.State = StateCompleted
	detail := fmt.Sprintf("%s assigned the rollout's %s", rec.Spec.target(), rec.Spec.Kind)
	if len(failed) > 0 {
		detail += fmt.Sprintf("; %d device(s) outside the rollout not republished (first: %s)", len(failed), failed[0])
	}
	rec.event(e.now(), System, "rollout.complete", detail)
	e.log.Info("rollout completed", "rollout", rec.ID, "group", rec.Spec.Group)
	return s.commit(ctx)
}

// revert points every device the rollout moved back at what it had, then
// ends the rollout.
func (e *Engine) revert(ctx context.Context, s *stepper) error {
	rec := s.rec
	id := store.RolloutID(rec.ID)
	n, left := 0, 0
	for _, dev := range rec.allDevices() {
		d, _, err := e.loadDevice(ctx, id, dev)
		if err != nil {
			return err
		}
		if !d.Released {
			continue
		}
		if !d.Reverted {
			if _, err := e.updateDevice(ctx, id, dev, func(d *deviceRecord) error {
				d.Reverted, d.Status = true, DeviceReverted
				return nil
			}); err != nil {
				return err
			}
		}
		if _, err := e.dir.Publish(ctx, dev); err != nil {
			e.log.Warn("rollout abort: device not pointed back yet", "rollout", rec.ID, "device", string(dev), "err", err)
			left++
			continue
		}
		n++
	}
	if left > 0 {
		return fmt.Errorf("abort: %d device(s) not pointed back yet", left)
	}
	rec.State = StateAborted
	rec.event(e.now(), System, "rollout.aborted", fmt.Sprintf("%d device(s) pointed back at what they had", n))
	return s.commit(ctx)
}
