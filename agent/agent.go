package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/agent/control"
	"github.com/hardphone/hardphone/agent/dialplan"
	"github.com/hardphone/hardphone/agent/history"
	"github.com/hardphone/hardphone/agent/lockdown"
	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/crypto/credstore"
	"github.com/hardphone/hardphone/internal/resident"
	"github.com/hardphone/hardphone/update"
)

// Agent runs every account of one config with the parts it was given.
type Agent struct {
	cfg      *config.Config
	log      *slog.Logger
	version  string
	roots    *x509.CertPool     // never nil after New
	ident    *tls.Certificate   // nil: no client certificate
	creds    Credentials        // nil: passwords from files only
	updater  *update.Updater    // nil: no updater
	lock     *lockdown.Lockdown // nil: no lockdown policy
	enforce  bool               // apply the policy at Run and watch it (the daemon); else pinholes only
	ctl      *controlConfig     // nil: no control socket
	instance string
	certTime func() time.Time                    // nil: time.Now
	timeSeen func(t time.Time, src string) error // nil: none
	// events takes security events, nil for none; eventLoops run with Run.
	events     EventRecorder
	eventLoops []func(context.Context) error
	journal    EventJournal      // nil: no journal to list
	certs      certWatch         // certificates watched for expiry (certexpiry.go)
	book       *history.Book     // nil: no call history
	audio      AudioOpener       // nil: calls carry what commands give them
	dialled    *dialplan.Counter // nil: each account counts its calls in memory
	// prov is the fleet client (nil: no fleet); model the phone's model for
	// its reports. identSource, when set, is asked for the client
	// certificate at every handshake instead of ident.
	prov        Provisioner
	model       string
	identSource func() (*tls.Certificate, error)
	started     time.Time
	times       callTimes
	accounts    []*sip.Account
	// repos follows the fleet's repositories (fleetsync.go); nil: none.
	repos *fleetSync
	// code releases idle code pages (idlecode.go); nil: never.
	code *resident.Releaser

	mu       sync.Mutex // guards watchers, subs, changed and stopRun
	watchers []func(sip.Event)
	subs     map[chan control.Event]struct{}
	// changed is set when the fleet configuration changed: Run returns
	// ErrConfigChanged. stopRun ends Run (nil outside Run).
	changed bool
	stopRun context.CancelFunc
}

// Credentials is what the agent needs of the credential store: the SIP
// passwords accounts name, and how they are protected (for status).
type Credentials interface {
	Get(name string) (credstore.Secret, error)
	Protection() credstore.Protection
}

type controlConfig struct {
	path string
	uids []uint32
}

// Option configures an Agent.
type Option func(*Agent) error

// WithRoots sets the trust anchors for the registrar's certificate
// (required).
func WithRoots(p *x509.CertPool) Option {
	return func(a *Agent) error {
		if p == nil {
			return errors.New("agent: nil trust anchors")
		}
		a.roots = p
		return nil
	}
}

// WithIdentity sets the mutual-TLS client identity; its PrivateKey is a
// crypto.Signer (a TPM key or a file key).
func WithIdentity(c *tls.Certificate) Option {
	return func(a *Agent) error {
		a.ident = c
		return nil
	}
}

// WithCredentials sets the credential store accounts' password_cred names
// are read from.
func WithCredentials(c Credentials) Option {
	return func(a *Agent) error {
		if c == nil {
			return errors.New("agent: nil credentials")
		}
		a.creds = c
		return nil
	}
}

// WithUpdater runs the A/B updater: a boot check at start, then the boot
// health rule (health.go): the boot confirmed once the agent runs locally
// healthy, mark-good once every account has stayed registered for [update]
// mark_good_after.
func WithUpdater(u *update.Updater) Option {
	return func(a *Agent) error {
		if u == nil {
			return errors.New("agent: nil updater")
		}
		a.updater = u
		return nil
	}
}

// WithLockdown hands the agent the lockdown enforcer. With enforce, Run
// applies the policy before anything listens and checks it periodically
// (the daemon); without, the agent only opens and closes its calls'
// pinholes in the table the daemon applied (a one-shot call).
func WithLockdown(l *lockdown.Lockdown, enforce bool) Option {
	return func(a *Agent) error {
		if l == nil {
			return errors.New("agent: nil lockdown")
		}
		a.lock, a.enforce = l, enforce
		return nil
	}
}

// WithControlSocket makes Run serve the control protocol at path, to root,
// the agent's own uid and uids.
func WithControlSocket(path string, uids ...uint32) Option {
	return func(a *Agent) error {
		if path == "" {
			return errors.New("agent: empty control socket path")
		}
		a.ctl = &controlConfig{path: path, uids: append([]uint32(nil), uids...)}
		return nil
	}
}

