package anomaly

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Duration is a time.Duration that reads and writes as text ("90m",
// "168h") in JSON.
type Duration time.Duration

// MarshalText renders the duration in time.Duration's form.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads time.ParseDuration's form; negative durations are
// refused.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil || v < 0 {
		return fmt.Errorf("%w: duration %q: want a non-negative Go duration (\"90m\", \"24h\")", ErrInvalid, clip(string(b)))
	}
	*d = Duration(v)
	return nil
}

// Rule names, stable: configurations, findings and the README use them.
const (
	RuleCallPremium          = "call.premium"
	RuleCallVolume           = "call.volume"
	RuleCallNewCountry       = "call.new_country"
	RuleCallOffHours         = "call.off_hours"
	RuleCallLong             = "call.long"
	RuleRegNewNetwork        = "reg.new_network"
	RuleRegHijack            = "reg.hijack"
	RuleAuthFailures         = "auth.failures"
	RuleFleetProbe           = "fleet.probe"
	RuleFleetAuthSpray       = "fleet.auth_spray"
	RuleFleetAuthBurst       = "fleet.auth_burst"
	RuleFleetCredentialBurst = "fleet.credential_burst"
	RuleFleetNewNetwork      = "fleet.new_network"
)

// RuleConfig is what an admin sets per rule. What Threshold, Min and
// Window mean depends on the rule (see Rules and the README); a parameter
// a rule does not use must be zero.
type RuleConfig struct {
	Enabled bool `json:"enabled"`
	// Threshold is the rule's main threshold: a number of robust
	// deviations (MADs, mean deviations) for the baseline rules, minutes
	// for the rules that add up call time.
	Threshold float64 `json:"threshold,omitempty"`
	// Min is the least count (calls, failures, devices, changes) before
	// the rule may fire, whatever the baseline says.
	Min int `json:"min,omitempty"`
	// Window is the sliding window the rule counts over.
	Window Duration `json:"window,omitempty"`
	// Cooldown: after firing for a key (a device, a source, the fleet),
	// the rule stays silent for that key this long.
	Cooldown Duration `json:"cooldown"`
	// Severity of the findings (RFC 5424 names).
	Severity Severity `json:"severity"`
	// Alert: the server sends the finding to its alert sinks.
	Alert bool `json:"alert"`
	// Block, when not zero: the device's outbound calls are blocked (but
	// for Config.EmergencyNumbers) this long.
	Block Duration `json:"block,omitempty"`
	// Quarantine, when not zero: the device's certificate renewals are
	// refused this long.
	Quarantine Duration `json:"quarantine,omitempty"`
}

// ResponseKind names a response.
type ResponseKind string

// Responses a rule can trigger.
const (
	// ResponseAlert: send the finding to the alert sinks (syslog,
	// webhook).
	ResponseAlert ResponseKind = "alert"
	// ResponseBlock: push a dialling-policy override to the device that
	// refuses every outbound call but emergency numbers, until a time.
	ResponseBlock ResponseKind = "block_outbound"
	// ResponseQuarantine: refuse the device's certificate renewals until a
	// time.
	ResponseQuarantine ResponseKind = "quarantine"
)

// ruleSpec is what the code knows about a rule: which parameters it uses
// and their bounds, which responses make sense, and the defaults.
type ruleSpec struct {
	name string
	// fleet: the rule correlates across devices (its key is a source, a
	// network or the fleet, not a device).
	fleet bool
	// Parameters the rule reads; the others must be zero.
	threshold, min, window bool
	// Bounds of the parameters it reads.
	thrLo, thrHi      float64
	minLo, minHi      int
	winLo, winHi      time.Duration
	block, quarantine bool
	// holds: when the rule fires for a device, what the device does for
	// Config.LearnHold is not learnt as normal.
	holds       bool
	recommended []ResponseKind
	def         RuleConfig
	doc         string
}

const (
	hour = time.Hour
	day  = 24 * time.Hour
)

