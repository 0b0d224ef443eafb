package anomaly

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCallPremium(t *testing.T) {
	h := newHarness(t, nil)
	// No warm-up: a premium call is flagged on a new device's first day.
	fs := h.obs(out("dev-1", at(0, 0, 10, 0), "+881612345678", 30*time.Second))
	f, ok := hasRule(fs, RuleCallPremium)
	if !ok {
		t.Fatalf("premium call: findings %v, want %s", ruleNames(fs), RuleCallPremium)
	}
	if f.Severity != SeverityCritical || !slices.Equal(f.Devices, []string{"dev-1"}) || evidence(f, "latest_number") != "+88161xxxxxxx" ||
		len(f.Responses) != 1 || f.Responses[0].Kind != ResponseAlert || !slices.Contains(f.Recommended, ResponseBlock) {
		t.Fatalf("finding = %+v", f)
	}
	if !strings.Contains(f.Message(), "call.premium (critical) device dev-1") {
		t.Fatalf("Message() = %q", f.Message())
	}
	// Cooling down: the next one within 6 hours makes no finding.
	h.quiet(out("dev-1", at(0, 0, 11, 0), "+881612345678", 0))
	if fs := h.obs(out("dev-1", at(0, 0, 16, 1), "+1900555123", 0)); len(fs) != 1 || fs[0].Evidence[0].Value != "3" {
		t.Fatalf("after the cooldown: %+v, want one finding counting 3 premium calls in the day", fs)
	}
}

func TestCallVolume(t *testing.T) {
	h := newHarness(t, nil)
	h.officeWeeks("dev-1", 3)
	// Working hours (2 an hour): the limit is 2 + 6·√2 ≈ 10.5.
	for i := range 10 {
		h.quiet(out("dev-1", at(3, 1, 10, i), fmt.Sprintf("+4930%07d", i), time.Minute))
	}
	if fs := h.obs(out("dev-1", at(3, 1, 10, 30), "+4930999", time.Minute)); len(fs) != 1 || fs[0].Rule != RuleCallVolume ||
		evidence(fs[0], "calls_this_hour") != "11" || evidence(fs[0], "baseline_median") != "2.00" || evidence(fs[0], "reference_weeks") != "3" {
		t.Fatalf("11th call at 10:xx: %+v, want call.volume against a median of 2 over 3 weeks", fs)
	}
	// At night (0 an hour) the limit is 6, and Min 8 calls.
	for i := range 7 {
		h.quiet(out("dev-1", at(3, 2, 2, i), "+4930555", 0))
	}
	// (Eight calls in an idle hour are also call.off_hours' Min.)
	if fs := h.obs(out("dev-1", at(3, 2, 2, 7), "+4930555", 0)); !slices.Equal(ruleNames(fs), []string{RuleCallVolume, RuleCallOffHours}) {
		t.Fatalf("8th call at 02:xx: %v, want call.volume and call.off_hours", ruleNames(fs))
	}
}

func TestCallVolumeWarmUp(t *testing.T) {
	h := newHarness(t, nil)
	// In its first week a device is learnt, not judged.
	for i := range 30 {
		h.quiet(out("dev-1", at(0, 2, 2, i), "+4930555", 0))
	}
}

func TestCallNewCountry(t *testing.T) {
	h := newHarness(t, nil)
	os := office("dev-1", 2)
	// +33 becomes established: called on 3 days more than a week apart.
	for _, d := range []int{0, 3, 8} {
		os = append(os, out("dev-1", at(d/7, d%7, 11, 7), "+33142685300", 2*time.Minute))
	}
	h.quietSorted(os...)
	h.quiet(out("dev-1", at(2, 0, 11, 0), "+33142685300", 40*time.Minute))
	// A short call to a new country stays under the threshold; a second
	// one takes the day's minutes to 31.
	h.quiet(out("dev-1", at(2, 0, 12, 0), "+37167012345", 5*time.Minute))
	fs := h.obs(out("dev-1", at(2, 0, 14, 0), "+37167012346", 26*time.Minute))
	f, ok := hasRule(fs, RuleCallNewCountry)
	if !ok || evidence(f, "answered_minutes") != "31" || evidence(f, "countries") != "+371" || evidence(f, "calls_to_new_numbers") != "2" {
		t.Fatalf("31 minutes to +371: %+v, want call.new_country", fs)
	}
	if fs[0].Severity != SeverityWarning {
		t.Fatalf("severity %v", fs[0].Severity)
	}
}

