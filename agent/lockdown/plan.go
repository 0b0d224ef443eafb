package lockdown

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hardphone/hardphone/hal/nft"
	"github.com/hardphone/hardphone/hal/sysctl"
)

// Plan is what Apply would change, and what it cannot.
type Plan struct {
	Changes []Change `json:"changes"`
	// Cannot lists findings Apply does not fix: a process listening where
	// the policy allows nothing (the firewall already drops its traffic;
	// stopping it is the owner's call), a service init cannot control, a
	// parameter this kernel lacks.
	Cannot []Finding `json:"cannot,omitempty"`
}

// Change is one step of a plan.
type Change struct {
	Kind    string `json:"kind"` // firewall, sysctl, module, service
	Action  string `json:"action"`
	Subject string `json:"subject"`
	From    string `json:"from,omitempty"`
	To      string `json:"to,omitempty"`
	// Detail holds the firewall diff lines ("+ rule", "- rule").
	Detail []string `json:"detail,omitempty"`
}

func (c Change) String() string {
	s := fmt.Sprintf("%s: %s %s", c.Kind, c.Action, c.Subject)
	if c.From != "" || c.To != "" {
		s += fmt.Sprintf(" (%q -> %q)", c.From, c.To)
	}
	return s
}

// Empty reports whether the plan changes nothing.
func (p *Plan) Empty() bool { return len(p.Changes) == 0 }

// String renders the plan for people, one change per line.
func (p *Plan) String() string {
	var b strings.Builder
	if p.Empty() {
		b.WriteString("no changes\n")
	}
	for _, c := range p.Changes {
		b.WriteString(c.String() + "\n")
		for _, d := range c.Detail {
			b.WriteString("    " + d + "\n")
		}
	}
	for _, f := range p.Cannot {
		b.WriteString("cannot fix: " + f.String() + "\n")
	}
	return b.String()
}

// Change kinds and actions.
const (
	kindFirewall = "firewall"
	kindSysctl   = "sysctl"
	kindModule   = "module"
	kindService  = "service"
	kindListener = "listener"
	kindPinhole  = "pinhole"

	actReplace = "replace"
	actSet     = "set"
	actWrite   = "write"
	actRemove  = "remove"
	actUnload  = "unload"
	actStop    = "stop"
	actDisable = "disable"
)

// plan works out the changes that bring the observed system to policy p.
// It is a pure function of its inputs.
func plan(p *Policy, o *observation) *Plan {
	pl := &Plan{Changes: []Change{}} // [] rather than null in JSON
	add := func(c Change) { pl.Changes = append(pl.Changes, c) }
	if len(o.firewall) > 0 {
		add(Change{Kind: kindFirewall, Action: actReplace, Subject: "table inet " + nft.TableName, Detail: o.firewall})
	}
	for _, s := range o.sysctls {
		switch {
		case errors.Is(s.err, sysctl.ErrNotFound):
			pl.Cannot = append(pl.Cannot, Finding{Kind: kindSysctl, Subject: s.want.Key, Want: s.want.Value, Detail: "no such parameter on this kernel"})
		case s.err != nil:
			add(Change{Kind: kindSysctl, Action: actSet, Subject: s.want.Key, From: "(unreadable)", To: s.want.Value})
		case s.got != s.want.Value:
			add(Change{Kind: kindSysctl, Action: actSet, Subject: s.want.Key, From: s.got, To: s.want.Value})
		}
	}
	if !o.modprobe.inSync() {
		act := actWrite
		if o.modprobe.want == nil {
			act = actRemove
		}
		add(Change{Kind: kindModule, Action: act, Subject: o.modprobe.path})
	}
	if o.modprobe.path == "" && len(p.BlockModules) > 0 {
		pl.Cannot = append(pl.Cannot, Finding{Kind: kindModule, Subject: strings.Join(p.BlockModules, ","),
			Detail: "no writable modprobe.d on this board: blocks hold only until reboot"})
	}
	for _, m := range p.BlockModules {
		if o.loaded[m] {
			add(Change{Kind: kindModule, Action: actUnload, Subject: m})
		}
	}
	for i, st := range o.services {
		svc := p.Services[i]
		if st.Uncontrolled != "" && st.Installed {
			pl.Cannot = append(pl.Cannot, Finding{Kind: kindService, Subject: svc.Name, Detail: st.Uncontrolled})
			continue
		}
		if len(st.Running) > 0 {
			add(Change{Kind: kindService, Action: actStop, Subject: svc.Name, From: procList(st.Running)})
		}
		if !st.Disabled {
			add(Change{Kind: kindService, Action: actDisable, Subject: svc.Name})
		}
	}
	for _, f := range listenerFindings(p, o.sockets) {
		pl.Cannot = append(pl.Cannot, f)
	}
	return pl
}

// Plan observes the system and returns what Apply would change. It changes
// nothing.
func (l *Lockdown) Plan(ctx context.Context) (*Plan, error) {
	o, err := l.observe(ctx)
	if err != nil {
		return nil, err
	}
	return plan(l.policy, o), nil
}

// Apply brings the system to the policy and returns the plan it carried
// out; run on a system that matches, it changes nothing and returns an
// empty plan. The firewall goes first and is atomic; a failure there stops
// the rest. Later failures are collected and returned together, after every
// other change has been tried.
func (l *Lockdown) Apply(ctx context.Context) (*Plan, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	o, err := l.observe(ctx)
	if err != nil {
		return nil, err
	}
	pl := plan(l.policy, o)
	var errs []error
	for _, c := range pl.Changes {
		if err := ctx.Err(); err != nil {
			return pl, errors.Join(append(errs, err)...)
		}
		var err error
		switch c.Kind {
		case kindFirewall:
			if _, err = l.fw.Apply(l.rules); err != nil {
				return pl, fmt.Errorf("apply firewall: %w", err)
			}
		case kindSysctl:
			err = l.sys.Set(c.Subject, c.To)
		case kindModule:
			switch c.Action {
			case actUnload:
				err = unloadModule(c.Subject)
			default:
				err = writeModprobe(o.modprobe.path, o.modprobe.want)
			}
		case kindService:
			if c.Action == actStop {
				err = l.svc.Stop(c.Subject)
			} else {
				_, err = l.svc.Disable(c.Subject)
			}
		}
		if err != nil {
			l.log.Error("lockdown change failed", "change", c.String(), "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", c, err))
			continue
		}
		l.log.Info("lockdown change applied", "change", c.String())
	}
	for _, f := range pl.Cannot {
		l.log.Warn("lockdown cannot fix", "finding", f.String())
	}
	if len(errs) > 0 {
		return pl, fmt.Errorf("apply lockdown: %w", errors.Join(errs...))
	}
	return pl, nil
}
