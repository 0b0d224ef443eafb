package sim

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/hardphone/hardphone/fleet/anomaly"
)

// Attack counts per type.
const (
	nTollFraud          = 8
	nSlowFraud          = 8
	nScannerSweep       = 8
	nCredentialStuffing = 6
	nPasswordGuessing   = 4
	nRegHijack          = 8
	nCredentialBurst    = 3
)

// firstAttackDay: attacks start after the detector's week of warm-up and
// a day more.
const firstAttackDay = 9

func (g *gen) attacksAll() {
	for i := range nTollFraud {
		g.tollFraud(i)
	}
	for i := range nSlowFraud {
		g.slowFraud(i)
	}
	for i := range nScannerSweep {
		g.scannerSweep(i)
	}
	for i := range nCredentialStuffing {
		g.credentialStuffing(i)
	}
	for i := range nPasswordGuessing {
		g.passwordGuessing(i)
	}
	for i := range nRegHijack {
		g.regHijack(i)
	}
	for i := range nCredentialBurst {
		g.credentialBurst(i)
	}
}

func (g *gen) label(a Attack) {
	a.ID = len(g.attacks) + 1
	g.attacks = append(g.attacks, a)
}

// victim picks a phone of one of the profiles that no attack chose yet.
func (g *gen) victim(profs ...profile) *phone {
	for {
		p := pick(g.r, g.phones)
		ok := false
		for _, pr := range profs {
			ok = ok || p.prof == pr
		}
		taken := false
		for _, a := range g.attacks {
			if len(a.Devices) == 1 && a.Devices[0] == p.id {
				taken = true
			}
		}
		if ok && !taken {
			return p
		}
	}
}

// tollFraud: a compromised account calls premium or high-cost
// international numbers, 15 to 60 calls an hour for 2 to 6 hours, at
// night or on a weekend day; half the attackers register from their own
// network first.
func (g *gen) tollFraud(i int) {
	p := g.victim(office, homeOffice, lobby, nightShift)
	var start time.Time
	if i%4 == 3 {
		var weekend []int
		for d := firstAttackDay; d < g.cfg.Days-1; d++ {
			if g.weekday(d) >= 5 {
				weekend = append(weekend, d)
			}
		}
		start = g.at(pick(g.r, weekend), 9*60+g.r.intn(6*60), 0)
	} else {
		d := g.r.between(firstAttackDay, g.cfg.Days-2)
		start = g.at(d, 22*60+g.r.intn(4*60), 0)
	}
	end := start.Add(time.Duration(g.r.between(2, 6)) * time.Hour)
	var numbers []string
	for range g.r.between(2, 6) {
		if i%2 == 0 {
			r := pick(g.r, premiumRanges)
			numbers = append(numbers, r+g.r.digits(12-len(r)+2))
		} else {
			numbers = append(numbers, g.number(pick(g.r, irsfCountries)))
		}
	}
	a := Attack{Type: TollFraud, Devices: []string{p.id}, Start: start, End: end}
	if i%2 == 0 {
		src := g.addrIn(g.newNet(attackNets))
		a.Sources = []netip.Addr{src}
		a.Start = start.Add(-10 * time.Minute)
		for t := a.Start; t.Before(end); t = t.Add(20 * time.Minute) {
			g.add(anomaly.Registration{Device: p.id, Time: t, Source: src})
		}
		a.Note = "premium ranges, attacker registered"
	} else {
		a.Note = "international ranges on no list, through the PBX"
	}
	rate := float64(g.r.between(15, 60))
	for t := start; t.Before(end); t = t.Add(time.Duration(g.r.exp(3600/rate)) * time.Second) {
		var dur time.Duration
		ok := g.r.chance(0.9)
		if ok {
			if g.r.chance(0.5) {
				dur = time.Duration(g.r.between(10, 60)) * time.Second
			} else {
				dur = time.Duration(g.r.between(300, 2400)) * time.Second
			}
		}
		g.add(anomaly.Call{Device: p.id, Time: t, Direction: anomaly.Outbound, Number: pick(g.r, numbers), Duration: anomaly.Duration(dur), Answered: ok})
	}
	g.label(a)
}

