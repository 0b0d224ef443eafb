package agent

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hardphone/hardphone/agent/control"
	"github.com/hardphone/hardphone/agent/events"
	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/update"
)

// The boot health rule. Two questions, answered separately:
//
//   - Does this slot boot and run? The agent is up (the lockdown policy
//     applied, the control socket answering a status request) and every
//     account is registered or failing only because the registrar cannot be
//     reached at the network level (sip.ErrorNetwork). After MarkGoodAfter
//     of that, the agent confirms the boot (update.ConfirmBoot): the slot's
//     attempt counter is restored, so a network outage never makes the
//     bootloader fall back, but the slot is not marked good and the floor
//     does not move.
//   - Is this slot proven? Every account has stayed registered for
//     MarkGoodAfter: the agent marks the slot good (update.MarkGood), which
//     also restores the counter, and the anti-rollback floor advances.
//
// A firmware that crashes or hangs never gets to either, and PID 1 takes a
// confirmation back when it judges the boot unhealthy later (pid1), so the
// bootloader counts the attempt and falls back. A firmware the registrar
// refuses (TLS, certificate, SIP error) is not confirmed either.

// bootHealth is one look at the accounts.
type bootHealth struct {
	// registered: every account has a live registration.
	registered bool
	// runs: every account is registered or cannot reach its registrar at
	// the network level.
	runs bool
	// reason says why the boot is where it is, for the log.
	reason string
}

// judgeBoot applies the rule above to the accounts' status.
func judgeBoot(accts []sip.AccountStatus) bootHealth {
	h := bootHealth{registered: true, runs: true}
	var unreachable, failing []string
	for _, s := range accts {
		if s.Registered {
			continue
		}
		h.registered = false
		switch {
		case s.LastError == "":
			h.runs = false
			failing = append(failing, s.Name+": first registration in progress")
		case s.ErrorClass == sip.ErrorNetwork:
			unreachable = append(unreachable, s.Name)
		default:
			h.runs = false
			failing = append(failing, fmt.Sprintf("%s: %s: %s", s.Name, s.ErrorClass, s.LastError))
		}
	}
	switch {
	case h.registered:
		h.reason = "every account registered"
	case h.runs:
		h.reason = "registrar unreachable at the network level for " + strings.Join(unreachable, ", ")
	default:
		h.reason = strings.Join(failing, "; ")
	}
	return h
}

// checkBoot reports what this boot is: a first boot of a new slot, a
// rollback to the old one after the bootloader ran out of tries, or a slot
// below the anti-rollback floor (a rollback attack), which is never
// confirmed or marked good. It reports whether the health rule may run.
func (a *Agent) checkBoot() bool {
	rollback, err := a.updater.CheckBoot()
	var bf *update.BelowFloorError
	switch {
	case errors.As(err, &bf):
		a.log.Error("rollback attack: this slot is below the anti-rollback floor and is never marked good",
			"event", "rollback_attack", "slot", bf.Slot, "security_version", bf.SecurityVersion, "floor", bf.Floor,
			"restored", bf.Restored)
		a.record(events.Event{Kind: events.KindBootBelowFloor, Detail: events.Detail{
			"slot": bf.Slot, "security_version": strconv.FormatUint(bf.SecurityVersion, 10), "floor": strconv.FormatUint(bf.Floor, 10)}})
		return false
	case err != nil:
		a.log.Error("boot check", "error", err)
		return true
	case rollback:
		a.log.Warn("rolled back: this boot came back to the old slot", "event", "rollback")
		return true
	}
	a.log.Info("boot check passed")
	return true
}

// watchBootHealth runs the boot health rule until the slot is marked good
// or ctx ends.
func (a *Agent) watchBootHealth(ctx context.Context) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var regSince, runSince time.Time
	confirmed := false
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			var accts []sip.AccountStatus
			for _, acct := range a.accounts {
				accts = append(accts, acct.Status())
			}
			h := judgeBoot(accts)
			regSince = since(regSince, h.registered, now)
			runSince = since(runSince, h.runs, now)
			if h.registered && now.Sub(regSince) >= a.cfg.Update.MarkGoodAfter {
				if err := a.updater.MarkGood(); err != nil {
					a.log.Error("mark good", "error", err)
					return
				}
				a.log.Info("boot marked good", "healthy_for", now.Sub(regSince).Round(time.Millisecond))
				return
			}
			if confirmed || !h.runs || now.Sub(runSince) < a.cfg.Update.MarkGoodAfter {
				continue
			}
			if err := a.controlAnswers(ctx); err != nil {
				a.log.Warn("boot not confirmed: the control socket does not answer", "error", err)
				continue
			}
			if err := a.updater.ConfirmBoot(); err != nil {
				a.log.Error("confirm boot", "error", err)
				if errors.Is(err, update.ErrBelowFloor) {
					return
				}
				continue
			}
			confirmed = true
			a.log.Info("boot confirmed: the slot runs; not marked good until every account registers", "reason", h.reason)
		}
	}
}

// since tracks since when a condition has held: the zero time while it
// does not.
func since(t time.Time, holds bool, now time.Time) time.Time {
	switch {
	case !holds:
		return time.Time{}
	case t.IsZero():
		return now
	}
	return t
}

// controlAnswers asks the agent's own control socket for its status, as
// PID 1 and the CLI do: the server loop is alive. Without a socket there
// is nothing to ask.
func (a *Agent) controlAnswers(ctx context.Context) error {
	if a.ctl == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := control.NewClient(a.ctl.path).Status(ctx)
	return err
}