// WithInstanceID sets the RFC 5626 +sip.instance URN (required).
func WithInstanceID(urn string) Option {
	return func(a *Agent) error {
		if urn == "" {
			return errors.New("agent: empty instance id")
		}
		a.instance = urn
		return nil
	}
}

// WithTimeFloor makes every certificate check use now (the phone's time
// floor) and reports the verified registrar certificates' NotBefore to seen.
func WithTimeFloor(now func() time.Time, seen func(t time.Time, source string) error) Option {
	return func(a *Agent) error {
		if now == nil || seen == nil {
			return errors.New("agent: nil time floor")
		}
		a.certTime, a.timeSeen = now, seen
		return nil
	}
}

// WithDialCounter counts the calls every account places, for its dialling
// policy's caps, in c (the state file's, so a restart does not reset them).
func WithDialCounter(c *dialplan.Counter) Option {
	return func(a *Agent) error {
		if c == nil {
			return errors.New("agent: nil dial counter")
		}
		a.dialled = c
		return nil
	}
}

// WithVersion sets the build version status reports.
func WithVersion(v string) Option {
	return func(a *Agent) error {
		a.version = v
		return nil
	}
}

// WithEventWatcher calls f for every account event (registration, calls).
func WithEventWatcher(f func(sip.Event)) Option {
	return func(a *Agent) error {
		if f == nil {
			return errors.New("agent: nil event watcher")
		}
		a.watchers = append(a.watchers, f)
		return nil
	}
}

// New builds an agent for a validated config from the parts the options
// hand it. It opens nothing itself: the wiring (package system) owns the
// parts and closes them after the agent.
func New(cfg *config.Config, log *slog.Logger, opts ...Option) (*Agent, error) {
	if cfg == nil || log == nil {
		return nil, errors.New("agent: nil config or logger")
	}
	a := &Agent{cfg: cfg, log: log.With("component", "agent"), subs: map[chan control.Event]struct{}{}}
	for _, o := range opts {
		if err := o(a); err != nil {
			return nil, err
		}
	}
	if a.roots == nil || a.instance == "" {
		return nil, errors.New("agent: trust anchors and instance id are required")
	}
	// Media binds only inside the policy's RTP range: a config that would
	// bind elsewhere is refused here, not discovered as drift.
	if err := a.checkConfig(cfg); err != nil {
		return nil, err
	}
	// Pinholes follow calls: media reports the peer's addresses, the agent
	// tells lockdown. Media never imports lockdown. publish comes last: a
	// control client told of an event finds its effects (the call in the
	// history) already there.
	a.watchers = append([]func(sip.Event){a.pinholes, a.callSecurity, a.sipIncident, a.historyWatch, a.checkSync, a.configWhenIdle, a.publish}, a.watchers...)
	mp := sip.MediaParams{LocalIP: cfg.Media.LocalIP, PortMin: cfg.Media.PortMin, PortMax: cfg.Media.PortMax,
		InactivityTimeout: cfg.Media.InactivityTimeout, AllowPeers: slices.Clone(cfg.Media.AllowPeers)}
	if a.lock != nil {
		// The policy's media peers bound where media may go, and a network
		// it lists explicitly (127.0.0.0/8 in a lab) lifts the refusal of
		// such addresses as the config's allow_peers does.
		peers := slices.Clone(a.lock.Policy().RTP.Peers)
		mp.AllowPeers = append(mp.AllowPeers, peers...)
		mp.PeerCheck = func(ap netip.AddrPort) error {
			if !slices.ContainsFunc(peers, func(p netip.Prefix) bool { return p.Contains(ap.Addr()) }) {
				return fmt.Errorf("outside the lockdown policy's rtp.peers")
			}
			return nil
		}
	}
	// One cap for the whole phone, shared by every account.
	calls := sip.NewCallLimit(cfg.MaxCalls)
	for _, ac := range cfg.Accounts {
		pw, err := a.passwordFor(ac)
		if err != nil {
			return nil, err
		}
		acct, err := sip.NewAccount(ac, sip.AccountDeps{
			Roots: a.roots, Cert: a.ident, Password: pw, Media: mp, Instance: a.instance,
			Log: log.With("component", "sip"), Events: a.dispatch, CertTime: a.certTime, TimeSeen: a.certSeen,
			Calls: calls, ListenPeer: cfg.ListenPeer, Dialled: a.dialled, GetCert: a.identSource,
			RegistrarCert: func(c *x509.Certificate) { a.registrarCert(ac.Name, c) },
		})
		if err != nil {
			return nil, err
		}
		if a.audio != nil {
			acct.SetInbound(a.callAudio)
		}
		a.accounts = append(a.accounts, acct)
	}
	return a, nil
}

// certSeen raises the time floor to a verified registrar certificate's
// NotBefore.
func (a *Agent) certSeen(t time.Time) {
	if a.timeSeen == nil {
		return
	}
	if err := a.timeSeen(t, "registrar certificate"); err != nil {
		a.log.Warn("time floor", "error", err)
	}
}

