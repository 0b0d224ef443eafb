package lockdown

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hardphone/hardphone/hal/nft"
	"github.com/hardphone/hardphone/hal/services"
	"github.com/hardphone/hardphone/hal/sysctl"
)

// Report is the result of a check: the running system against the policy.
type Report struct {
	Time time.Time `json:"time"`
	// OK is true when Drift is empty.
	OK    bool      `json:"ok"`
	Drift []Finding `json:"drift"`
	// Listeners are every listening socket seen, allowed or not.
	Listeners []Socket `json:"listeners"`
	// Services is the state of each service the policy denies.
	Services []services.Status `json:"services,omitempty"`
	// OtherTables are the nftables tables that are not ours; they are
	// never changed and cannot open what our table drops.
	OtherTables []string `json:"other_tables,omitempty"`
	// Pinholes are the open RTP pinholes.
	Pinholes []string `json:"pinholes,omitempty"`
	// Notes are things the check could not decide.
	Notes []string `json:"notes,omitempty"`
}

// Finding is one way the system differs from the policy.
type Finding struct {
	Kind    string `json:"kind"` // listener, service, sysctl, module, firewall, pinhole
	Subject string `json:"subject"`
	Want    string `json:"want,omitempty"`
	Got     string `json:"got,omitempty"`
	// Process and PID name the owner of a listener or service, when known.
	Process string `json:"process,omitempty"`
	PID     int    `json:"pid,omitempty"`
	// Exe is the owner's executable name when it differs from Process
	// (a BusyBox applet, a process that renamed itself).
	Exe    string `json:"exe,omitempty"`
	Detail string `json:"detail,omitempty"`
}

func (f Finding) String() string {
	s := f.Kind + " " + f.Subject
	if f.Process != "" {
		s += fmt.Sprintf(" by %s[%d]", f.Process, f.PID)
	}
	if f.Exe != "" {
		s += fmt.Sprintf(" (executable %s)", f.Exe)
	}
	if f.Want != "" || f.Got != "" {
		s += fmt.Sprintf(": want %q, got %q", f.Want, f.Got)
	}
	if f.Detail != "" {
		s += ": " + f.Detail
	}
	return s
}

// Err returns a *DriftError when the report found drift, else nil.
func (r *Report) Err() error {
	if r.OK {
		return nil
	}
	return &DriftError{Report: r}
}

func procList(ps []services.Process) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = fmt.Sprintf("%s[%d]", p.Comm, p.PID)
	}
	return strings.Join(parts, ",")
}

// listenerFindings returns the listening sockets the policy does not allow,
// or that the wrong process owns.
func listenerFindings(p *Policy, socks []Socket) []Finding {
	var out []Finding
	for _, s := range socks {
		subject := fmt.Sprintf("%s %s", s.Proto, s.Addr)
		owner := Owner{Comm: "unknown"}
		if len(s.Owners) > 0 {
			owner = s.Owners[0]
		}
		exe := owner.Exe
		if exe == owner.Comm {
			exe = ""
		}
		want, ok := p.allowsListen(s.Proto, s.Addr.Port())
		switch {
		case !ok:
			out = append(out, Finding{Kind: kindListener, Subject: subject, Process: owner.Comm, PID: owner.PID, Exe: exe,
				Detail: fmt.Sprintf("port %d is not allowed by the policy", s.Addr.Port())})
		case want != "" && (len(s.Owners) == 0 || !slices.ContainsFunc(s.Owners, func(o Owner) bool { return o.matches(want) })):
			out = append(out, Finding{Kind: kindListener, Subject: subject, Process: owner.Comm, PID: owner.PID, Exe: exe,
				Want: want, Got: owner.Comm, Detail: "owned by a process the policy does not name"})
		}
	}
	return out
}