func TestCallNewCountryFleetCommon(t *testing.T) {
	h := newHarness(t, nil)
	// Three devices of four call +44 regularly: established fleet-wide.
	var os []Observation
	for i := range 4 {
		os = append(os, Registration{Device: fmt.Sprintf("dev-%d", i), Time: t0, Source: site})
	}
	for i := range 3 {
		for _, d := range []int{0, 4, 8} {
			os = append(os, out(fmt.Sprintf("dev-%d", i), at(d/7, d%7, 10, i), "+442071234567", time.Minute))
		}
	}
	h.quietSorted(os...)
	h.quiet(out("dev-3", at(1, 3, 10, 0), "+442071234999", 50*time.Minute))
	// A country only two devices have is not common: dev-3 is flagged.
	h.quietSorted(out("dev-0", at(1, 4, 9, 0), "+3612345678", time.Minute), out("dev-1", at(1, 4, 9, 1), "+3612345678", time.Minute))
	if _, ok := hasRule(h.obs(out("dev-3", at(1, 4, 10, 0), "+3612345699", 50*time.Minute)), RuleCallNewCountry); !ok {
		t.Fatalf("50 minutes to +36: want call.new_country")
	}
}

func TestCallOffHours(t *testing.T) {
	h := newHarness(t, nil)
	h.officeWeeks("dev-1", 2)
	// 40 + 25 answered minutes at 03:00, where the device never calls.
	h.quiet(out("dev-1", at(2, 2, 3, 0), "+4930111", 40*time.Minute))
	fs := h.obs(out("dev-1", at(2, 2, 3, 50), "+4930111", 25*time.Minute))
	f, ok := hasRule(fs, RuleCallOffHours)
	if !ok || evidence(f, "answered_minutes") != "65" {
		t.Fatalf("65 minutes at 03:00: %+v, want call.off_hours", fs)
	}
	// In working hours the same is nothing.
	h.quiet(out("dev-1", at(2, 3, 10, 0), "+4930111", 40*time.Minute), out("dev-1", at(2, 3, 11, 0), "+4930111", 25*time.Minute))
}

func TestCallLong(t *testing.T) {
	h := newHarness(t, nil)
	h.officeWeeks("dev-1", 1)
	h.obs(out("dev-1", at(1, 0, 9, 0), "+4930000001", time.Minute))
	// Two hours to a colleague: a habit, not a finding.
	h.quiet(out("dev-1", at(1, 0, 10, 0), "+4930000001", 130*time.Minute))
	fs := h.obs(out("dev-1", at(1, 0, 13, 0), "+4989765432", 130*time.Minute))
	f, ok := hasRule(fs, RuleCallLong)
	if !ok || evidence(f, "minutes") != "130" || evidence(f, "new_number") != "true" || evidence(f, "limit_minutes") != "120.00" {
		t.Fatalf("130 minutes to a new number: %+v, want call.long", fs)
	}
	if len(f.Responses) != 0 {
		t.Fatalf("call.long alerts by default: %+v", f.Responses)
	}
}

