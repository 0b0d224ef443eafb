package anomaly

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Detector holds the baselines and windows and applies the rules. It is
// safe for concurrent use; one mutex serialises observations (the rules
// are cheap: see the benchmark), so findings come out in the order the
// observations went in.
type Detector struct {
	clock func() time.Time // never nil
	log   *slog.Logger     // never nil

	mu sync.Mutex // guards everything below
	// cfg is the validated configuration (a private copy); rules holds its
	// rule entries by ruleSpecs index.
	cfg   Config
	rules [numRules]RuleConfig
	home  map[string]bool
	st    *state
}

// Option configures New.
type Option interface{ apply(*Detector) error }

type optionFunc func(*Detector) error

func (f optionFunc) apply(d *Detector) error { return f(d) }

// WithClock sets the clock observations are checked against (MaxSkew);
// time.Now by default.
func WithClock(now func() time.Time) Option {
	return optionFunc(func(d *Detector) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", ErrInvalid)
		}
		d.clock = now
		return nil
	})
}

// WithLogger sets the logger (component=anomaly is added); nothing is
// logged by default.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(d *Detector) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalid)
		}
		d.log = l.With("component", "anomaly")
		return nil
	})
}

// New returns a Detector with empty baselines.
func New(cfg Config, opts ...Option) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Detector{clock: time.Now, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		if err := o.apply(d); err != nil {
			return nil, err
		}
	}
	d.setConfig(cfg.clone())
	st, err := newState(d.cfg)
	if err != nil {
		return nil, err
	}
	d.st = st
	return d, nil
}

func (d *Detector) setConfig(cfg Config) {
	d.cfg = cfg
	for i, s := range ruleSpecs {
		d.rules[i] = cfg.Rules[s.name]
	}
	d.home = make(map[string]bool, len(cfg.HomeCountries))
	for _, h := range cfg.HomeCountries {
		d.home[h] = true
	}
}

// SetConfig replaces the configuration (an admin changed a rule). The
// baselines stay; lowered caps forget the least recently seen entries at
// once. A configuration that does not validate changes nothing.
func (d *Detector) SetConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.setConfig(cfg.clone())
	d.st.trim(d.cfg)
	return nil
}

// Config returns a copy of the configuration in force.
func (d *Detector) Config() Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg.clone()
}

// Rule indexes into ruleSpecs and Detector.rules.
const (
	rCallPremium = iota
	rCallVolume
	rCallNewCountry
	rCallOffHours
	rCallLong
	rRegNewNetwork
	rRegHijack
	rAuthFailures
	rFleetProbe
	rFleetAuthSpray
	rFleetAuthBurst
	rFleetCredentialBurst
	rFleetNewNetwork
)