// report compares the observed system with policy p. It is a pure function
// of its inputs; calls is the agent's pinholes by call, or nil when this
// Lockdown does not own them.
func report(p *Policy, o *observation, calls map[string][]nft.Pinhole, now time.Time) *Report {
	// Empty lists rather than null in JSON.
	r := &Report{Time: now, Drift: []Finding{}, Listeners: append([]Socket{}, o.sockets...), Services: o.services, OtherTables: o.otherTables}
	add := func(f Finding) { r.Drift = append(r.Drift, f) }
	for _, d := range o.firewall {
		add(Finding{Kind: kindFirewall, Subject: "table inet " + nft.TableName, Detail: d})
	}
	for _, f := range listenerFindings(p, o.sockets) {
		add(f)
	}
	for i, st := range o.services {
		svc := p.Services[i]
		for _, pr := range st.Running {
			add(Finding{Kind: kindService, Subject: svc.Name, Want: "stopped", Got: "running", Process: pr.Comm, PID: pr.PID})
		}
		if !st.Disabled {
			add(Finding{Kind: kindService, Subject: svc.Name, Want: "disabled", Got: "enabled", Detail: st.Uncontrolled})
		}
	}
	for _, s := range o.sysctls {
		switch {
		case s.err != nil && isNotFound(s.err):
			r.Notes = append(r.Notes, fmt.Sprintf("sysctl %s: no such parameter on this kernel", s.want.Key))
		case s.err != nil:
			add(Finding{Kind: kindSysctl, Subject: s.want.Key, Want: s.want.Value, Detail: s.err.Error()})
		case s.got != s.want.Value:
			add(Finding{Kind: kindSysctl, Subject: s.want.Key, Want: s.want.Value, Got: s.got})
		}
	}
	for _, m := range p.BlockModules {
		if o.loaded[m] {
			add(Finding{Kind: kindModule, Subject: m, Want: "not loaded", Got: "loaded"})
		}
	}
	if !o.modprobe.inSync() {
		add(Finding{Kind: kindModule, Subject: o.modprobe.path, Detail: "module block file missing or changed"})
	}
	for _, ph := range o.pinholes {
		r.Pinholes = append(r.Pinholes, ph.String())
	}
	if calls != nil {
		want := map[nft.Pinhole]bool{}
		for _, ps := range calls {
			for _, ph := range ps {
				want[ph] = true
			}
		}
		for _, ph := range o.pinholes {
			if !want[ph] {
				add(Finding{Kind: kindPinhole, Subject: ph.String(), Detail: "open without a call"})
			}
			delete(want, ph)
		}
		for ph := range want {
			add(Finding{Kind: kindPinhole, Subject: ph.String(), Detail: "call's pinhole missing"})
		}
	}
	r.OK = len(r.Drift) == 0
	return r
}

func isNotFound(err error) bool { return errors.Is(err, sysctl.ErrNotFound) }

// Check compares the running system with the policy: every listening socket
// and its process, every denied service, every sysctl, the blocked modules
// and the live ruleset. Drift is in the report (Report.Err turns it into an
// error); an error means the check itself could not run.
func (l *Lockdown) Check(ctx context.Context) (*Report, error) {
	o, err := l.observe(ctx)
	if err != nil {
		return nil, fmt.Errorf("lockdown check: %w", err)
	}
	// Pinholes and calls are read under one lock, so a call that starts
	// mid-check is either in both or in neither; the slow part above runs
	// without it, and call setup does not wait for /proc walks.
	l.mu.Lock()
	defer l.mu.Unlock()
	if o.pinholes, err = l.observePinholes(); err != nil {
		return nil, fmt.Errorf("lockdown check: %w", err)
	}
	var calls map[string][]nft.Pinhole
	if l.ownsPinholes {
		calls = l.calls
	}
	return report(l.policy, o, calls, time.Now()), nil
}

// Monitor runs Check on every tick until ctx ends, logging each finding as
// a security event at Warn, counting the checks that found drift
// (DriftEvents) and handing each drifting report to onDrift (nil: nobody).
// The agent hands it a ticker's channel.
func (l *Lockdown) Monitor(ctx context.Context, ticks <-chan time.Time, onDrift func(*Report)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
		r, err := l.Check(ctx)
		if err != nil {
			if ctx.Err() == nil {
				l.log.Error("lockdown check failed", "err", err)
			}
			continue
		}
		if r.OK {
			continue
		}
		l.driftEvents.Add(1)
		for _, f := range r.Drift {
			l.log.Warn("lockdown drift", "security_event", true, "kind", f.Kind, "subject", f.Subject,
				"process", f.Process, "pid", f.PID, "want", f.Want, "got", f.Got, "detail", f.Detail)
		}
		if onDrift != nil {
			onDrift(r)
		}
	}
}
