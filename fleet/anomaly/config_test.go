package anomaly

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/dialplan"
)

func TestDefaultConfigValid(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	if len(ruleSpecs) != numRules || len(c.Rules) != numRules {
		t.Fatalf("%d rule specs, %d default rules, numRules %d", len(ruleSpecs), len(c.Rules), numRules)
	}
	for i, name := range Rules() {
		if ruleIndex[name] != i || RuleDoc(name) == "" {
			t.Errorf("rule %s: index %d (want %d), doc %q", name, ruleIndex[name], i, RuleDoc(name))
		}
	}
	// Responses that act on a device are the admin's to enable.
	for name, r := range c.Rules {
		if r.Block != 0 || r.Quarantine != 0 {
			t.Errorf("default %s blocks or quarantines", name)
		}
	}
}

// TestPremiumPrefixesMatchPhone: the fleet flags what the phone's
// toll-fraud guard refuses by default.
func TestPremiumPrefixesMatchPhone(t *testing.T) {
	if !slices.Equal(DefaultPremiumPrefixes, dialplan.DefaultPremiumPrefixes) {
		t.Fatalf("DefaultPremiumPrefixes = %v, want the phone's %v", DefaultPremiumPrefixes, dialplan.DefaultPremiumPrefixes)
	}
}

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig([]byte(`{
		"home_countries": ["+49"],
		"infrastructure": ["81.0.1.0/24"],
		"rules": {
			"call.volume": {"threshold": 8, "block": "2h"},
			"reg.hijack": {"quarantine": "168h", "block": "24h"}
		}}`), nil)
	if err != nil {
		t.Fatalf("ParseConfig = %v", err)
	}
	v := c.Rules[RuleCallVolume]
	if v.Threshold != 8 || v.Min != 8 || !v.Enabled || v.Block != Duration(2*time.Hour) || v.Severity != SeverityCritical {
		t.Fatalf("call.volume = %+v, want threshold 8 and block 2h over the defaults", v)
	}
	if h := c.Rules[RuleRegHijack]; h.Quarantine != Duration(168*time.Hour) || h.Window != Duration(time.Hour) {
		t.Fatalf("reg.hijack = %+v", h)
	}
	if c.Rules[RuleCallPremium] != DefaultConfig().Rules[RuleCallPremium] {
		t.Fatalf("call.premium changed though the file left it out")
	}
	if c.Location != time.UTC || !slices.Equal(c.HomeCountries, []string{"+49"}) || len(c.Infrastructure) != 1 {
		t.Fatalf("config = %+v", c)
	}
}

func TestParseConfigRefuses(t *testing.T) {
	for _, tt := range []struct{ name, in, want string }{
		{"unknown key", `{"bogus": 1}`, "unknown field"},
		{"unknown rule", `{"rules": {"call.bogus": {}}}`, "unknown"},
		{"unknown rule key", `{"rules": {"call.volume": {"thresh": 3}}}`, "unknown field"},
		{"threshold out of range", `{"rules": {"call.volume": {"threshold": 0.5}}}`, "threshold"},
		{"threshold the rule has not", `{"rules": {"call.premium": {"threshold": 3}}}`, "takes no threshold"},
		{"window the rule has not", `{"rules": {"call.volume": {"window": "2h"}}}`, "takes no window"},
		{"min beyond the source window", `{"rules": {"fleet.probe": {"min": 33}}}`, "min"},
		{"block on a fleet rule", `{"rules": {"fleet.probe": {"block": "1h"}}}`, "cannot block"},
		{"quarantine on a fleet rule", `{"rules": {"fleet.credential_burst": {"quarantine": "1h"}}}`, "cannot quarantine"},
		{"negative duration", `{"rules": {"call.volume": {"cooldown": "-1h"}}}`, "non-negative"},
		{"bad severity", `{"rules": {"call.volume": {"severity": "loud"}}}`, "severity"},
		{"bad home country", `{"home_countries": ["49"]}`, "home country"},
		{"bad premium prefix", `{"premium_prefixes": ["0900"]}`, "premium prefix"},
		{"bad emergency number", `{"emergency_numbers": ["11a"]}`, "emergency number"},
		{"bad network bits", `{"network_bits4": 33}`, "network bits"},
		{"zero cap", `{"max_devices": 0}`, "max_devices"},
		{"zone without a database", `{"time_zone": "Europe/Berlin"}`, "no zone database"},
		{"two objects", `{} {}`, "after the object"},
		{"not JSON", `rules`, "configuration"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.in), nil)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseConfig(%s) = %v, want ErrInvalid naming %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestParseConfigZone(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	c, err := ParseConfig([]byte(`{"time_zone": "Europe/Berlin"}`), func(name string) (*time.Location, error) {
		if name != "Europe/Berlin" {
			return nil, errors.New("unknown")
		}
		return berlin, nil
	})
	if err != nil || c.Location != berlin {
		t.Fatalf("ParseConfig(time_zone) = %v, %v, want the loaded zone", c.Location, err)
	}
}

// TestConfigIsCopied: a Detector keeps its own copy; changing the
// caller's slices and map later changes nothing.
func TestConfigIsCopied(t *testing.T) {
	c := DefaultConfig()
	d, err := New(c)
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	c.PremiumPrefixes[0] = "+1"
	c.Rules[RuleCallVolume] = RuleConfig{}
	got := d.Config()
	if got.PremiumPrefixes[0] != "+1900" || got.Rules[RuleCallVolume].Threshold != 6 {
		t.Fatalf("the detector's config changed with the caller's: %v, %+v", got.PremiumPrefixes[0], got.Rules[RuleCallVolume])
	}
	bad := DefaultConfig()
	bad.MaxDevices = -1
	if err := d.SetConfig(bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("SetConfig(bad) = %v, want ErrInvalid", err)
	}
	if d.Config().MaxDevices != DefaultConfig().MaxDevices {
		t.Fatalf("a refused SetConfig changed the config")
	}
}
