package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/agent/store"
	"github.com/hardphone/hardphone/crypto/credstore"
	"github.com/hardphone/hardphone/hal/ubootenv"
	"github.com/hardphone/hardphone/update"
	"github.com/hardphone/hardphone/update/bundle"
)

// FloorCounterIndex is the TPM NV index of the anti-rollback counter. The
// credential store's own wipe counter is 0x01800110.
const FloorCounterIndex = 0x01800111

// openUpdater builds the A/B updater from the [update] table. The floor is
// the TPM NV counter when the credential store is a TPM, else a value in
// the state file (status says which).
func (a *Agent) openUpdater() error {
	u := a.cfg.Update
	lf, err := update.ReadLayoutFile(u.Layout)
	if err != nil {
		return err
	}
	ucfg := lf.Config(a.cfg.StateDir)
	ecfg, err := EnvConfig(lf)
	if err != nil {
		return err
	}
	env, err := ubootenv.Open(ecfg, ubootenv.WithLogger(a.log))
	if err != nil {
		return fmt.Errorf("boot environment: %w", err)
	}
	kr, err := bundle.LoadKeyring(u.Keyring)
	if err != nil {
		return err
	}
	purpose, err := bundle.ParsePurpose(u.Purpose)
	if err != nil {
		return err
	}
	opts := []update.Option{update.WithLogger(a.log), update.WithPurpose(purpose)}
	if a.creds != nil {
		c, err := a.creds.Protector().Counter(FloorCounterIndex)
		switch {
		case err == nil:
			opts = append(opts, update.WithFloor(c, update.FloorTPM))
		case errors.Is(err, credstore.ErrNoTPM):
			// Software protector: the floor lives in the state file.
		default:
			return fmt.Errorf("anti-rollback counter: %w", err)
		}
	}
	db, err := a.stateDB()
	if err != nil {
		return err
	}
	if a.updater, err = update.New(ucfg, db, env, kr, opts...); err != nil {
		return err
	}
	return nil
}

// stateDB is the state file's database: the credential store's when there
// is one (one owner per file), else opened here.
func (a *Agent) stateDB() (*bbolt.DB, error) {
	if a.creds != nil {
		return a.creds.State().DB(), nil
	}
	if a.state == nil {
		st, err := store.Open(a.cfg.StateDir, store.WithLogger(a.log))
		if err != nil {
			return nil, err
		}
		a.state = st
	}
	return a.state.DB(), nil
}

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

// Updater returns the A/B updater, nil when the config has none.
func (a *Agent) Updater() *update.Updater { return a.updater }

// EnvConfig is a layout's boot environment block(s) for hal/ubootenv.
func EnvConfig(b *update.LayoutFile) (ubootenv.Config, error) {
	if b.Env.Path == "" {
		return ubootenv.Config{}, errors.New("board layout: no [env] path")
	}
	size := b.Env.Size
	if size == 0 {
		size = 0x4000
	}
	var off int64
	if b.Env.Offset != nil {
		off = *b.Env.Offset
	}
	ec := ubootenv.Config{Size: size, Copies: []ubootenv.Copy{{Path: b.Env.Path, Offset: off}}, LockFile: b.Env.LockFile}
	if b.Env.RedundantOffset != nil {
		p := b.Env.RedundantPath
		if p == "" {
			p = b.Env.Path
		}
		ec.Copies = append(ec.Copies, ubootenv.Copy{Path: p, Offset: *b.Env.RedundantOffset})
	}
	return ec, nil
}
