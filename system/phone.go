package system

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/hardphone/hardphone/agent"
	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/agent/dialplan"
	"github.com/hardphone/hardphone/agent/events"
	"github.com/hardphone/hardphone/agent/history"
	"github.com/hardphone/hardphone/agent/lockdown"
	"github.com/hardphone/hardphone/agent/provision"
	"github.com/hardphone/hardphone/agent/store"
	"github.com/hardphone/hardphone/board"
	"github.com/hardphone/hardphone/crypto/timefloor"
	"github.com/hardphone/hardphone/update"
)

// Phone is one phone being assembled from a config: its board and the parts
// opened so far. Parts open on first use and stay open until Close; a
// command asks only for what it needs.
type Phone struct {
	cfg   *config.Config
	board *board.Board // nil: no board (a desktop without updates)
	log   *slog.Logger

	state   *store.Store      // nil until State
	creds   *Credentials      // nil until Credentials; owns state when set
	updater *update.Updater   // nil until Updater
	lock    *Lockdown         // nil until Lockdown
	floor   *timefloor.Floor  // nil until TimeFloor
	events  *Events           // nil until Events
	prov    *provision.Client // nil until Provisioner
	ident   *liveIdentity     // set with prov: the identity as the fleet renews it
	fleet   *fleetDoc         // nil: no fleet document record opened
}