func TestRegistrationRules(t *testing.T) {
	h := newHarness(t, nil)
	h.quietSorted(append(office("dev-1", 1), office("dev-2", 1)...)...)
	hotel := netip.MustParseAddr("203.0.113.5")
	// A traveller: one switch to a network nobody saw.
	fs := h.obs(Registration{Device: "dev-1", Time: at(1, 0, 8, 0), Source: hotel})
	if got := ruleNames(fs); !slices.Equal(got, []string{RuleFleetNewNetwork, RuleRegNewNetwork}) {
		t.Fatalf("hotel registration: %v, want fleet.new_network and reg.new_network", got)
	}
	if fs[1].Source != netip.MustParsePrefix("203.0.113.0/24") || len(fs[1].Responses) != 0 {
		t.Fatalf("reg.new_network = %+v", fs[1])
	}
	h.quiet(Registration{Device: "dev-1", Time: at(1, 0, 8, 30), Source: hotel})
	// Another device in the same /24: new to it, not to the fleet.
	if got := ruleNames(h.obs(Registration{Device: "dev-2", Time: at(1, 0, 9, 0), Source: netip.MustParseAddr("203.0.113.77")})); !slices.Equal(got, []string{RuleRegNewNetwork}) {
		t.Fatalf("second device in the hotel: %v", got)
	}
	// dev-2 goes back to the office; the hotel's registrant keeps
	// going: two switches within the hour, one network not
	// established.
	h.quiet(Registration{Device: "dev-2", Time: at(1, 0, 9, 20), Source: site})
	fs = h.obs(Registration{Device: "dev-2", Time: at(1, 0, 9, 40), Source: netip.MustParseAddr("203.0.113.77")})
	f, ok := hasRule(fs, RuleRegHijack)
	if !ok || f.Source != netip.MustParsePrefix("203.0.113.0/24") || evidence(f, "switches") != "2" {
		t.Fatalf("alternating registrations: %+v, want reg.hijack", fs)
	}
	// Both established (a phone failing over between two lines): no
	// finding.
	lte := netip.MustParseAddr("192.0.2.99")
	h2 := newHarness(t, nil)
	for d := range 8 {
		h2.quiet(Registration{Device: "dev-3", Time: at(0, d, 12, 0), Source: site}, Registration{Device: "dev-3", Time: at(0, d, 12, 30), Source: lte})
	}
	h2.quiet(Registration{Device: "dev-3", Time: at(1, 1, 12, 0), Source: site},
		Registration{Device: "dev-3", Time: at(1, 1, 12, 10), Source: lte},
		Registration{Device: "dev-3", Time: at(1, 1, 12, 20), Source: site})
}

func TestAuthFailures(t *testing.T) {
	h := newHarness(t, nil)
	fail := func(dev string, tm time.Time, peer netip.Addr) SecurityEvent {
		return SecurityEvent{Device: dev, Time: tm, Kind: KindSIPAuthFailure, Peer: peer}
	}
	guesser := netip.MustParseAddr("45.1.2.3")
	for i := range 9 {
		h.quiet(fail("dev-1", at(0, 1, 10, i), guesser))
	}
	f, ok := hasRule(h.obs(fail("dev-1", at(0, 1, 10, 9), guesser)), RuleAuthFailures)
	if !ok || evidence(f, "failures_this_hour") != "10" {
		t.Fatalf("10th failure in the hour: %+v, want auth.failures", f)
	}
	// A device whose registrar rejects it 5 times an hour for two weeks
	// has learnt that rate: the limit is its EWMA plus 6 deviations.
	for hr := range 14 * 24 {
		tm := at(1, 0, 0, 0).Add(time.Duration(hr) * time.Hour)
		for k := range 5 {
			h.quiet(SecurityEvent{Device: "dev-2", Time: tm.Add(time.Duration(k) * time.Minute), Kind: KindSIPAuthFailure, Peer: registra})
		}
	}
	h.quiet(SecurityEvent{Device: "dev-2", Time: at(3, 0, 0, 10), Kind: KindSIPAuthFailure, Peer: registra})
	dev, _ := h.d.st.devices.peek("dev-2")
	limit := dev.auth.Mean + 6*max(dev.auth.Dev, 1)
	if dev.auth.Mean < 4 || limit < 11 {
		t.Fatalf("learnt rate %+v, limit %v: want most of the way to 5 an hour", dev.auth, limit)
	}
	n := 1
	for ; float64(n+1) <= limit; n++ {
		h.quiet(SecurityEvent{Device: "dev-2", Time: at(3, 0, 0, 10+n), Kind: KindSIPAuthFailure, Peer: registra})
	}
	if _, ok := hasRule(h.obs(SecurityEvent{Device: "dev-2", Time: at(3, 0, 0, 40), Kind: KindSIPAuthFailure, Peer: registra}), RuleAuthFailures); !ok {
		t.Fatalf("%d failures against a limit of %v: want auth.failures", n+1, limit)
	}
}

