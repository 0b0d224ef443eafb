package lockdown

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/hardphone/hardphone/hal/nft"
	"github.com/hardphone/hardphone/hal/services"
	"github.com/hardphone/hardphone/hal/sysctl"
)

// DefaultModprobeFile is where module blocks are written unless the board
// says otherwise.
const DefaultModprobeFile = "/etc/modprobe.d/hardphone-lockdown.conf"

// Lockdown enforces and checks one policy on the running system.
//
// The agent makes one at start with New, calls Apply, then Check (or
// Monitor) periodically; OpenPinhole and ClosePinhole follow its calls.
type Lockdown struct {
	policy *Policy     // never nil, immutable
	rules  nft.Ruleset // rendered from policy
	fw     *nft.Conn
	svc    *services.Manager
	sys    *sysctl.FS
	// modprobe is the file module blocks are written to; "" when the board
	// has no writable modprobe.d.
	modprobe     string
	ownsPinholes bool
	log          *slog.Logger

	// mu guards calls and refs, and orders pinhole changes.
	mu    sync.Mutex
	calls map[string][]nft.Pinhole // call ID -> its pinholes
	refs  map[nft.Pinhole]int      // pinhole -> calls using it

	driftEvents atomic.Uint64
}

// Parts are the devices a Lockdown enforces through. The wiring (system)
// builds them: this package decides what the system must look like, not
// how a board reaches its firewall or init system.
type Parts struct {
	// Firewall is the netfilter connection (required). The caller owns it
	// and closes it after the Lockdown.
	Firewall *nft.Conn
	// Services manages the init system's services (required).
	Services *services.Manager
	// Sysctl reads and writes kernel parameters (required).
	Sysctl *sysctl.FS
}

// Option configures a Lockdown.
type Option func(*options) error

type options struct {
	log          *slog.Logger
	modprobe     string
	ownsPinholes bool
}

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("lockdown logger: nil")
		}
		o.log = l
		return nil
	}
}

// WithModprobeFile writes module blocks to path; "" means the board has no
// writable modprobe.d, so blocks are enforced by unloading only and the plan
// says they do not survive a reboot.
func WithModprobeFile(path string) Option {
	return func(o *options) error {
		if path != "" && !filepath.IsAbs(path) {
			return fmt.Errorf("modprobe file %q: want an absolute path", path)
		}
		o.modprobe = path
		return nil
	}
}

// WithPinholeOwner marks this Lockdown as the one that opens pinholes (the
// agent's): its Check reports pinholes no open call accounts for. A
// `lockdown check` from the command line cannot know the agent's calls and
// leaves pinholes alone.
func WithPinholeOwner() Option {
	return func(o *options) error {
		o.ownsPinholes = true
		return nil
	}
}

// New prepares enforcement of p in the caller's network namespace through
// parts. It changes nothing; Apply does.
func New(p *Policy, parts Parts, opts ...Option) (*Lockdown, error) {
	if p == nil {
		return nil, errors.New("lockdown: nil policy")
	}
	if parts.Firewall == nil || parts.Services == nil || parts.Sysctl == nil {
		return nil, errors.New("lockdown: firewall, services and sysctl parts are required")
	}
	o := options{log: slog.New(slog.DiscardHandler), modprobe: DefaultModprobeFile}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	rules, err := ruleset(p)
	if err != nil {
		return nil, err
	}
	return &Lockdown{
		policy: p, rules: rules, fw: parts.Firewall, svc: parts.Services, sys: parts.Sysctl,
		modprobe: o.modprobe, ownsPinholes: o.ownsPinholes, log: o.log.With("component", "lockdown"),
		calls: map[string][]nft.Pinhole{}, refs: map[nft.Pinhole]int{},
	}, nil
}

// Policy returns the policy being enforced.
func (l *Lockdown) Policy() *Policy { return l.policy }

// DriftEvents counts the checks run by Monitor that found drift.
func (l *Lockdown) DriftEvents() uint64 { return l.driftEvents.Load() }

// ruleset renders the firewall part of a policy for hal/nft.
func ruleset(p *Policy) (nft.Ruleset, error) {
	proto := func(pr Proto) nft.Proto {
		if pr == UDP {
			return nft.UDP
		}
		return nft.TCP
	}
	rs := nft.Ruleset{
		AcceptLoopback: p.Loopback == LoopbackOpen,
		FilterOutput:   p.Outbound == OutboundRestrict,
	}
	for _, ln := range p.Listeners {
		for _, n := range ln.From {
			rs.In = append(rs.In, nft.Allow{Proto: proto(ln.Proto), Port: ln.Port, Net: n, Label: ln.Name})
		}
	}
	for _, d := range p.Destinations {
		for _, n := range d.To {
			rs.Out = append(rs.Out, nft.Allow{Proto: proto(d.Proto), Port: d.Port, Net: n, Label: d.Name})
		}
	}
	if p.RTP != nil {
		rs.RTP = nft.PortRange{First: p.RTP.First, Last: p.RTP.Last}
	}
	if _, err := rs.Describe(); err != nil {
		return rs, fmt.Errorf("lockdown firewall rules: %w", err)
	}
	return rs, nil
}

// observation is the state of the system that plans and reports are made
// from.
type observation struct {
	firewall    []string // nft diff lines; empty when the table matches
	otherTables []string
	pinholes    []nft.Pinhole // read under Lockdown.mu, by Check only
	sockets     []Socket
	services    []services.Status
	sysctls     []sysctlObs
	loaded      map[string]bool
	modprobe    modprobeObs
}

type sysctlObs struct {
	want Sysctl
	got  string
	err  error // sysctl.ErrNotFound, or failure to read
}

type modprobeObs struct {
	path    string // "" when not persisted
	want    []byte // nil: the file should not exist
	got     []byte
	present bool
}

func (l *Lockdown) observe(ctx context.Context) (*observation, error) {
	o := &observation{}
	var err error
	if o.firewall, err = l.fw.Diff(l.rules); err != nil {
		return nil, fmt.Errorf("observe firewall: %w", err)
	}
	if o.otherTables, err = l.fw.OtherTables(); err != nil {
		return nil, fmt.Errorf("observe firewall: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if o.sockets, err = listeningSockets(); err != nil {
		return nil, fmt.Errorf("observe listeners: %w", err)
	}
	for _, s := range l.policy.Services {
		st, err := l.svc.Status(s.Name, s.Processes)
		if err != nil {
			return nil, fmt.Errorf("observe services: %w", err)
		}
		o.services = append(o.services, st)
	}
	for _, s := range l.policy.Sysctls {
		got, err := l.sys.Get(s.Key)
		o.sysctls = append(o.sysctls, sysctlObs{want: s, got: got, err: err})
	}
	if len(l.policy.BlockModules) > 0 {
		mods, err := loadedModules()
		if err != nil {
			return nil, fmt.Errorf("observe modules: %w", err)
		}
		o.loaded = map[string]bool{}
		for _, m := range mods {
			o.loaded[m] = true
		}
	}
	if o.modprobe, err = l.observeModprobe(); err != nil {
		return nil, err
	}
	return o, ctx.Err()
}

// observePinholes lists the live pinholes; l.mu must be held.
func (l *Lockdown) observePinholes() ([]nft.Pinhole, error) {
	if l.rules.RTP.IsZero() {
		return nil, nil
	}
	ps, err := l.fw.Pinholes()
	if err != nil && !errors.Is(err, nft.ErrNoTable) {
		return nil, fmt.Errorf("observe pinholes: %w", err)
	}
	return ps, nil
}