// Open resolves the config's board (board = NAME, or a test rig's [update]
// layout file) and opens nothing else.
func Open(cfg *config.Config, log *slog.Logger) (*Phone, error) {
	if cfg == nil {
		return nil, errors.New("system: nil config")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Phone{cfg: cfg, log: log}
	var err error
	switch {
	case cfg.Update.Layout != "":
		p.board, err = board.ReadLayout(cfg.Update.Layout)
	case cfg.Board != "":
		p.board, err = board.Lookup(cfg.Board)
	}
	if err != nil {
		return nil, fmt.Errorf("system: %w", err)
	}
	return p, nil
}

// Config is the phone's config.
func (p *Phone) Config() *config.Config { return p.cfg }

// Board is the phone's board, nil when the config names none.
func (p *Phone) Board() *board.Board { return p.board }

// State opens the state file (once).
func (p *Phone) State() (*store.Store, error) {
	if p.creds != nil {
		return p.creds.State(), nil
	}
	if p.state == nil {
		if p.cfg.StateDir == "" {
			return nil, errors.New("system: the config has no state_dir")
		}
		st, err := store.Open(p.cfg.StateDir, store.WithLogger(p.log))
		if err != nil {
			return nil, err
		}
		p.state = st
	}
	return p.state, nil
}

// Credentials opens the credential store the config names (once), in the
// state file.
func (p *Phone) Credentials() (*Credentials, error) {
	if p.creds != nil {
		return p.creds, nil
	}
	if p.cfg.CredentialStore == "" {
		return nil, ErrNoCredentialStore
	}
	st, err := p.State()
	if err != nil {
		return nil, err
	}
	c, err := openCredentialsIn(st, CredentialSpec{StateDir: p.cfg.StateDir, Protector: p.cfg.CredentialStore}, p.log)
	if err != nil {
		return nil, fmt.Errorf("credential store: %w", err)
	}
	// The credential store owns the state file from now on.
	p.creds, p.state = c, nil
	return c, nil
}

// Updater builds the A/B updater (once) with NewUpdater: the board's slots
// and environment, the state file, and the credential store's protector for
// the floor. ErrNoUpdater when the config has no [update] table.
func (p *Phone) Updater() (*update.Updater, error) {
	if p.updater != nil {
		return p.updater, nil
	}
	if p.cfg.Update.Keyring == "" {
		return nil, fmt.Errorf("config has no [update] keyring: %w", ErrNoUpdater)
	}
	floor, err := p.TimeFloor()
	if err != nil {
		return nil, err
	}
	params := UpdaterParams{Board: p.board, Keyring: p.cfg.Update.Keyring, Purpose: p.cfg.Update.Purpose, Log: p.log, Now: floor.Now}
	if p.cfg.CredentialStore != "" {
		c, err := p.Credentials()
		if err != nil {
			return nil, err
		}
		params.State, params.Protector = c.State(), c.Protector()
	} else {
		st, err := p.State()
		if err != nil {
			return nil, err
		}
		params.State = st
	}
	u, err := NewUpdater(params)
	if err != nil {
		return nil, err
	}
	p.updater = u
	return u, nil
}

// Lockdown builds the enforcer for the config's lockdown policy (once).
func (p *Phone) Lockdown() (*Lockdown, error) {
	if p.lock != nil {
		return p.lock, nil
	}
	if p.cfg.LockdownPolicy == "" {
		return nil, errors.New("system: the config names no lockdown_policy")
	}
	modprobe := lockdown.DefaultModprobeFile
	if p.board != nil {
		modprobe = p.board.ModprobeFile
	}
	l, err := OpenLockdown(LockdownSpec{Policy: p.cfg.LockdownPolicy, ModprobeFile: modprobe, PinholeOwner: true, Log: p.log})
	if err != nil {
		return nil, err
	}
	p.lock = l
	return l, nil
}

// Mode says what an agent is built for.
type Mode int

const (
	// Daemon is `hardphone run`: everything the config configures — the
	// lockdown policy applied and watched, the updater, the control socket.
	Daemon Mode = iota
	// OneShot is `hardphone call`: the accounts only. With a lockdown
	// policy it opens its call's pinholes in the table the daemon applied,
	// and changes nothing else.
	OneShot
)

// Agent builds the agent for mode with the parts its config needs, plus
// opts (event watchers). The phone keeps owning the parts: Close it after
// the agent stops.
func (p *Phone) Agent(mode Mode, version string, opts ...agent.Option) (*agent.Agent, error) {
	cfg := p.cfg
	roots, err := loadRoots(cfg.TLS.CAFile)
	if err != nil {
		return nil, err
	}
	base := []agent.Option{agent.WithRoots(roots), agent.WithVersion(version)}
	if cfg.CredentialStore != "" {
		c, err := p.Credentials()
		if err != nil {
			return nil, err
		}
		base = append(base, agent.WithCredentials(c))
	}
	if cfg.Provision.Server != "" && mode == Daemon {
		prov, err := p.Provisioner()
		if err != nil {
			return nil, err
		}
		model := cfg.Provision.Model
		switch {
		case model != "":
		case p.board != nil:
			model = p.board.Name
		default:
			model = "desktop"
		}
		base = append(base, agent.WithProvisioning(prov, model), agent.WithIdentitySource(p.ident.get))
		if cfg.Provision.Uptane() {
			repos, err := p.fleetRepos()
			if err != nil {
				return nil, err
			}
			base = append(base, agent.WithFleetRepos(repos))
		}
	} else if cfg.Provision.Server != "" {
		// A one-shot call presents what the fleet issued, if anything.
		creds, err := p.Credentials()
		if err != nil {
			return nil, err
		}
		base = append(base, agent.WithIdentitySource((&liveIdentity{creds: creds}).get))
	}
	id, _, err := p.identity()
	if err != nil {
		return nil, err
	}
	if id != nil {
		base = append(base, agent.WithIdentity(id))
	}
	// The time floor lives in the state file, which a one-shot call leaves
	// to the running agent: it checks against the build time only.
	if mode == Daemon || p.creds != nil {
		floor, err := p.TimeFloor()
		if err != nil {
			return nil, err
		}
		base = append(base, agent.WithTimeFloor(floor.Now, floor.Advance))
	} else {
		floor, err := timefloor.Open(nil, BuildTime())
		if err != nil {
			return nil, err
		}
		base = append(base, agent.WithTimeFloor(floor.Now, floor.Advance))
	}
	inst, err := instanceID(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	base = append(base, agent.WithInstanceID(inst))
	if cfg.LockdownPolicy == "" && p.board != nil && p.board.RequireLockdown {
		return nil, fmt.Errorf("board %s is a phone: it does not run without a lockdown policy, and the config names none (lockdown_policy = %q ships in its image)",
			p.board.Name, p.board.LockdownPolicy)
	}
	if cfg.LockdownPolicy != "" {
		l, err := p.Lockdown()
		if err != nil {
			return nil, err
		}
		base = append(base, agent.WithLockdown(l.Lockdown, mode == Daemon))
	}
	if mode == Daemon {
		if cfg.Update.Keyring != "" {
			u, err := p.Updater()
			if err != nil {
				return nil, fmt.Errorf("updater: %w", err)
			}
			base = append(base, agent.WithUpdater(u))
		}
		if cfg.ControlSocket != "" {
			base = append(base, agent.WithControlSocket(cfg.ControlSocket, cfg.ControlUIDs...))
		}
		if cfg.IdleCodeRelease > 0 {
			base = append(base, agent.WithCodeRelease(cfg.IdleCodeRelease))
		}
		// The dialling caps count in the state file, so a restart does not
		// reset them. (A one-shot call counts its own call only: the
		// running phone holds the state file.)
		if cfg.StateDir != "" {
			st, err := p.State()
			if err != nil {
				return nil, err
			}
			dialled, err := dialplan.OpenCounter(st.DB())
			if err != nil {
				return nil, err
			}
			base = append(base, agent.WithDialCounter(dialled))
		}
		// Call history and contacts: personal data, sealed in the
		// credential store, so only where there is one.
		var book *history.Book
		if p.creds != nil {
			book, err = history.Open(p.creds.Store)
			if err != nil {
				return nil, err
			}
			base = append(base, agent.WithHistory(book))
		}
		// Security events, where the phone can sign its journal; a fleet
		// member ships it to the fleet too (events.fleet).
		if cfg.StateDir != "" {
			ev, err := p.Events()
			if err == nil && cfg.Events.Fleet && cfg.Provision.Server != "" {
				var calls events.CallSource
				if cfg.Events.FleetCalls && book != nil {
					calls = agent.HistoryCalls(book)
				}
				prov, perr := p.Provisioner()
				if perr == nil {
					perr = ev.withFleet(prov, calls, p.log)
				}
				if perr != nil {
					return nil, perr
				}
			}
			switch {
			case err == nil:
				base = append(base, agent.WithEvents(ev.Recorder, ev.Loops()...), agent.WithEventJournal(ev))
			case errors.Is(err, ErrNoEventSigner):
				p.log.Warn("security events are not journaled: the phone has no identity key to sign them")
			default:
				return nil, err
			}
		}
	}
	if open := CallAudio(cfg.Audio, "hardphone"); open != nil {
		base = append(base, agent.WithCallAudio(agent.AudioOpener(open)))
	}
	return agent.New(cfg, p.log, append(base, opts...)...)
}

// Close closes every part opened, in reverse order of need.
func (p *Phone) Close() error {
	var errs []error
	if p.events != nil {
		errs = append(errs, p.events.Journal.Close())
		p.events = nil
	}
	if p.lock != nil {
		errs = append(errs, p.lock.Close())
		p.lock = nil
	}
	p.updater = nil // lives in the state file; nothing of its own to close
	if p.creds != nil {
		errs = append(errs, p.creds.Close())
		p.creds = nil
	}
	if p.state != nil {
		errs = append(errs, p.state.Close())
		p.state = nil
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("system: close: %w", err)
	}
	return nil
}