// slowFraud: 1 to 4 answered calls a day, 8 to 45 minutes each, to one
// or two numbers of a country the device never called, for 4 to 10 days,
// half in business hours: far under the phone's caps.
func (g *gen) slowFraud(int) {
	p := g.victim(office, homeOffice)
	first := g.r.between(firstAttackDay, g.cfg.Days-5)
	last := min(first+g.r.between(4, 10), g.cfg.Days) - 1
	country := pick(g.r, irsfCountries)
	numbers := []string{g.number(country)}
	if g.r.chance(0.5) {
		numbers = append(numbers, g.number(country))
	}
	a := Attack{Type: SlowFraud, Devices: []string{p.id}, Note: fmt.Sprintf("%s, %d numbers", country, len(numbers))}
	for d := first; d <= last; d++ {
		for range g.r.between(1, 4) {
			var t time.Time
			if g.r.chance(0.5) {
				t = g.at(d, 9*60+g.r.intn(8*60), g.r.intn(60))
			} else {
				t = g.at(d, 18*60+g.r.intn(5*60), g.r.intn(60))
			}
			dur := time.Duration(g.r.between(8, 45)) * time.Minute
			g.add(anomaly.Call{Device: p.id, Time: t, Direction: anomaly.Outbound, Number: pick(g.r, numbers), Duration: anomaly.Duration(dur), Answered: true})
			if a.Start.IsZero() || t.Before(a.Start) {
				a.Start = t
			}
			if e := t.Add(dur); e.After(a.End) {
				a.End = e
			}
		}
	}
	g.label(a)
}

func (g *gen) exposedPhones() []*phone {
	var out []*phone
	for _, p := range g.phones {
		if p.exposed {
			out = append(out, p)
		}
	}
	return out
}

// scannerSweep: one address probes 8 or more of the exposed phones (the
// others sit behind the SBC), in 10 to 60 minutes, or slowly over 3 to 4
// hours.
func (g *gen) scannerSweep(i int) {
	exposed := g.exposedPhones()
	src := g.addrIn(g.newNet(scanNets))
	d := g.r.between(firstAttackDay, g.cfg.Days-1)
	start := g.at(d, g.r.intn(20*60), 0)
	span := time.Duration(g.r.between(10, 60)) * time.Minute
	if i >= 6 {
		span = time.Duration(g.r.between(180, 240)) * time.Minute
	}
	n := min(len(exposed), g.r.between(8, 30))
	order := g.r.perm(len(exposed))
	a := Attack{Type: ScannerSweep, Sources: []netip.Addr{src}, Start: start, End: start.Add(span), Note: fmt.Sprintf("%d phones over %v", n, span)}
	for _, k := range order[:n] {
		p := exposed[k]
		a.Devices = append(a.Devices, p.id)
		for range g.r.between(1, 6) {
			g.add(anomaly.SecurityEvent{Device: p.id, Time: start.Add(time.Duration(g.r.intn(int(span/time.Second))) * time.Second),
				Kind: pick(g.r, probeKindsPool), Peer: src, Count: g.r.between(1, 4)})
		}
	}
	g.label(a)
}

