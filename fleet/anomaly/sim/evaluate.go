package sim

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hardphone/hardphone/fleet/anomaly"
)

// RuleTargets are the attack types each rule is meant to catch: a rule's
// detection rate is over the attacks of its types. (A finding that
// matches an attack of another type is still a true finding.)
var RuleTargets = map[string][]string{
	anomaly.RuleCallPremium:          {TollFraud},
	anomaly.RuleCallVolume:           {TollFraud},
	anomaly.RuleCallNewCountry:       {TollFraud, SlowFraud},
	anomaly.RuleCallOffHours:         {TollFraud, SlowFraud},
	anomaly.RuleCallLong:             {TollFraud, SlowFraud},
	anomaly.RuleRegNewNetwork:        {RegHijack},
	anomaly.RuleRegHijack:            {RegHijack},
	anomaly.RuleAuthFailures:         {PasswordGuessing},
	anomaly.RuleFleetProbe:           {ScannerSweep},
	anomaly.RuleFleetAuthSpray:       {CredentialStuffing},
	anomaly.RuleFleetAuthBurst:       {CredentialStuffing},
	anomaly.RuleFleetCredentialBurst: {CredentialBurst},
	anomaly.RuleFleetNewNetwork:      {RegHijack},
}

// Grace is how long after an attack's end a finding still counts as
// detecting it (call records arrive when calls end).
const Grace = 2 * time.Hour

// RuleResult is one rule's line of the evaluation.
type RuleResult struct {
	Rule string
	// Instances of the rule's target types, and how many of them the rule
	// flagged.
	Instances, Detected int
	// Findings the rule made; True matched an attack (of any type), False
	// matched none.
	Findings, True, False int
	// FalseBy counts the false findings by the profile of their device
	// ("fleet" when they name none or several).
	FalseBy map[string]int
}

// TypeResult is one attack type's line.
type TypeResult struct {
	Type string
	// Instances and how many any rule flagged.
	Instances, Detected int
	// MedianDelay from the attack's start to its first finding, over the
	// detected instances.
	MedianDelay time.Duration
	// Rules that flagged at least one instance, in rule order.
	Rules []string
	// Missed names the instances no rule flagged (ID and note).
	Missed []string
}

// Result is an evaluation.
type Result struct {
	Rules        []RuleResult
	Types        []TypeResult
	Observations int
	DeviceDays   int
	Findings     int
	// Refused counts observations the detector refused (0 for a
	// generated stream: it is in time order and valid).
	Refused int
}

// Evaluate runs a detector with cfg over the stream (its clock following
// the stream) and scores the findings against the labels.
func Evaluate(s Stream, cfg anomaly.Config) (Result, []anomaly.Finding, error) {
	var now time.Time
	d, err := anomaly.New(cfg, anomaly.WithClock(func() time.Time { return now }))
	if err != nil {
		return Result{}, nil, err
	}
	res := Result{Observations: len(s.Observations), DeviceDays: len(s.DeviceIDs) * s.Config.Days}
	var findings []anomaly.Finding
	for _, o := range s.Observations {
		now = o.At()
		f, err := d.Observe(o)
		if err != nil {
			res.Refused++
			continue
		}
		findings = append(findings, f...)
	}
	res.Findings = len(findings)
	res.score(s, findings)
	return res, findings, nil
}

// EvalConfig is the detector configuration the evaluation uses: the
// defaults, with the fleet's home country and its registrar as
// infrastructure.
func EvalConfig(s Stream) anomaly.Config {
	c := anomaly.DefaultConfig()
	c.HomeCountries = []string{s.HomeCountry}
	c.Infrastructure = slices.Clone(s.Infrastructure)
	return c
}

// matches reports whether a finding is about an attack: in its time
// (plus Grace), and naming its source, or one of its devices. A device
// match counts when the rule is meant for the attack's type, or when both
// are about one device (reg.hijack flagging the registration of a toll
// fraudster); a fleet finding naming dozens of devices and an attack on
// dozens of others would otherwise meet by chance.
func matches(f anomaly.Finding, a Attack) bool {
	if f.Time.Before(a.Start) || f.Time.After(a.End.Add(Grace)) {
		return false
	}
	byDevice := len(a.Devices) == 1 && len(f.Devices) == 1 || slices.Contains(RuleTargets[f.Rule], a.Type)
	for _, dev := range f.Devices {
		if byDevice && slices.Contains(a.Devices, dev) {
			return true
		}
	}
	if f.Source.IsValid() {
		for _, src := range a.Sources {
			if f.Source.Contains(src) {
				return true
			}
		}
	}
	return false
}