// ruleSpecs: one per rule, in the order findings and tables list them.
var ruleSpecs = []ruleSpec{
	{name: RuleCallPremium, holds: true, min: true, window: true, minLo: 1, minHi: 1000, winLo: time.Minute, winHi: 7 * day,
		block: true, quarantine: true, recommended: []ResponseKind{ResponseAlert, ResponseBlock},
		def: RuleConfig{Enabled: true, Min: 1, Window: Duration(day), Cooldown: Duration(6 * hour), Severity: SeverityCritical, Alert: true},
		doc: "an outbound call to a premium-rate prefix (Config.PremiumPrefixes); Min calls within Window"},
	{name: RuleCallVolume, holds: true, threshold: true, min: true, thrLo: 1, thrHi: 1000, minLo: 1, minHi: 100000,
		block: true, quarantine: true, recommended: []ResponseKind{ResponseAlert, ResponseBlock},
		def: RuleConfig{Enabled: true, Threshold: 6, Min: 8, Cooldown: Duration(6 * hour), Severity: SeverityCritical, Alert: true},
		doc: "outbound calls in the current hour above median + Threshold x scale of the device's same hour of the week (and the hours beside it) over the last 4 weeks, and at least Min"},
	{name: RuleCallNewCountry, holds: true, threshold: true, min: true, window: true, thrLo: 1, thrHi: 100000, minLo: 1, minHi: 100000, winLo: hour, winHi: 7 * day,
		block: true, quarantine: true, recommended: []ResponseKind{ResponseAlert},
		def: RuleConfig{Enabled: true, Threshold: 30, Min: 8, Window: Duration(day), Cooldown: Duration(day), Severity: SeverityWarning, Alert: true},
		doc: "within Window, Threshold answered minutes or Min calls to countries the device has no established history with (nor the fleet at large)"},
	{name: RuleCallOffHours, holds: true, threshold: true, min: true, window: true, thrLo: 1, thrHi: 100000, minLo: 1, minHi: 100000, winLo: hour, winHi: 7 * day,
		block: true, quarantine: true, recommended: []ResponseKind{ResponseAlert},
		def: RuleConfig{Enabled: true, Threshold: 60, Min: 8, Window: Duration(day), Cooldown: Duration(day), Severity: SeverityWarning, Alert: true},
		doc: "within Window, Threshold answered minutes or Min calls placed in hours of the week the device is idle in (at most one of its 12 reference hours saw a call)"},
	{name: RuleCallLong, threshold: true, min: true, thrLo: 1, thrHi: 1000, minLo: 1, minHi: 1440,
		block: true, quarantine: true, recommended: []ResponseKind{ResponseAlert},
		def: RuleConfig{Enabled: true, Threshold: 6, Min: 120, Cooldown: Duration(day), Severity: SeverityNotice},
		doc: "an answered outbound call to a number the device never called (or a country it has no history with) longer than median + Threshold x scale of the device's last 64 answered outbound calls, and at least Min minutes"},
	{name: RuleRegNewNetwork,
		block: true, quarantine: true, recommended: nil,
		def: RuleConfig{Enabled: true, Cooldown: Duration(day), Severity: SeverityNotice},
		doc: "a registration from a network the device was never seen on (after its warm-up)"},
	{name: RuleRegHijack, holds: true, min: true, window: true, minLo: 1, minHi: 100, winLo: time.Minute, winHi: day,
		block: true, quarantine: true, recommended: []ResponseKind{ResponseAlert, ResponseBlock, ResponseQuarantine},
		def: RuleConfig{Enabled: true, Min: 2, Window: Duration(hour), Cooldown: Duration(6 * hour), Severity: SeverityCritical, Alert: true},
		doc: "registrations alternating between networks (Min switches within Window) while one of them is not established for the device: two registrants for one account"},
	{name: RuleAuthFailures, threshold: true, min: true, thrLo: 1, thrHi: 1000, minLo: 1, minHi: 1000000,
		block: false, quarantine: true, recommended: []ResponseKind{ResponseAlert},
		def: RuleConfig{Enabled: true, Threshold: 6, Min: 10, Cooldown: Duration(6 * hour), Severity: SeverityWarning, Alert: true},
		doc: "authentication failures for the device in the current hour above its EWMA rate + Threshold x its EW mean deviation, and at least Min"},
	{name: RuleFleetProbe, fleet: true, min: true, window: true, minLo: 2, minHi: maxSourceDevices, winLo: time.Minute, winHi: day,
		recommended: []ResponseKind{ResponseAlert},
		def:         RuleConfig{Enabled: true, Min: 5, Window: Duration(hour), Cooldown: Duration(6 * hour), Severity: SeverityWarning, Alert: true},
		doc:         "one source network (outside Config.Infrastructure) probing at least Min devices within Window (scanner user agents, foreign sources, floods, digest harvesting)"},
	{name: RuleFleetAuthSpray, fleet: true, min: true, window: true, minLo: 2, minHi: maxSourceDevices, winLo: time.Minute, winHi: day,
		recommended: []ResponseKind{ResponseAlert},
		def:         RuleConfig{Enabled: true, Min: 5, Window: Duration(hour), Cooldown: Duration(6 * hour), Severity: SeverityError, Alert: true},
		doc:         "one source network (outside Config.Infrastructure) failing to authenticate as at least Min devices within Window"},
	{name: RuleFleetAuthBurst, fleet: true, threshold: true, min: true, window: true, thrLo: 1, thrHi: 1000, minLo: 2, minHi: maxFleetWindow, winLo: time.Minute, winHi: day,
		recommended: []ResponseKind{ResponseAlert},
		def:         RuleConfig{Enabled: true, Threshold: 6, Min: 10, Window: Duration(hour), Cooldown: Duration(hour), Severity: SeverityError, Alert: true},
		doc:         "devices with authentication failures from outside Config.Infrastructure within Window, fleet-wide, above median + Threshold x scale of the same hour of the week over 4 weeks, and at least Min"},
	{name: RuleFleetCredentialBurst, fleet: true, threshold: true, min: true, window: true, thrLo: 1, thrHi: 1000, minLo: 2, minHi: maxFleetWindow, winLo: time.Minute, winHi: day,
		recommended: []ResponseKind{ResponseAlert},
		def:         RuleConfig{Enabled: true, Threshold: 6, Min: 10, Window: Duration(hour), Cooldown: Duration(hour), Severity: SeverityError, Alert: true},
		doc:         "credential changes within Window, fleet-wide, above median + Threshold x scale of the same hour of the week over 4 weeks, and at least Min"},
	{name: RuleFleetNewNetwork, fleet: true,
		block: true, quarantine: true, recommended: nil,
		def: RuleConfig{Enabled: true, Cooldown: Duration(day), Severity: SeverityNotice},
		doc: "a registration from a network no device of the fleet was seen on (after the fleet's warm-up)"},
}

