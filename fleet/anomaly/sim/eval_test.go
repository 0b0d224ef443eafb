package sim

import (
	"flag"
	"strconv"
	"strings"
	"testing"

	"github.com/hardphone/hardphone/fleet/anomaly"
)

var seeds = flag.String("sim.seeds", "", "comma-separated further seeds whose evaluation TestEvaluation prints (-v)")

// TestEvaluation runs the default detector over the README's month (seed
// 1) and holds it to what was measured: at least this many attacks found
// per rule and per type, at most this many false findings per rule. The
// stream and the detector are deterministic, so these are the exact
// numbers of this build; a change to a rule or to the traffic that moves
// them must update the README's table with them. Run with -v for the
// table.
func TestEvaluation(t *testing.T) {
	s, err := Generate(DefaultConfig())
	if err != nil {
		t.Fatalf("Generate = %v", err)
	}
	res, _, err := Evaluate(s, EvalConfig(s))
	if err != nil {
		t.Fatalf("Evaluate = %v", err)
	}
	t.Logf("seed 1\n%s", res.Table())
	if res.Refused != 0 {
		t.Fatalf("the detector refused %d generated observations", res.Refused)
	}
	for _, want := range []struct {
		rule               string
		instances, minHits int
		maxFalse           int
	}{
		{anomaly.RuleCallPremium, 8, 4, 0},
		{anomaly.RuleCallVolume, 8, 8, 3},
		{anomaly.RuleCallNewCountry, 16, 16, 16},
		{anomaly.RuleCallOffHours, 16, 13, 8},
		{anomaly.RuleCallLong, 16, 0, 23},
		{anomaly.RuleRegNewNetwork, 8, 8, 84},
		{anomaly.RuleRegHijack, 8, 7, 0},
		{anomaly.RuleAuthFailures, 4, 4, 0},
		{anomaly.RuleFleetProbe, 8, 8, 0},
		{anomaly.RuleFleetAuthSpray, 6, 6, 0},
		{anomaly.RuleFleetAuthBurst, 6, 6, 0},
		{anomaly.RuleFleetCredentialBurst, 3, 3, 1},
		{anomaly.RuleFleetNewNetwork, 8, 8, 86},
	} {
		r := res.Rule(want.rule)
		if r.Instances != want.instances || r.Detected < want.minHits || r.False > want.maxFalse {
			t.Errorf("%s: detected %d/%d, %d false; want at least %d/%d, at most %d false",
				want.rule, r.Detected, r.Instances, r.False, want.minHits, want.instances, want.maxFalse)
		}
	}
	for _, typ := range AttackTypes {
		if r := res.Type(typ); r.Detected < r.Instances {
			t.Errorf("%s: %d of %d detected by any rule (missed %s), want all", typ, r.Detected, r.Instances, strings.Join(r.Missed, "; "))
		}
	}
	if *seeds == "" {
		return
	}
	for _, f := range strings.Split(*seeds, ",") {
		seed, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
		if err != nil {
			t.Fatalf("-sim.seeds %q: %v", *seeds, err)
		}
		c := DefaultConfig()
		c.Seed = seed
		s, err := Generate(c)
		if err != nil {
			t.Fatalf("Generate(seed %d) = %v", seed, err)
		}
		res, _, err := Evaluate(s, EvalConfig(s))
		if err != nil {
			t.Fatalf("Evaluate(seed %d) = %v", seed, err)
		}
		t.Logf("seed %d\n%s", seed, res.Table())
	}
}