func (res *Result) score(s Stream, findings []anomaly.Finding) {
	// detectedBy[attack][rule]: the rule flagged the attack; first[attack]
	// the first finding's time.
	detectedBy := make([]map[string]bool, len(s.Attacks))
	first := make([]time.Time, len(s.Attacks))
	byRule := map[string]*RuleResult{}
	for _, r := range anomaly.Rules() {
		byRule[r] = &RuleResult{Rule: r}
	}
	for i := range detectedBy {
		detectedBy[i] = map[string]bool{}
	}
	for _, f := range findings {
		rr := byRule[f.Rule]
		rr.Findings++
		hit := false
		for i, a := range s.Attacks {
			if matches(f, a) {
				hit = true
				detectedBy[i][f.Rule] = true
				if first[i].IsZero() || f.Time.Before(first[i]) {
					first[i] = f.Time
				}
			}
		}
		if hit {
			rr.True++
			continue
		}
		rr.False++
		prof := "fleet"
		if len(f.Devices) == 1 {
			prof = s.Profiles[f.Devices[0]]
		}
		if rr.FalseBy == nil {
			rr.FalseBy = map[string]int{}
		}
		rr.FalseBy[prof]++
	}
	for _, r := range anomaly.Rules() {
		rr := byRule[r]
		for i, a := range s.Attacks {
			if slices.Contains(RuleTargets[r], a.Type) {
				rr.Instances++
				if detectedBy[i][r] {
					rr.Detected++
				}
			}
		}
		res.Rules = append(res.Rules, *rr)
	}
	for _, typ := range AttackTypes {
		tr := TypeResult{Type: typ}
		var delays []time.Duration
		rules := map[string]bool{}
		for i, a := range s.Attacks {
			if a.Type != typ {
				continue
			}
			tr.Instances++
			if len(detectedBy[i]) == 0 {
				tr.Missed = append(tr.Missed, fmt.Sprintf("#%d (%s)", a.ID, a.Note))
				continue
			}
			tr.Detected++
			delays = append(delays, max(first[i].Sub(a.Start), 0))
			for r := range detectedBy[i] {
				rules[r] = true
			}
		}
		for _, r := range anomaly.Rules() {
			if rules[r] {
				tr.Rules = append(tr.Rules, r)
			}
		}
		if len(delays) > 0 {
			slices.Sort(delays)
			tr.MedianDelay = delays[len(delays)/2]
		}
		res.Types = append(res.Types, tr)
	}
}

// Rule returns the result line of a rule.
func (res Result) Rule(name string) RuleResult {
	for _, r := range res.Rules {
		if r.Rule == name {
			return r
		}
	}
	return RuleResult{Rule: name}
}

// Type returns the result line of an attack type.
func (res Result) Type(name string) TypeResult {
	for _, t := range res.Types {
		if t.Type == name {
			return t
		}
	}
	return TypeResult{Type: name}
}

// Table renders the result as two Markdown tables: per rule, per attack
// type.
func (res Result) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d observations, %d device-days, %d findings\n\n", res.Observations, res.DeviceDays, res.Findings)
	b.WriteString("| rule | detects | detected | findings | true | false | false per 1000 device-days | false findings by phone |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range res.Rules {
		rate := "n/a"
		if r.Instances > 0 {
			rate = fmt.Sprintf("%d/%d (%.0f%%)", r.Detected, r.Instances, 100*float64(r.Detected)/float64(r.Instances))
		}
		by := falseBy(r.FalseBy)
		if len(by) == 0 {
			by = []string{"-"}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %d | %.2f | %s |\n", r.Rule, strings.Join(RuleTargets[r.Rule], ", "), rate,
			r.Findings, r.True, r.False, 1000*float64(r.False)/float64(max(res.DeviceDays, 1)), strings.Join(by, ", "))
	}
	b.WriteString("\n| attack | instances | detected (any rule) | median time to first finding | rules that fired | missed |\n|---|---|---|---|---|---|\n")
	for _, t := range res.Types {
		missed := strings.Join(t.Missed, "; ")
		if missed == "" {
			missed = "-"
		}
		fmt.Fprintf(&b, "| %s | %d | %d (%.0f%%) | %v | %s | %s |\n", t.Type, t.Instances, t.Detected,
			100*float64(t.Detected)/float64(max(t.Instances, 1)), t.MedianDelay, strings.Join(t.Rules, ", "), missed)
	}
	return b.String()
}

// falseBy renders counts by profile, most first.
func falseBy(m map[string]int) []string {
	type kv struct {
		k string
		n int
	}
	var kvs []kv
	for k, n := range m {
		kvs = append(kvs, kv{k, n})
	}
	slices.SortFunc(kvs, func(a, b kv) int {
		if a.n != b.n {
			return b.n - a.n
		}
		return strings.Compare(a.k, b.k)
	})
	out := make([]string, len(kvs))
	for i, x := range kvs {
		out[i] = fmt.Sprintf("%s %d", x.k, x.n)
	}
	return out
}