var ruleIndex = func() map[string]int {
	m := make(map[string]int, len(ruleSpecs))
	for i, s := range ruleSpecs {
		m[s.name] = i
	}
	return m
}()

// numRules is len(ruleSpecs), for per-rule arrays.
const numRules = 13

// Rules lists the rule names in their fixed order.
func Rules() []string {
	out := make([]string, len(ruleSpecs))
	for i, s := range ruleSpecs {
		out[i] = s.name
	}
	return out
}

// RuleDoc says what a rule detects and what its parameters mean ("" for
// an unknown rule).
func RuleDoc(rule string) string {
	if i, ok := ruleIndex[rule]; ok {
		return ruleSpecs[i].doc
	}
	return ""
}

// RecommendedResponses are the responses the rule's findings are meant to
// lead to, whether enabled or not (the finding says which are).
func RecommendedResponses(rule string) []ResponseKind {
	if i, ok := ruleIndex[rule]; ok {
		return slices.Clone(ruleSpecs[i].recommended)
	}
	return nil
}

// Config configures a Detector. Start from DefaultConfig.
type Config struct {
	// Rules holds one entry per rule name; ParseConfig fills the rules a
	// file leaves out with their defaults.
	Rules map[string]RuleConfig `json:"-"`
	// Location is the time zone hours of the week are counted in (the
	// fleet's offices); UTC when nil.
	Location *time.Location `json:"-"`
	// HomeCountries are E.164 country codes ("+49") every device counts
	// as established.
	HomeCountries []string `json:"home_countries"`
	// PremiumPrefixes are the E.164 prefixes call.premium flags.
	PremiumPrefixes []string `json:"premium_prefixes"`
	// EmergencyNumbers stay callable during an outbound block (the
	// override's allow list).
	EmergencyNumbers []string `json:"emergency_numbers"`
	// Infrastructure are the fleet's registrars, proxies and SBCs: their
	// addresses are never probing sources and their authentication
	// failures (the registrar rejecting a phone) are outages, not
	// attacks from outside.
	Infrastructure []netip.Prefix `json:"infrastructure"`
	// NetworkBits4 and NetworkBits6 are the prefix lengths a source
	// address is grouped into a network by (registrations, sources).
	NetworkBits4 int `json:"network_bits4"`
	NetworkBits6 int `json:"network_bits6"`
	// WarmUp: a device's baseline rules stay silent until it has been
	// seen this long (they learn meanwhile); the fleet-wide
	// fleet.new_network likewise from the detector's first observation.
	WarmUp Duration `json:"warm_up"`
	// LearnHold: after a call or registration rule fired for a device,
	// what the device does in this time is not learnt as normal
	// (countries, networks, call lengths).
	LearnHold Duration `json:"learn_hold"`
	// CommonCountryShare: a country established at this share of the
	// tracked devices (and at least 3) counts as established for all.
	CommonCountryShare float64 `json:"common_country_share"`
	// MaxDevices, MaxSources and MaxNetworks bound the tracked devices,
	// probing source networks and fleet-wide networks; the least recently
	// seen are forgotten first.
	MaxDevices  int `json:"max_devices"`
	MaxSources  int `json:"max_sources"`
	MaxNetworks int `json:"max_networks"`
	// MaxSkew: observations dated later than the clock plus this are
	// refused (a phone must not move the detector's time).
	MaxSkew Duration `json:"max_skew"`
	// MaxLateness: observations older than the newest seen minus this are
	// refused (baselines and windows are already past them).
	MaxLateness Duration `json:"max_lateness"`
}

