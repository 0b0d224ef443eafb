package sim

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"time"

	"github.com/hardphone/hardphone/fleet/anomaly"
)

// Config sizes the generated traffic.
type Config struct {
	// Seed fixes every random choice.
	Seed uint64
	// Devices is the fleet's size (at least 50: the attacks need victims).
	Devices int
	// Days is how long the traffic runs (at least 21: attacks start after
	// the detector's week of warm-up).
	Days int
	// Start is a Monday 00:00 UTC (the fleet's offices keep UTC).
	Start time.Time
}

// DefaultConfig is the evaluation the README reports: 300 phones, 30
// days from Monday 2025-03-03, seed 1.
func DefaultConfig() Config {
	return Config{Seed: 1, Devices: 300, Days: 30, Start: time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)}
}

// Attack types.
const (
	TollFraud          = "toll_fraud"
	SlowFraud          = "slow_fraud"
	ScannerSweep       = "scanner_sweep"
	CredentialStuffing = "credential_stuffing"
	PasswordGuessing   = "password_guessing"
	RegHijack          = "reg_hijack"
	CredentialBurst    = "credential_burst"
)

// AttackTypes lists the types in the order tables show them.
var AttackTypes = []string{TollFraud, SlowFraud, ScannerSweep, CredentialStuffing, PasswordGuessing, RegHijack, CredentialBurst}

// Attack is one labelled attack in the stream.
type Attack struct {
	ID   int
	Type string
	// Devices are the victims (targets of a sweep, accounts tried).
	Devices []string
	// Sources are the attacker's addresses (empty when it acts through the
	// PBX with stolen credentials or through the fleet's admin API).
	Sources []netip.Addr
	// Start and End bound what the attacker did.
	Start, End time.Time
	Note       string
}

// Stream is generated traffic: observations in time order and the
// attacks mixed into them.
type Stream struct {
	Config       Config
	Observations []anomaly.Observation
	Attacks      []Attack
	// HomeCountry is the fleet's country; Infrastructure the registrar's
	// network (its rejections of phones are not attacks).
	HomeCountry    string
	Infrastructure []netip.Prefix
	DeviceIDs      []string
	// Profiles says what kind of phone each device is (office,
	// home_office, traveller, night_shift, call_centre, lobby).
	Profiles map[string]string
}

type profile int

const (
	office profile = iota
	homeOffice
	traveller
	nightShift
	callCentre
	lobby
)

var profileNames = [...]string{"office", "home_office", "traveller", "night_shift", "call_centre", "lobby"}

type trip struct {
	from, to int // days [from, to)
	country  string
	hotels   []netip.Addr // one per stay
	switchAt int          // day the second hotel starts (to when one)
	numbers  []string     // local numbers called there
}

type phone struct {
	id       string
	prof     profile
	site     netip.Addr
	home     netip.Addr
	dynamic  bool
	exposed  bool
	rate     float64 // outbound calls per working hour
	startMin int     // working day, minutes after midnight
	endMin   int
	contacts []string
	partners []string
	vacFrom  int // vacation days [vacFrom, vacTo); -1 none
	vacTo    int
	trips    []trip
}

type item struct {
	t   int64
	seq int
	o   anomaly.Observation
}

type gen struct {
	cfg       Config
	r         *rng
	items     []item
	phones    []*phone
	attacks   []Attack
	holidays  map[int]bool
	usedNets  map[[3]byte]bool
	registrar netip.Addr
	sites     []netip.Addr
}

const home = "+49"

