package rollout

import (
	"context"
	"fmt"

	"github.com/hardphone/hardphone/fleet/store"
)

// clip bounds an operator's text.
func clip(s string) string {
	if len(s) > MaxReason {
		s = s[:MaxReason]
	}
	return s
}

// Halt stops a running rollout: no further ring starts until an operator
// resumes it.
func (e *Engine) Halt(ctx context.Context, id store.RolloutID, by Actor, reason string) (View, error) {
	rec, err := e.update(ctx, id, func(rec *record) error {
		if rec.State != StateRunning {
			return fmt.Errorf("%w: rollout %s is %s", ErrState, id, rec.State)
		}
		now := e.now()
		rec.State = StateHalted
		rec.Halt = &Halt{At: now, By: by.Name, Ring: rec.ringName(), Reason: clip(reason)}
		rec.event(now, by, "rollout.halt", clip(reason))
		return nil
	})
	if err != nil {
		return View{}, err
	}
	e.log.Info("rollout halted", "rollout", string(id), "by", by.Name, "reason", clip(reason))
	return e.viewOf(ctx, id, rec)
}

// Resume lets a halted rollout go on: the failures that halted it no
// longer count against their ring (the operator looked at them), and the
// next ring starts when the current one is otherwise done.
func (e *Engine) Resume(ctx context.Context, id store.RolloutID, by Actor, reason string) (View, error) {
	rec, _, err := e.load(ctx, id)
	if err != nil {
		return View{}, err
	}
	if rec.State != StateHalted {
		return View{}, fmt.Errorf("%w: rollout %s is %s", ErrState, id, rec.State)
	}
	if rec.Current >= 0 {
		for _, dev := range rec.Rings[rec.Current].Devices {
			_, err := e.updateDevice(ctx, id, dev, func(d *deviceRecord) error {
				if d.Status == DeviceFailed {
					d.Accepted = true
				}
				return nil
			})
			if err != nil {
				return View{}, err
			}
		}
	}
	rec, err = e.update(ctx, id, func(rec *record) error {
		if rec.State != StateHalted {
			return fmt.Errorf("%w: rollout %s is %s", ErrState, id, rec.State)
		}
		rec.State = StateRunning
		rec.event(e.now(), by, "rollout.resume", clip(reason))
		return nil
	})
	if err != nil {
		return View{}, err
	}
	e.log.Info("rollout resumed", "rollout", string(id), "by", by.Name)
	e.Step(ctx, id)
	return e.Get(ctx, id)
}

// Abort ends a rollout: the devices it moved are pointed back at what they
// had (firmware: the previous bundle; the phone's anti-rollback floor
// still rules), then it is aborted. A pending rollout is aborted at once.
func (e *Engine) Abort(ctx context.Context, id store.RolloutID, by Actor, reason string) (View, error) {
	_, err := e.update(ctx, id, func(rec *record) error {
		switch rec.State {
		case StatePending:
			rec.State = StateAborted
		case StateRunning, StateHalted:
			rec.State = StateAborting
		default:
			return fmt.Errorf("%w: rollout %s is %s", ErrState, id, rec.State)
		}
		rec.event(e.now(), by, "rollout.abort", clip(reason))
		return nil
	})
	if err != nil {
		return View{}, err
	}
	e.log.Info("rollout aborted", "rollout", string(id), "by", by.Name, "reason", clip(reason))
	e.Step(ctx, id)
	return e.Get(ctx, id)
}

func (r *record) ringName() string {
	if r.Current < 0 || r.Current >= len(r.Rings) {
		return ""
	}
	return r.Rings[r.Current].Name
}