// DefaultPremiumPrefixes are the prefixes the phone's toll-fraud guard
// refuses by default (agent/dialplan's list, kept in step by a test):
// North American 900/976, UK 09/087/084, German 0900/0137, French 08 9,
// Italian 89/899, Austrian and Swiss premium, and satellite and
// international premium networks.
var DefaultPremiumPrefixes = []string{
	"+1900", "+1976", "+449", "+4487", "+4484", "+49900", "+49137", "+3389", "+3989", "+39899",
	"+43900", "+43901", "+4190", "+870", "+881", "+882", "+883", "+979",
}

// DefaultConfig returns the defaults: every rule enabled with its default
// parameters, alerts on for all but the two new-network rules, no blocks
// or quarantines (an admin enables those per rule).
func DefaultConfig() Config {
	c := Config{
		Rules:              make(map[string]RuleConfig, len(ruleSpecs)),
		Location:           time.UTC,
		PremiumPrefixes:    slices.Clone(DefaultPremiumPrefixes),
		EmergencyNumbers:   []string{"112", "911"},
		NetworkBits4:       24,
		NetworkBits6:       48,
		WarmUp:             Duration(7 * day),
		LearnHold:          Duration(3 * day),
		CommonCountryShare: 0.05,
		MaxDevices:         20000,
		MaxSources:         8192,
		MaxNetworks:        65536,
		MaxSkew:            Duration(10 * time.Minute),
		MaxLateness:        Duration(6 * hour),
	}
	for _, s := range ruleSpecs {
		c.Rules[s.name] = s.def
	}
	return c
}

// Bounds on the configuration's own sizes.
const (
	maxConfigBytes = 1 << 20
	maxListEntries = 1024
	maxTrackCap    = 1 << 22
)