// perm returns a permutation of [0, n).
func (r *rng) perm(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := r.intn(i + 1)
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// credentialStuffing: leaked passwords tried against 40 to 120 accounts
// in 10 to 30 minutes, one or two tries each, from one address or from a
// botnet of 30 to 80 (the registrar reports each failure for the
// account's device).
func (g *gen) credentialStuffing(i int) {
	d := g.r.between(firstAttackDay, g.cfg.Days-1)
	start := g.at(d, g.r.intn(23*60), 0)
	span := time.Duration(g.r.between(10, 30)) * time.Minute
	var srcs []netip.Addr
	if i%2 == 0 {
		srcs = []netip.Addr{g.addrIn(g.newNet(attackNets))}
	} else {
		for range g.r.between(30, 80) {
			srcs = append(srcs, g.addrIn(g.newNet(botNets)))
		}
	}
	n := min(g.r.between(40, 120), len(g.phones))
	a := Attack{Type: CredentialStuffing, Sources: srcs, Start: start, End: start.Add(span), Note: fmt.Sprintf("%d accounts, %d sources", n, len(srcs))}
	for _, k := range g.r.perm(len(g.phones))[:n] {
		p := g.phones[k]
		a.Devices = append(a.Devices, p.id)
		for range g.r.between(1, 2) {
			g.add(anomaly.SecurityEvent{Device: p.id, Time: start.Add(time.Duration(g.r.intn(int(span/time.Second))) * time.Second),
				Kind: anomaly.KindSIPAuthFailure, Peer: pick(g.r, srcs)})
		}
	}
	g.label(a)
}

// passwordGuessing: one address guesses one account's password, 30 to
// 300 tries in 20 to 90 minutes.
func (g *gen) passwordGuessing(int) {
	p := g.victim(office, homeOffice, traveller, lobby)
	d := g.r.between(firstAttackDay, g.cfg.Days-1)
	start := g.at(d, g.r.intn(22*60), 0)
	span := time.Duration(g.r.between(20, 90)) * time.Minute
	src := g.addrIn(g.newNet(attackNets))
	n := g.r.between(30, 300)
	for range n {
		g.add(anomaly.SecurityEvent{Device: p.id, Time: start.Add(time.Duration(g.r.intn(int(span/time.Second))) * time.Second),
			Kind: anomaly.KindSIPAuthFailure, Peer: src})
	}
	g.label(Attack{Type: PasswordGuessing, Devices: []string{p.id}, Sources: []netip.Addr{src}, Start: start, End: start.Add(span), Note: fmt.Sprintf("%d tries", n)})
}

// regHijack: an attacker with the account's password registers from its
// own network every 10 to 25 minutes for 1 to 8 hours, while the desk
// phone keeps registering (or, for a traveller, at night while the
// laptop is off); half of them also place a few international calls.
func (g *gen) regHijack(i int) {
	var p *phone
	var start time.Time
	d := g.r.between(firstAttackDay, g.cfg.Days-1)
	if i < 6 {
		p = g.victim(office, homeOffice)
		start = g.at(d, g.r.intn(20*60), 0)
	} else {
		p = g.victim(traveller)
		start = g.at(d, 60+g.r.intn(3*60), 0)
	}
	end := start.Add(time.Duration(g.r.between(1, 8)) * time.Hour)
	src := g.addrIn(g.newNet(attackNets))
	for t := start; t.Before(end); t = t.Add(time.Duration(g.r.between(10, 25)) * time.Minute) {
		g.add(anomaly.Registration{Device: p.id, Time: t, Source: src})
	}
	note := "desk phone online"
	if i >= 6 {
		note = "softphone offline"
	}
	if g.r.chance(0.5) {
		note += ", calls"
		for range g.r.between(2, 5) {
			t := start.Add(time.Duration(g.r.intn(int(end.Sub(start)/time.Second))) * time.Second)
			g.add(anomaly.Call{Device: p.id, Time: t, Direction: anomaly.Outbound, Number: g.number(pick(g.r, irsfCountries)),
				Duration: anomaly.Duration(time.Duration(g.r.between(2, 15)) * time.Minute), Answered: true})
		}
	}
	g.label(Attack{Type: RegHijack, Devices: []string{p.id}, Sources: []netip.Addr{src}, Start: start, End: end, Note: note})
}

// credentialBurst: a compromised admin account changes the passwords of
// 15 to 60 phones in 5 to 30 minutes (the phones are then rejected by the
// registrar).
func (g *gen) credentialBurst(int) {
	d := g.r.between(firstAttackDay, g.cfg.Days-1)
	start := g.at(d, g.r.intn(23*60), 0)
	span := time.Duration(g.r.between(5, 30)) * time.Minute
	n := min(g.r.between(15, 60), len(g.phones))
	a := Attack{Type: CredentialBurst, Start: start, End: start.Add(span), Note: fmt.Sprintf("%d phones", n)}
	for _, k := range g.r.perm(len(g.phones))[:n] {
		p := g.phones[k]
		a.Devices = append(a.Devices, p.id)
		g.change(p, start.Add(time.Duration(g.r.intn(int(span/time.Second)))*time.Second), "admin-mallory")
	}
	g.label(a)
}
