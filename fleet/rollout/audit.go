package rollout

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"time"

	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/store"
)

// auditTimeout bounds the appends of one flush, also when the request
// that caused them is gone.
const auditTimeout = 10 * time.Second

// updateRaw applies fn by compare-and-swap without flushing (fn returns
// false: nothing to write).
func (e *Engine) updateRaw(ctx context.Context, id store.RolloutID, fn func(*record) bool) (*record, error) {
	for attempt := 0; ; attempt++ {
		rec, r, err := e.load(ctx, id)
		if err != nil {
			return nil, err
		}
		if !fn(rec) {
			return rec, nil
		}
		_, err = e.save(ctx, r, rec)
		if errors.Is(err, store.ErrState) && attempt < casAttempts {
			continue
		}
		return rec, err
	}
}

// entry is a transition as the audit log records it.
func (r *record) entry(ev Event) audit.Entry {
	e := audit.Entry{Time: ev.At, Action: audit.Action(ev.Action), Target: "rollout " + r.ID, Outcome: audit.OutcomeSuccess,
		Actor:   audit.Actor{Kind: audit.ActorAdmin, ID: ev.Actor},
		Details: map[string]string{"rollout": r.ID, "group": r.Spec.Group, "kind": string(r.Spec.Kind), "seq": strconv.FormatInt(ev.Seq, 10)}}
	if ev.Actor == System.Name {
		e.Actor = audit.Actor{Kind: audit.ActorSystem, ID: "rollout"}
	}
	if ev.Outcome != "" {
		e.Outcome = audit.Outcome(ev.Outcome)
	}
	if a, err := netip.ParseAddr(ev.Source); err == nil {
		e.Source = a
	}
	if ev.Detail != "" {
		e.Details["detail"] = ev.Detail
	}
	switch {
	case r.Target != nil:
		e.Details["firmware"] = r.Target.Name
		e.Details["version"] = r.Target.Version
	case r.ConfigSHA256 != "":
		e.Details["config_sha256"] = r.ConfigSHA256
	}
	if ev.Action == "rollout.start" {
		for _, a := range r.Approvals {
			ref := "approved-by:" + a.Admin
			if a.KeyID != "" {
				ref += ":key:" + a.KeyID[:16]
			}
			e.Approvals = append(e.Approvals, ref)
		}
	}
	return e
}

// flush appends the rollout's transitions not yet in the audit log, in
// order, and records how far it got. An append that fails is retried at
// the next flush (a transition is recorded at least once; its seq detail
// tells repeats apart).
func (e *Engine) flush(ctx context.Context, id store.RolloutID) {
	e.flushMu.Lock()
	defer e.flushMu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	rec, _, err := e.load(ctx, id)
	if err != nil {
		e.log.Error("audit flush: load", "rollout", string(id), "err", err)
		return
	}
	last := rec.Audited
	for _, ev := range rec.History {
		if ev.Seq <= last {
			continue
		}
		if _, err := e.audit.Append(ctx, rec.entry(ev)); err != nil {
			e.log.Error("audit entry not written", "rollout", string(id), "action", ev.Action, "err", err)
			break
		}
		last = ev.Seq
	}
	if last == rec.Audited {
		return
	}
	if _, err := e.updateRaw(ctx, id, func(rec *record) bool {
		if rec.Audited >= last {
			return false
		}
		rec.Audited = last
		return true
	}); err != nil {
		e.log.Warn("audit flush: position not stored", "rollout", string(id), "err", err)
	}
}