// Validate checks every value against its bounds and every rule against
// its parameters.
func (c Config) Validate() error {
	for name := range c.Rules {
		if _, ok := ruleIndex[name]; !ok {
			return fmt.Errorf("%w: rule %q unknown (known: %s)", ErrInvalid, clip(name), strings.Join(Rules(), ", "))
		}
	}
	for _, s := range ruleSpecs {
		r, ok := c.Rules[s.name]
		if !ok {
			return fmt.Errorf("%w: rule %s missing (start from DefaultConfig)", ErrInvalid, s.name)
		}
		if err := s.check(r); err != nil {
			return fmt.Errorf("%w: rule %s: %v", ErrInvalid, s.name, err)
		}
	}
	if len(c.HomeCountries) > maxListEntries || len(c.PremiumPrefixes) > maxListEntries ||
		len(c.EmergencyNumbers) > maxListEntries || len(c.Infrastructure) > maxListEntries {
		return fmt.Errorf("%w: a list holds more than %d entries", ErrInvalid, maxListEntries)
	}
	for _, h := range c.HomeCountries {
		if h == "" || CountryCode(h+"0") != h {
			return fmt.Errorf("%w: home country %q: want an E.164 country code (\"+49\")", ErrInvalid, clip(h))
		}
	}
	for _, p := range c.PremiumPrefixes {
		if len(p) < 2 || len(p) > 16 || p[0] != '+' || !validNumber(p) || strings.ContainsAny(p, "*#") {
			return fmt.Errorf("%w: premium prefix %q: want + and digits", ErrInvalid, clip(p))
		}
	}
	for _, n := range c.EmergencyNumbers {
		if n == "" || !validNumber(n) {
			return fmt.Errorf("%w: emergency number %q: want digits", ErrInvalid, clip(n))
		}
	}
	for _, p := range c.Infrastructure {
		if !p.IsValid() || p.Addr().Zone() != "" {
			return fmt.Errorf("%w: infrastructure prefix %v", ErrInvalid, p)
		}
	}
	if c.NetworkBits4 < 8 || c.NetworkBits4 > 32 || c.NetworkBits6 < 16 || c.NetworkBits6 > 128 {
		return fmt.Errorf("%w: network bits %d/%d: want 8..32 and 16..128", ErrInvalid, c.NetworkBits4, c.NetworkBits6)
	}
	if c.WarmUp < 0 || time.Duration(c.WarmUp) > 28*day {
		return fmt.Errorf("%w: warm_up %v: want 0..672h (the baselines hold 4 weeks)", ErrInvalid, time.Duration(c.WarmUp))
	}
	if c.LearnHold < 0 || time.Duration(c.LearnHold) > 28*day {
		return fmt.Errorf("%w: learn_hold %v: want 0..672h", ErrInvalid, time.Duration(c.LearnHold))
	}
	if math.IsNaN(c.CommonCountryShare) || c.CommonCountryShare <= 0 || c.CommonCountryShare > 1 {
		return fmt.Errorf("%w: common_country_share %v: want (0, 1]", ErrInvalid, c.CommonCountryShare)
	}
	for _, b := range []struct {
		name string
		v    int
	}{{"max_devices", c.MaxDevices}, {"max_sources", c.MaxSources}, {"max_networks", c.MaxNetworks}} {
		if b.v < 1 || b.v > maxTrackCap {
			return fmt.Errorf("%w: %s %d: want 1..%d", ErrInvalid, b.name, b.v, maxTrackCap)
		}
	}
	if c.MaxSkew < 0 || time.Duration(c.MaxSkew) > day {
		return fmt.Errorf("%w: max_skew %v: want 0..24h", ErrInvalid, time.Duration(c.MaxSkew))
	}
	if c.MaxLateness < 0 || time.Duration(c.MaxLateness) > 7*day {
		return fmt.Errorf("%w: max_lateness %v: want 0..168h", ErrInvalid, time.Duration(c.MaxLateness))
	}
	return nil
}