func TestFleetProbe(t *testing.T) {
	h := newHarness(t, nil)
	probe := func(dev int, tm time.Time, peer string) SecurityEvent {
		return SecurityEvent{Device: fmt.Sprintf("dev-%d", dev), Time: tm, Kind: KindScanner, Peer: netip.MustParseAddr(peer), Count: 3}
	}
	// Four phones probed from one /24 (two addresses), then a fifth.
	for i := range 4 {
		h.quiet(probe(i, at(0, 0, 1, i*5), fmt.Sprintf("185.1.2.%d", 1+i%2)))
	}
	// The registrar's network is never a prober; a phone an hour later
	// is outside the window for the first.
	h.quiet(probe(9, at(0, 0, 1, 21), "81.0.1.10"))
	fs := h.obs(probe(4, at(0, 0, 1, 30), "185.1.2.200"))
	f, ok := hasRule(fs, RuleFleetProbe)
	if !ok || len(f.Devices) != 5 || f.Source != netip.MustParsePrefix("185.1.2.0/24") || evidence(f, "events_total") != "15" {
		t.Fatalf("5th phone probed: %+v, want fleet.probe naming 5 devices", fs)
	}
	h.quiet(probe(5, at(0, 0, 2, 4), "185.1.2.1")) // window holds dev-1..5: cooling down
}

func TestFleetAuth(t *testing.T) {
	h := newHarness(t, nil)
	fail := func(dev int, tm time.Time, peer string) SecurityEvent {
		return SecurityEvent{Device: fmt.Sprintf("dev-%d", dev), Time: tm, Kind: KindSIPAuthFailure, Peer: netip.MustParseAddr(peer)}
	}
	// One source, five accounts: fleet.auth_spray.
	for i := range 4 {
		h.quiet(fail(i, at(0, 0, 3, i), "45.9.9.9"))
	}
	if f, ok := hasRule(h.obs(fail(4, at(0, 0, 3, 4), "45.9.9.9")), RuleFleetAuthSpray); !ok || len(f.Devices) != 5 {
		t.Fatalf("5th account from one source: %+v, want fleet.auth_spray", f)
	}
	// A botnet, one account per address: fleet.auth_burst once ten
	// devices fail within the hour (the five above count).
	for i := 5; i < 9; i++ {
		h.quiet(fail(i, at(0, 0, 3, 10+i), fmt.Sprintf("60.%d.1.1", i)))
	}
	if f, ok := hasRule(h.obs(fail(9, at(0, 0, 3, 30), "60.99.1.1")), RuleFleetAuthBurst); !ok || evidence(f, "devices") != "10" {
		t.Fatalf("10th device: %+v, want fleet.auth_burst", f)
	}
	// The registrar rejecting many phones is an outage: no fleet rule.
	for i := range 30 {
		h.quiet(fail(100+i, at(1, 0, 3, i), "81.0.1.10"))
	}
}

func TestCredentialBurst(t *testing.T) {
	h := newHarness(t, nil)
	change := func(dev int, tm time.Time) CredentialChange {
		return CredentialChange{Device: fmt.Sprintf("dev-%d", dev), Time: tm, What: "sip_password", Actor: "admin-mallory"}
	}
	// One device changed ten times is no burst.
	for i := range 10 {
		h.quiet(change(0, at(0, 0, 10, i)))
	}
	for i := 1; i < 9; i++ {
		h.quiet(change(i, at(0, 0, 10, 10+i)))
	}
	f, ok := hasRule(h.obs(change(9, at(0, 0, 10, 30))), RuleFleetCredentialBurst)
	if !ok || evidence(f, "devices") != "10" || evidence(f, "latest_actor") != "admin-mallory" || f.Severity != SeverityError {
		t.Fatalf("10th device's credentials: %+v, want fleet.credential_burst", f)
	}
}

// TestCredentialBurstBaseline: a fleet that changes 20 credentials every
// Monday at 10:00 has that in its baseline.
func TestCredentialBurstBaseline(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		r := c.Rules[RuleFleetCredentialBurst]
		r.Cooldown = 0
		c.Rules[RuleFleetCredentialBurst] = r
	})
	var fired []int
	for w := range 3 {
		for i := range 20 {
			fs := h.obs(CredentialChange{Device: fmt.Sprintf("dev-%d", i), Time: at(w, 0, 10, i), What: "sip_password"})
			if len(fs) > 0 {
				fired = append(fired, w)
			}
		}
		// Keep the fleet's hours moving.
		h.quiet(Registration{Device: "dev-x", Time: at(w, 6, 23, 0), Source: site})
	}
	// Week 0 has no baseline (Min 10 alone): it fires from the 10th
	// change on. Week 1's limit is 20 + 6·√20; nothing fires.
	if want := []int{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}; !slices.Equal(fired, want) {
		t.Fatalf("weeks with findings = %v, want %v", fired, want)
	}
}