// Observe feeds one observation to the rules and returns what they found
// (nil most of the time). An invalid, future or stale observation returns
// an error and changes nothing.
func (d *Detector) Observe(o Observation) ([]Finding, error) {
	switch v := o.(type) {
	case nil:
		return nil, fmt.Errorf("%w: nil observation", ErrInvalid)
	case *Call:
		if v == nil {
			return nil, fmt.Errorf("%w: nil call", ErrInvalid)
		}
		o = *v
	case *Registration:
		if v == nil {
			return nil, fmt.Errorf("%w: nil registration", ErrInvalid)
		}
		o = *v
	case *SecurityEvent:
		if v == nil {
			return nil, fmt.Errorf("%w: nil security event", ErrInvalid)
		}
		o = *v
	case *CredentialChange:
		if v == nil {
			return nil, fmt.Errorf("%w: nil credential change", ErrInvalid)
		}
		o = *v
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	t := o.At()
	d.mu.Lock()
	defer d.mu.Unlock()
	if lim := d.clock().Add(time.Duration(d.cfg.MaxSkew)); t.After(lim) {
		return nil, fmt.Errorf("%w: %s is after the clock's %s plus %v", ErrFuture, t.UTC().Format(time.RFC3339), lim.Add(-time.Duration(d.cfg.MaxSkew)).UTC().Format(time.RFC3339), time.Duration(d.cfg.MaxSkew))
	}
	ts := t.Unix()
	st := d.st
	if st.now != 0 && ts < st.now-int64(time.Duration(d.cfg.MaxLateness)/time.Second) {
		return nil, fmt.Errorf("%w: %s is more than %v before the newest observation (%s)", ErrStale,
			t.UTC().Format(time.RFC3339), time.Duration(d.cfg.MaxLateness), time.Unix(st.now, 0).UTC().Format(time.RFC3339))
	}
	if st.started == 0 {
		st.started = ts
	}
	if ts > st.now {
		st.now = ts
		d.advanceFleet(ts)
	}
	dev := d.device(o.DeviceID(), ts)
	var out []Finding
	switch v := o.(type) {
	case Call:
		out = d.call(dev, v, ts, out)
	case Registration:
		out = d.registration(dev, v, ts, out)
	case SecurityEvent:
		out = d.securityEvent(dev, v, ts, out)
	case CredentialChange:
		out = d.credentialChange(dev, v, ts, out)
	}
	return out, nil
}

// device returns the device's state, creating it (and forgetting the
// least recently seen device past MaxDevices).
func (d *Detector) device(id string, ts int64) *device {
	st := d.st
	if dev, ok := st.devices.get(id); ok {
		dev.last = max(dev.last, ts)
		return dev
	}
	dev := newDevice(id, ts)
	if _, old, evicted := st.devices.put(id, dev); evicted {
		st.forget(old)
	}
	return dev
}

// network groups an address into its network.
func (d *Detector) network(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := d.cfg.NetworkBits6
	if a.Is4() {
		bits = d.cfg.NetworkBits4
	}
	p, err := a.Prefix(bits)
	if err != nil {
		// Prefix fails only for bits out of range, which Validate refuses.
		return netip.PrefixFrom(a, a.BitLen())
	}
	return p
}

func (d *Detector) infrastructure(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range d.cfg.Infrastructure {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// cooling reports whether the rule fired for a key at *last less than
// its cooldown before ts; if not, it records ts as the new firing.
func (d *Detector) cooling(rule int, last *int64, ts int64) bool {
	cd := int64(time.Duration(d.rules[rule].Cooldown) / time.Second)
	// A late observation from before the last firing is within its
	// cooldown too.
	if *last != 0 && ts < *last+cd {
		return true
	}
	*last = ts
	return false
}

// finding builds a finding of a rule and the responses the admin enabled
// (recording blocks and quarantines as active).
func (d *Detector) finding(rule int, ts int64, devices []string, more int, src netip.Prefix, summary string, ev []Evidence) Finding {
	st := d.st
	st.seq++
	spec := ruleSpecs[rule]
	rc := d.rules[rule]
	if len(devices) > maxFindingDevices {
		more += len(devices) - maxFindingDevices
		devices = devices[:maxFindingDevices]
	}
	if len(ev) > maxEvidence {
		ev = ev[:maxEvidence]
	}
	f := Finding{
		ID: st.seq, Rule: spec.name, Severity: rc.Severity, Time: time.Unix(ts, 0).UTC(),
		Devices: slices.Clone(devices), MoreDevices: more, Source: src, Summary: summary, Evidence: ev,
		Recommended: slices.Clone(spec.recommended),
	}
	if rc.Alert {
		f.Responses = append(f.Responses, Response{Kind: ResponseAlert, Rule: spec.name, Finding: f.ID})
	}
	// Blocks and quarantines apply to a rule's one device (Validate
	// refuses them on rules without one).
	if len(devices) == 1 && more == 0 {
		now := time.Unix(max(ts, st.now), 0).UTC()
		if rc.Block > 0 {
			r := Response{Kind: ResponseBlock, Rule: spec.name, Finding: f.ID, Device: devices[0],
				Until: now.Add(time.Duration(rc.Block)).Truncate(time.Second), Override: d.override()}
			st.respond(cloneResponse(r), d.cfg.MaxDevices)
			f.Responses = append(f.Responses, r)
		}
		if rc.Quarantine > 0 {
			r := Response{Kind: ResponseQuarantine, Rule: spec.name, Finding: f.ID, Device: devices[0],
				Until: now.Add(time.Duration(rc.Quarantine)).Truncate(time.Second)}
			st.respond(r, d.cfg.MaxDevices)
			f.Responses = append(f.Responses, r)
		}
	}
	d.log.Debug("finding", "rule", spec.name, "id", f.ID, "devices", strings.Join(f.Devices, ","), "summary", summary)
	return f
}

func (d *Detector) override() *DialOverride {
	return &DialOverride{Allow: slices.Clone(d.cfg.EmergencyNumbers), International: false}
}

// Active returns the blocks and quarantines in force at now, by device
// then kind: what the server reconciles its pushed overrides and renewal
// refusals with (also after a restart).
func (d *Detector) Active(now time.Time) []Response {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Response
	for _, r := range d.st.responses {
		for _, x := range []Response{r.block, r.quarantine} {
			if x.Kind != "" && x.Until.After(now) {
				out = append(out, cloneResponse(x))
			}
		}
	}
	slices.SortFunc(out, func(a, b Response) int {
		if c := strings.Compare(a.Device, b.Device); c != 0 {
			return c
		}
		return strings.Compare(string(a.Kind), string(b.Kind))
	})
	return out
}

// Quarantined reports whether the device's certificate renewals are to be
// refused at now.
func (d *Detector) Quarantined(device string, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.st.responses[device]
	return ok && r.quarantine.Kind != "" && r.quarantine.Until.After(now)
}

// Blocked returns the outbound block in force for the device at now.
func (d *Detector) Blocked(device string, now time.Time) (Response, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.st.responses[device]
	if !ok || r.block.Kind == "" || !r.block.Until.After(now) {
		return Response{}, false
	}
	return cloneResponse(r.block), true
}

// Lift ends a block or quarantine early (an admin's decision); it reports
// whether one was in force.
func (d *Detector) Lift(device string, kind ResponseKind) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.st.responses[device]
	if !ok {
		return false
	}
	var had bool
	switch kind {
	case ResponseBlock:
		had = r.block.Kind != ""
		r.block = Response{}
	case ResponseQuarantine:
		had = r.quarantine.Kind != ""
		r.quarantine = Response{}
	}
	if r.block.Kind == "" && r.quarantine.Kind == "" {
		delete(d.st.responses, device)
	}
	return had
}

func cloneResponse(r Response) Response {
	if r.Override != nil {
		o := *r.Override
		o.Allow = slices.Clone(o.Allow)
		r.Override = &o
	}
	return r
}

// Stats says how much the detector tracks.
type Stats struct {
	Devices, Sources, Networks, Responses int
	// Findings is how many findings were made (the last ID).
	Findings uint64
	// Newest is the newest observation's time.
	Newest time.Time
}

// Stats returns the sizes of what the detector tracks.
func (d *Detector) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.st
	s := Stats{Devices: st.devices.len(), Sources: st.sources.len(), Networks: st.networks.len(),
		Responses: len(st.responses), Findings: st.seq}
	if st.now != 0 {
		s.Newest = time.Unix(st.now, 0).UTC()
	}
	return s
}

// LogValue keeps the state (the key called numbers are hashed with, the
// devices' baselines) out of logs.
func (d *Detector) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// newKey returns a fresh key for hashing called numbers.
func newKey() ([32]byte, error) {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return k, fmt.Errorf("hash key: %w", err)
	}
	return k, nil
}