// passwordFor returns where an account's digest password comes from.
func (a *Agent) passwordFor(ac config.Account) (func() (string, error), error) {
	if ac.PasswordCred == "" {
		return ac.Password, nil
	}
	if a.creds == nil {
		return nil, fmt.Errorf("account %s: password_cred %q needs a credential store", ac.Name, ac.PasswordCred)
	}
	return func() (string, error) {
		v, err := a.creds.Get(ac.PasswordCred)
		if err != nil {
			return "", fmt.Errorf("credential %s: %w", ac.PasswordCred, err)
		}
		return string(v), nil
	}, nil
}

func (a *Agent) dispatch(ev sip.Event) {
	a.active()
	a.mu.Lock()
	ws := append([]func(sip.Event){}, a.watchers...)
	a.mu.Unlock()
	for _, w := range ws {
		w(ev)
	}
}

// Accounts returns the accounts in config order.
func (a *Agent) Accounts() []*sip.Account { return a.accounts }

// Account returns the account named name, or the first for "".
func (a *Agent) Account(name string) (*sip.Account, error) {
	for _, acct := range a.accounts {
		if name == "" || acct.Name() == name {
			return acct, nil
		}
	}
	return nil, fmt.Errorf("no account named %q: %w", name, control.ErrNotFound)
}

// Run applies the lockdown policy (when enforcing), starts every account,
// the plain listeners and the control socket, and blocks until ctx ends. A
// policy that cannot be applied stops the start: a phone does not run
// unlocked by accident. When the fleet's configuration changes under it
// (a document applied or reverted), Run stops everything it started and
// returns ErrConfigChanged.
func (a *Agent) Run(ctx context.Context) (err error) {
	a.started = time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.mu.Lock()
	a.stopRun = cancel
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.stopRun = nil
		changed := a.changed
		a.mu.Unlock()
		// Whatever failed after the reconfiguration cancelled the run
		// (a listener refused a cancelled context) is its consequence.
		switch {
		case changed && (err == nil || errors.Is(err, context.Canceled)):
			err = ErrConfigChanged
		case changed:
			err = errors.Join(ErrConfigChanged, err)
		}
	}()
	lc := net.ListenConfig{}
	lc.SetMultipathTCP(false)
	if a.lock != nil {
		lc = a.lock.Policy().ListenConfig()
	}
	if a.lock != nil && a.enforce {
		plan, err := a.lock.Apply(ctx)
		if err != nil {
			return fmt.Errorf("lockdown: %w", err)
		}
		a.log.Info("lockdown applied", "changes", len(plan.Changes))
		// No call is up yet, so every pinhole in the kernel is a leftover of
		// an agent that died mid-call: close them.
		if _, err := a.lock.ClearPinholes(); err != nil {
			return fmt.Errorf("lockdown: %w", err)
		}
		ticker := time.NewTicker(a.cfg.LockdownCheck)
		defer ticker.Stop()
		go a.lock.Monitor(ctx, ticker.C, a.lockdownDrift)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	a.startCertWatch(ctx, &wg)
	if a.ctl != nil {
		srv, err := control.NewServer(a.handle, control.WithAllowedUIDs(a.ctl.uids...),
			control.WithSubscribe(a.subscribe), control.WithLogger(a.log), control.WithRefused(a.controlRefused))
		if err != nil {
			return err
		}
		ln, err := control.Listen(a.ctl.path)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ctx, ln); err != nil {
				a.log.Error("control socket", "error", err)
			}
		}()
	}
	for _, loop := range a.eventLoops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := loop(ctx); err != nil && ctx.Err() == nil {
				a.log.Error("security events", "error", err)
			}
		}()
	}
	if a.code != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.code.Run(ctx)
		}()
	}
	if a.updater != nil && a.checkBoot() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.watchBootHealth(ctx)
		}()
	}
	if a.repos != nil {
		a.startTrial(ctx, &wg)
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.syncLoop(ctx)
		}()
	}
	// A fleet member enrols first: its accounts present the certificate
	// the fleet issues.
	enrolled := make(chan struct{})
	if a.prov != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.runProvisioning(ctx, enrolled)
		}()
	} else {
		close(enrolled)
	}
	for _, acct := range a.accounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-enrolled:
				acct.Run(ctx)
			case <-ctx.Done():
			}
		}()
	}
	for _, l := range a.cfg.Listen {
		// Plain listeners serve the first account; they exist only for tests
		// and legacy networks and are off unless configured.
		if err := a.accounts[0].Listen(ctx, &lc, l.Network, l.Addr.String()); err != nil {
			return err
		}
		a.log.Warn("plain SIP listener enabled", "network", l.Network, "addr", l.Addr.String())
	}
	<-ctx.Done()
	return nil
}

func rtpRange(r *lockdown.RTP) string {
	if r == nil {
		return "none: no media allowed"
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}
