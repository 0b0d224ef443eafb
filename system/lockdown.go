package system

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/hardphone/hardphone/agent/lockdown"
	"github.com/hardphone/hardphone/hal/nft"
	"github.com/hardphone/hardphone/hal/services"
	"github.com/hardphone/hardphone/hal/sysctl"
)

// LockdownSpec says which policy to enforce and where.
type LockdownSpec struct {
	// Policy is the policy file.
	Policy string
	// InitRoot is the root filesystem whose services are managed ("" = /).
	InitRoot string
	// ModprobeFile receives module blocks ("" = the board has no writable
	// modprobe.d).
	ModprobeFile string
	// PinholeOwner: this enforcer opens the call pinholes (the agent's),
	// so its check reports pinholes no call accounts for.
	PinholeOwner bool
	Log          *slog.Logger // nil: discard
}

// Lockdown is an enforcer with the firewall connection it owns.
type Lockdown struct {
	*lockdown.Lockdown
	fw *nft.Conn
}

// Close releases the firewall connection. Rules and pinholes stay in the
// kernel: the phone stays locked down.
func (l *Lockdown) Close() error { return l.fw.Close() }

// OpenLockdown loads and validates the policy before anything is opened
// (verify, then commit), then builds the firewall, services and sysctl
// parts and the enforcer over them. It changes nothing on the system.
func OpenLockdown(spec LockdownSpec) (*Lockdown, error) {
	log := spec.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pol, err := lockdown.Load(spec.Policy)
	if err != nil {
		return nil, err
	}
	var svcOpts []services.Option
	svcOpts = append(svcOpts, services.WithLogger(log.With("component", "lockdown")))
	if spec.InitRoot != "" && spec.InitRoot != "/" {
		svcOpts = append(svcOpts, services.WithRoot(spec.InitRoot))
	}
	svc, err := services.New(svcOpts...)
	if err != nil {
		return nil, fmt.Errorf("lockdown services: %w", err)
	}
	sys, err := sysctl.New()
	if err != nil {
		return nil, fmt.Errorf("lockdown sysctls: %w", err)
	}
	fw, err := nft.Open()
	if err != nil {
		return nil, fmt.Errorf("lockdown firewall: %w", err)
	}
	opts := []lockdown.Option{lockdown.WithLogger(log), lockdown.WithModprobeFile(spec.ModprobeFile)}
	if spec.PinholeOwner {
		opts = append(opts, lockdown.WithPinholeOwner())
	}
	l, err := lockdown.New(pol, lockdown.Parts{Firewall: fw, Services: svc, Sysctl: sys}, opts...)
	if err != nil {
		return nil, errors.Join(err, fw.Close())
	}
	return &Lockdown{Lockdown: l, fw: fw}, nil
}

// DefaultModprobeFile is where module blocks go unless the board says
// otherwise.
const DefaultModprobeFile = lockdown.DefaultModprobeFile

// LockdownPlan is what apply changes or would change.
type LockdownPlan = lockdown.Plan

// ErrLockdownDrift: a check found the system off its policy (exit 3).
var ErrLockdownDrift = lockdown.ErrDrift