func (s ruleSpec) check(r RuleConfig) error {
	if math.IsNaN(r.Threshold) || math.IsInf(r.Threshold, 0) {
		return fmt.Errorf("threshold %v", r.Threshold)
	}
	if s.threshold {
		if r.Threshold < s.thrLo || r.Threshold > s.thrHi {
			return fmt.Errorf("threshold %v out of %v..%v", r.Threshold, s.thrLo, s.thrHi)
		}
	} else if r.Threshold != 0 {
		return fmt.Errorf("takes no threshold (got %v)", r.Threshold)
	}
	if s.min {
		if r.Min < s.minLo || r.Min > s.minHi {
			return fmt.Errorf("min %d out of %d..%d", r.Min, s.minLo, s.minHi)
		}
	} else if r.Min != 0 {
		return fmt.Errorf("takes no min (got %d)", r.Min)
	}
	if s.window {
		if w := time.Duration(r.Window); w < s.winLo || w > s.winHi {
			return fmt.Errorf("window %v out of %v..%v", w, s.winLo, s.winHi)
		}
	} else if r.Window != 0 {
		return fmt.Errorf("takes no window (got %v)", time.Duration(r.Window))
	}
	if r.Cooldown < 0 || time.Duration(r.Cooldown) > 30*day {
		return fmt.Errorf("cooldown %v out of 0..720h", time.Duration(r.Cooldown))
	}
	if !r.Severity.Valid() {
		return fmt.Errorf("severity %d", r.Severity)
	}
	if r.Block < 0 || time.Duration(r.Block) > 30*day || r.Quarantine < 0 || time.Duration(r.Quarantine) > 90*day {
		return fmt.Errorf("block %v / quarantine %v out of 0..720h / 0..2160h", time.Duration(r.Block), time.Duration(r.Quarantine))
	}
	if r.Block != 0 && !s.block {
		return fmt.Errorf("cannot block: the finding names no single device that placed calls")
	}
	if r.Quarantine != 0 && !s.quarantine {
		return fmt.Errorf("cannot quarantine: the finding names no single device at fault")
	}
	return nil
}

// configFile is Config's JSON form.
type configFile struct {
	TimeZone string                     `json:"time_zone,omitempty"`
	Rules    map[string]json.RawMessage `json:"rules,omitempty"`
	*configAlias
}

type configAlias Config

// ParseConfig reads a JSON configuration: the keys of Config (snake_case,
// "time_zone" an IANA name or "UTC") and "rules", a map from rule name to
// the keys of RuleConfig. Whatever the file leaves out keeps its default;
// a rule given in part keeps the defaults of the keys it leaves out.
// Unknown keys and rules are refused, and so is any value out of bounds.
// loadZone resolves time zone names (time.LoadLocation, or nil for UTC
// only).
func ParseConfig(b []byte, loadZone func(string) (*time.Location, error)) (Config, error) {
	if len(b) > maxConfigBytes {
		return Config{}, fmt.Errorf("%w: configuration of %d bytes (at most %d)", ErrInvalid, len(b), maxConfigBytes)
	}
	c := DefaultConfig()
	f := configFile{configAlias: (*configAlias)(&c)}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return Config{}, fmt.Errorf("%w: configuration: %v", ErrInvalid, err)
	}
	if dec.More() {
		return Config{}, fmt.Errorf("%w: configuration: data after the object", ErrInvalid)
	}
	switch {
	case f.TimeZone == "" || f.TimeZone == "UTC":
		c.Location = time.UTC
	case loadZone == nil:
		return Config{}, fmt.Errorf("%w: time_zone %q: no zone database given", ErrInvalid, clip(f.TimeZone))
	default:
		loc, err := loadZone(f.TimeZone)
		if err != nil {
			return Config{}, fmt.Errorf("%w: time_zone %q: %v", ErrInvalid, clip(f.TimeZone), err)
		}
		c.Location = loc
	}
	for name, raw := range f.Rules {
		r, ok := c.Rules[name]
		if !ok {
			return Config{}, fmt.Errorf("%w: rule %q unknown (known: %s)", ErrInvalid, clip(name), strings.Join(Rules(), ", "))
		}
		d := json.NewDecoder(bytes.NewReader(raw))
		d.DisallowUnknownFields()
		if err := d.Decode(&r); err != nil {
			return Config{}, fmt.Errorf("%w: rule %s: %v", ErrInvalid, name, err)
		}
		c.Rules[name] = r
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c.clone(), nil
}

// clone copies every slice and the map, so a Detector's configuration
// cannot change under it.
func (c Config) clone() Config {
	d := c
	d.Rules = make(map[string]RuleConfig, len(c.Rules))
	for k, v := range c.Rules {
		d.Rules[k] = v
	}
	d.HomeCountries = slices.Clone(c.HomeCountries)
	d.PremiumPrefixes = slices.Clone(c.PremiumPrefixes)
	d.EmergencyNumbers = slices.Clone(c.EmergencyNumbers)
	d.Infrastructure = slices.Clone(c.Infrastructure)
	if d.Location == nil {
		d.Location = time.UTC
	}
	return d
}
