package agent

import (
	"context"
	"time"
)

// checkBoot reports what this boot is: a first boot of a new slot, or a
// rollback to the old one after the bootloader ran out of tries.
func (a *Agent) checkBoot() {
	rollback, err := a.updater.CheckBoot()
	if err != nil {
		a.log.Error("boot check", "error", err)
		return
	}
	if rollback {
		a.log.Warn("rolled back: this boot came back to the old slot", "event", "rollback")
		return
	}
	a.log.Info("boot check passed")
}

// markGoodWhenHealthy marks the booted slot good once every account has
// been registered without a break for MarkGoodAfter; only then does the
// anti-rollback floor advance.
func (a *Agent) markGoodWhenHealthy(ctx context.Context) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var since time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			healthy := true
			for _, acct := range a.accounts {
				healthy = healthy && acct.Registered()
			}
			if !healthy {
				since = time.Time{}
				continue
			}
			if since.IsZero() {
				since = now
			}
			if now.Sub(since) < a.cfg.Update.MarkGoodAfter {
				continue
			}
			if err := a.updater.MarkGood(); err != nil {
				a.log.Error("mark good", "error", err)
				return
			}
			a.log.Info("boot marked good", "healthy_for", now.Sub(since).Round(time.Millisecond))
			return
		}
	}
}