// Country pools.
var (
	partnerCountries = []string{"+43", "+41", "+33", "+44", "+31", "+1", "+39", "+34", "+48", "+45"}
	travelCountries  = []string{"+34", "+39", "+1", "+44", "+46", "+81", "+65", "+351", "+30"}
	rareCountries    = []string{"+36", "+420", "+30", "+351", "+353", "+358", "+47", "+90", "+86", "+91", "+61", "+55", "+52", "+27", "+971"}
	// Toll-fraud destinations: premium ranges on the phone's default list
	// and high-cost international ranges on no list.
	premiumRanges   = []string{"+8816", "+88213", "+88237", "+4490", "+1900", "+87077"}
	irsfCountries   = []string{"+53", "+252", "+371", "+225", "+232", "+677", "+960", "+880", "+234", "+221", "+216"}
	probeKindsPool  = []string{anomaly.KindScanner, anomaly.KindScanner, anomaly.KindScanner, anomaly.KindForeignSource, anomaly.KindForeignSource, anomaly.KindINVITEFlood}
	backgroundKinds = []string{anomaly.KindScanner, anomaly.KindScanner, anomaly.KindForeignSource, anomaly.KindINVITEFlood, anomaly.KindChallengeRefused}
)

// Generate builds the stream for cfg. The same Config gives the same
// stream.
func Generate(cfg Config) (Stream, error) {
	if cfg.Devices < 50 || cfg.Devices > 100000 || cfg.Days < 21 || cfg.Days > 120 {
		return Stream{}, fmt.Errorf("sim: %d devices over %d days: want 50..100000 devices and 21..120 days", cfg.Devices, cfg.Days)
	}
	if cfg.Start.Weekday() != time.Monday || cfg.Start.Location() != time.UTC || cfg.Start.Hour() != 0 || cfg.Start.Minute() != 0 || cfg.Start.Second() != 0 || cfg.Start.Nanosecond() != 0 {
		return Stream{}, fmt.Errorf("sim: start %v: want a Monday 00:00 UTC", cfg.Start)
	}
	g := &gen{cfg: cfg, r: newRNG(cfg.Seed, 0x6861726470686f6e), holidays: map[int]bool{14: true, 25: true}, usedNets: map[[3]byte]bool{}}
	g.registrar = netip.AddrFrom4([4]byte{81, 0, 1, 10})
	g.usedNets[[3]byte{81, 0, 1}] = true
	for i := range 4 {
		g.sites = append(g.sites, g.addrIn([3]byte{81, 0, byte(10 + i)}))
	}
	g.makePhones()
	for _, p := range g.phones {
		g.registrations(p)
		for d := range cfg.Days {
			g.callsOn(p, d)
		}
		g.background(p)
	}
	g.credentialChanges()
	g.registrarHiccup()
	g.attacksAll()

	slices.SortFunc(g.items, func(a, b item) int {
		if c := cmp.Compare(a.t, b.t); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	s := Stream{Config: cfg, Attacks: g.attacks, HomeCountry: home,
		Infrastructure: []netip.Prefix{netip.PrefixFrom(g.registrar, 24).Masked()}}
	end := cfg.Start.Add(time.Duration(cfg.Days) * 24 * time.Hour).Unix()
	for _, it := range g.items {
		if it.t >= cfg.Start.Unix() && it.t < end {
			s.Observations = append(s.Observations, it.o)
		}
	}
	s.Profiles = make(map[string]string, len(g.phones))
	for _, p := range g.phones {
		s.DeviceIDs = append(s.DeviceIDs, p.id)
		s.Profiles[p.id] = profileNames[p.prof]
	}
	return s, nil
}

func (g *gen) add(o anomaly.Observation) {
	g.items = append(g.items, item{t: o.At().Unix(), seq: len(g.items), o: o})
}

func (g *gen) day(d int) time.Time { return g.cfg.Start.Add(time.Duration(d) * 24 * time.Hour) }

// at is day d plus minutes and seconds.
func (g *gen) at(d, minute, second int) time.Time {
	return g.day(d).Add(time.Duration(minute)*time.Minute + time.Duration(second)*time.Second)
}

func (g *gen) weekday(d int) int { return d % 7 } // 0 Monday .. 6 Sunday

func (g *gen) workday(d int) bool { return g.weekday(d) < 5 && !g.holidays[d] }

// newNet hands out a /24 never handed out before, its first octet from
// firsts (so the categories of networks never meet).
func (g *gen) newNet(firsts []byte) [3]byte {
	for {
		n := [3]byte{pick(g.r, firsts), byte(g.r.intn(256)), byte(g.r.intn(256))}
		if !g.usedNets[n] {
			g.usedNets[n] = true
			return n
		}
	}
}

// newNetIn16 hands out a /24 of a given /16 never handed out before.
func (g *gen) newNetIn16(a, b byte) [3]byte {
	for {
		n := [3]byte{a, b, byte(g.r.intn(256))}
		if !g.usedNets[n] {
			g.usedNets[n] = true
			return n
		}
	}
}

func (g *gen) addrIn(n [3]byte) netip.Addr {
	g.usedNets[n] = true
	return netip.AddrFrom4([4]byte{n[0], n[1], n[2], byte(g.r.between(1, 254))})
}

var (
	homeISPs   = []byte{82, 83, 84, 87}
	hotelNets  = []byte{88, 89, 90, 92, 93, 94, 95}
	attackNets = []byte{45, 46, 5}
	scanNets   = []byte{185, 193, 194}
	noiseNets  = []byte{101, 102, 103, 104, 105, 106, 107, 108, 109, 121, 122, 123, 124, 125, 126}
	botNets    = []byte{36, 37, 39, 41, 49, 59, 60, 61, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119}
)

// number returns a number in country; its first digit is 2 to 7, which
// keeps ordinary numbers out of the premium, mobile-rate and service
// ranges (+49 900, +1 900, +44 9, +33 89, ...).
func (g *gen) number(country string) string {
	first := string(rune('2' + g.r.intn(6)))
	if country == home {
		return home + first + g.r.digits(g.r.between(1, 3)) + g.r.digits(g.r.between(6, 7))
	}
	return country + first + g.r.digits(g.r.between(7, 8))
}

func (g *gen) makePhones() {
	for i := range g.cfg.Devices {
		p := &phone{id: fmt.Sprintf("dev-%04d", i), vacFrom: -1, vacTo: -1}
		switch u := g.r.intn(100); {
		case u < 70:
			p.prof = office
		case u < 78:
			p.prof = homeOffice
		case u < 88:
			p.prof = traveller
		case u < 92:
			p.prof = nightShift
		case u < 97:
			p.prof = callCentre
		default:
			p.prof = lobby
		}
		p.site = g.sites[g.r.intn(len(g.sites))]
		hn := g.newNet(homeISPs)
		p.home = g.addrIn(hn)
		switch p.prof {
		case office:
			p.rate = 0.3 + g.r.exp(0.9)
			p.exposed = g.r.chance(0.08)
		case homeOffice:
			p.rate = 0.3 + g.r.exp(0.7)
			p.exposed = g.r.chance(0.5)
			p.dynamic = g.r.chance(0.33)
		case traveller:
			p.rate = 0.2 + g.r.exp(0.6)
		case nightShift:
			p.rate = 0.5 + g.r.exp(0.7)
		case callCentre:
			p.rate = float64(g.r.between(9, 14))
		case lobby:
			p.rate = 0.15
		}
		p.rate = min(p.rate, 6)
		p.startMin = 7*60 + g.r.between(0, 120)
		p.endMin = p.startMin + 8*60 + g.r.between(0, 120)
		for range g.r.between(0, 3) {
			if c := pick(g.r, partnerCountries); !slices.Contains(p.partners, c) {
				p.partners = append(p.partners, c)
			}
		}
		for range g.r.between(20, 80) {
			c := home
			if len(p.partners) > 0 && g.r.chance(0.15) {
				c = pick(g.r, p.partners)
			}
			p.contacts = append(p.contacts, g.number(c))
		}
		if p.prof != callCentre && p.prof != lobby && g.r.chance(0.15) {
			p.vacFrom = g.r.between(0, g.cfg.Days-7)
			p.vacTo = p.vacFrom + 7
		}
		if p.prof == traveller {
			next := g.r.between(3, 12)
			for next < g.cfg.Days-2 && len(p.trips) < 2 {
				t := trip{from: next, to: min(next+g.r.between(2, 5), g.cfg.Days), country: pick(g.r, travelCountries)}
				t.hotels = append(t.hotels, g.addrIn(g.newNet(hotelNets)))
				t.switchAt = t.to
				if t.to-t.from >= 3 && g.r.chance(0.3) {
					t.switchAt = t.from + 2
					t.hotels = append(t.hotels, g.addrIn(g.newNet(hotelNets)))
				}
				for range 5 {
					t.numbers = append(t.numbers, g.number(t.country))
				}
				p.trips = append(p.trips, t)
				next = t.to + g.r.between(4, 10)
			}
		}
		g.phones = append(g.phones, p)
	}
	// A small fleet still has phones for the sweeps to find.
	exposed := 0
	for _, p := range g.phones {
		if p.exposed {
			exposed++
		}
	}
	for _, p := range g.phones {
		if exposed >= 10 {
			break
		}
		if !p.exposed {
			p.exposed = true
			exposed++
		}
	}
}

func (p *phone) onVacation(d int) bool { return d >= p.vacFrom && d < p.vacTo }

func (p *phone) tripOn(d int) *trip {
	for i := range p.trips {
		if d >= p.trips[i].from && d < p.trips[i].to {
			return &p.trips[i]
		}
	}
	return nil
}

func (t *trip) hotel(d int) netip.Addr {
	if d >= t.switchAt && len(t.hotels) > 1 {
		return t.hotels[1]
	}
	return t.hotels[0]
}

// registrations: desk phones register every 30 minutes, day and night;
// a traveller's softphone while the laptop is on.
func (g *gen) registrations(p *phone) {
	end := g.day(g.cfg.Days)
	if p.prof != traveller {
		src := p.site
		if p.prof == homeOffice {
			src = p.home
		}
		nextChange := g.cfg.Start.Add(time.Duration(g.r.between(3, 8)) * 24 * time.Hour)
		for t := g.cfg.Start.Add(time.Duration(g.r.intn(1800)) * time.Second); t.Before(end); t = t.Add(time.Duration(1800+g.r.between(-60, 60)) * time.Second) {
			if p.dynamic && !t.Before(nextChange) {
				a := src.As4()
				src = g.addrIn(g.newNetIn16(a[0], a[1]))
				nextChange = t.Add(time.Duration(g.r.between(3, 8)) * 24 * time.Hour)
			}
			g.add(anomaly.Registration{Device: p.id, Time: t, Source: src})
		}
		return
	}
	for d := range g.cfg.Days {
		var sessions [][3]int // from minute, to minute, kind (0 site, 1 home, 2 hotel)
		switch tr := p.tripOn(d); {
		case tr != nil:
			sessions = append(sessions, [3]int{7*60 + 30 + g.r.intn(60), 22*60 + g.r.intn(60), 2})
		case p.onVacation(d):
		case g.workday(d):
			sessions = append(sessions, [3]int{p.startMin - 15 + g.r.intn(30), p.endMin + g.r.intn(60), 0})
			if g.r.chance(0.3) {
				sessions = append(sessions, [3]int{19*60 + g.r.intn(60), 21*60 + g.r.intn(90), 1})
			}
		case g.r.chance(0.2):
			sessions = append(sessions, [3]int{10 * 60, 12*60 + g.r.intn(60), 1})
		}
		for _, s := range sessions {
			src := p.site
			switch s[2] {
			case 1:
				src = p.home
			case 2:
				src = p.tripOn(d).hotel(d)
			}
			for m := s[0] * 60; m < s[1]*60; m += 1800 + g.r.between(-60, 60) {
				g.add(anomaly.Registration{Device: p.id, Time: g.at(d, 0, m), Source: src})
			}
		}
	}
}

// segment is a stretch of a day with a call rate.
type segment struct {
	day, from, to int // minutes [from, to) of day
	rate          float64
	trip          *trip
}

func (g *gen) callsOn(p *phone, d int) {
	var segs []segment
	wd := g.weekday(d)
	switch p.prof {
	case nightShift:
		if wd < 5 {
			segs = append(segs, segment{day: d, from: 22 * 60, to: 24 * 60, rate: p.rate})
			if d+1 < g.cfg.Days {
				segs = append(segs, segment{day: d + 1, from: 0, to: 6 * 60, rate: p.rate})
			}
		}
	case callCentre:
		if g.workday(d) {
			segs = append(segs, segment{day: d, from: 8 * 60, to: 17 * 60, rate: p.rate})
		}
	case lobby:
		if g.workday(d) {
			segs = append(segs, segment{day: d, from: 8 * 60, to: 18 * 60, rate: p.rate})
		}
	default:
		if tr := p.tripOn(d); tr != nil {
			segs = append(segs, segment{day: d, from: 8 * 60, to: 20 * 60, rate: p.rate * 0.7, trip: tr})
			break
		}
		if p.onVacation(d) {
			break
		}
		switch {
		case g.workday(d):
			segs = append(segs, segment{day: d, from: p.startMin, to: 12 * 60, rate: p.rate},
				segment{day: d, from: 12 * 60, to: 13 * 60, rate: p.rate * 0.4},
				segment{day: d, from: 13 * 60, to: p.endMin, rate: p.rate})
			if g.r.chance(0.08) {
				m := g.r.between(18*60, 21*60)
				segs = append(segs, segment{day: d, from: m, to: m + 1, rate: 60})
			}
		case wd == 5 && g.r.chance(0.05):
			segs = append(segs, segment{day: d, from: 10 * 60, to: 14 * 60, rate: p.rate * 0.5})
		case g.r.chance(0.01):
			m := g.r.between(11*60, 17*60)
			segs = append(segs, segment{day: d, from: m, to: m + 1, rate: 60})
		}
	}
	dayFactor := 0.6 + 0.8*g.r.float()
	for _, s := range segs {
		hours := float64(s.to-s.from) / 60
		for range g.r.poisson(s.rate * hours * dayFactor) {
			t := g.at(s.day, 0, s.from*60+g.r.intn((s.to-s.from)*60))
			g.outbound(p, t, s.trip)
		}
		inRate := 0.7
		if p.prof == callCentre {
			inRate = 1.0
		}
		for range g.r.poisson(s.rate * inRate * hours * dayFactor) {
			t := g.at(s.day, 0, s.from*60+g.r.intn((s.to-s.from)*60))
			g.inbound(p, t)
		}
	}
}

func (g *gen) duration(p *phone) (time.Duration, bool) {
	answer := 0.8
	switch p.prof {
	case callCentre:
		answer = 0.7
	case lobby:
		answer = 0.6
	}
	if !g.r.chance(answer) {
		return 0, false
	}
	if g.r.chance(0.01) {
		return time.Duration(g.r.between(30, 150)) * time.Minute, true
	}
	s := math.Exp(math.Log(150) + 0.9*g.r.normal())
	return time.Duration(min(max(s, 5), 3*3600)) * time.Second, true
}

func (g *gen) outbound(p *phone, t time.Time, tr *trip) {
	var n string
	u := g.r.float()
	switch {
	case p.prof == callCentre:
		if u < 0.3 {
			n = p.contacts[int(float64(len(p.contacts))*g.r.float()*g.r.float())]
		} else {
			n = g.number(home)
		}
	case tr != nil && u < 0.3:
		n = pick(g.r, tr.numbers)
	case u < 0.86:
		n = p.contacts[int(float64(len(p.contacts))*g.r.float()*g.r.float())]
	case u < 0.975:
		n = g.number(home)
		if g.r.chance(0.3) {
			p.contacts = append(p.contacts, n)
		}
	case u < 0.998 && len(p.partners) > 0:
		n = g.number(pick(g.r, p.partners))
		p.contacts = append(p.contacts, n)
	case u < 0.998:
		n = g.number(home)
	default:
		n = g.number(pick(g.r, rareCountries))
	}
	dur, ok := g.duration(p)
	g.add(anomaly.Call{Device: p.id, Time: t, Direction: anomaly.Outbound, Number: n, Duration: anomaly.Duration(dur), Answered: ok})
}

func (g *gen) inbound(p *phone, t time.Time) {
	n := g.number(home)
	if g.r.chance(0.6) {
		n = pick(g.r, p.contacts)
	}
	dur, ok := g.duration(p)
	g.add(anomaly.Call{Device: p.id, Time: t, Direction: anomaly.Inbound, Number: n, Duration: anomaly.Duration(dur), Answered: ok})
}

// background: scanners hit the exposed phones now and then, each from its
// own address; a phone with stale credentials elsewhere (a second
// softphone) fails at the registrar from the phone's own network.
func (g *gen) background(p *phone) {
	if p.exposed {
		for d := range g.cfg.Days {
			for range g.r.poisson(1.2) {
				src := g.addrIn(g.newNet(noiseNets))
				g.add(anomaly.SecurityEvent{Device: p.id, Time: g.at(d, 0, g.r.intn(86400)), Kind: pick(g.r, backgroundKinds),
					Peer: src, Count: g.r.between(1, 3)})
			}
		}
	}
	if g.r.chance(0.3) {
		d := g.r.intn(g.cfg.Days)
		src := p.site
		if p.prof == homeOffice {
			src = p.home
		}
		t := g.at(d, 8*60+g.r.intn(10*60), 0)
		for k := range g.r.between(1, 3) {
			g.add(anomaly.SecurityEvent{Device: p.id, Time: t.Add(time.Duration(k) * time.Minute), Kind: anomaly.KindSIPAuthFailure, Peer: src})
		}
	}
}

// credentialChanges: admins change a few passwords every working day;
// the phone is rejected by the registrar until it has the new one. On day
// 16 a planned rotation changes 25 phones of one site in ten minutes.
func (g *gen) credentialChanges() {
	for d := range g.cfg.Days {
		if !g.workday(d) {
			continue
		}
		for range g.r.poisson(3) {
			p := pick(g.r, g.phones)
			g.change(p, g.at(d, 8*60+g.r.intn(9*60), g.r.intn(60)), "admin-alice")
		}
	}
	if g.cfg.Days > 16 {
		site := g.sites[0]
		n := 0
		for _, p := range g.phones {
			if p.site == site && p.prof == office && n < 25 {
				g.change(p, g.at(16, 14*60, n*24), "admin-bob")
				n++
			}
		}
	}
}

func (g *gen) change(p *phone, t time.Time, actor string) {
	g.add(anomaly.CredentialChange{Device: p.id, Time: t, What: "sip_password", Actor: actor})
	for k := range g.r.between(1, 3) {
		g.add(anomaly.SecurityEvent{Device: p.id, Time: t.Add(time.Duration(k*g.r.between(60, 200)) * time.Second),
			Kind: anomaly.KindSIPAuthFailure, Peer: g.registrar})
	}
}

// registrarHiccup: on day 20 the registrar rejects 30% of the phones for
// a few minutes.
func (g *gen) registrarHiccup() {
	if g.cfg.Days <= 20 {
		return
	}
	t := g.at(20, 10*60, 0)
	for _, p := range g.phones {
		if g.r.chance(0.3) {
			for range g.r.between(1, 2) {
				g.add(anomaly.SecurityEvent{Device: p.id, Time: t.Add(time.Duration(g.r.intn(300)) * time.Second),
					Kind: anomaly.KindSIPAuthFailure, Peer: g.registrar})
			}
		}
	}
}
