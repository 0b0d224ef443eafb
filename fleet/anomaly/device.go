package anomaly

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// device is one device's baselines. Times are Unix seconds. Its memory is
// fixed but for the three capped lists: at most about 8 KiB (TestDeviceSize).
type device struct {
	id          string
	first, last int64
	// hold: until then, what the device does is not learnt (a holding
	// rule fired).
	hold int64
	// hourly counts outbound calls started per hour (saturating at 255),
	// slot = Unix hour % histHours; hourTop is the newest hour the ring
	// holds (hours after hourTop-histHours are valid).
	hourly  [histHours]uint8
	hourTop int64
	// calls are the newest outbound calls, a ring: calls[(callPos-1) %
	// recentCalls] is the newest, callN how many are filled.
	calls          [recentCalls]callRec
	callN, callPos int
	// durs are answered outbound call lengths in seconds (saturating), a
	// ring like calls.
	durs         [durSamples]uint16
	durN, durPos int
	countries    []countryRec // at most maxCountries
	dests        []destRec    // at most maxDests
	nets         []netRec     // at most maxNets
	// regs are the newest registrations, a ring like calls.
	regs         [regHistory]regRec
	regN, regPos int
	// auth is the EWMA of authentication failures per hour; authCount
	// counts them in authHour, authFlagged says auth.failures fired in
	// that hour (so it is not learnt).
	auth        ewma
	authHour    int64
	authCount   int64
	authFlagged bool
	// fired is when each rule last fired for the device (0: never).
	fired [numRules]int64
}

// callRec flags.
const (
	callAnswered = 1 << iota
	callPremium
	callNewCountry
	callIdleHour
	callNewNumber
)

type callRec struct {
	t     int64
	dur   uint32  // seconds
	cc    [4]byte // country code ("+881"), NUL-padded; zero when none
	flags uint8
}

// countryRec: days counts the distinct local days with an outbound call
// to the country (lastDay the latest, as days since the epoch); est is
// cached: days >= establishDays and last-first >= establishSpan.
type countryRec struct {
	code        string
	first, last int64
	days        int
	lastDay     int64
	est         bool
}

type destRec struct {
	h    uint64
	last int64
}

// netRec: like countryRec; established when seen on netEstablishDays
// distinct days.
type netRec struct {
	p           netip.Prefix
	first, last int64
	days        int
	lastDay     int64
}

type regRec struct {
	p netip.Prefix
	t int64
}

// When a country or network counts as established.
const (
	establishDays    = 3
	establishSpan    = 7 * 24 * 3600
	netEstablishDays = 2
	// hijackMinAge: reg.hijack judges a device seen at least this long
	// (seconds), so its networks can be established.
	hijackMinAge = 2 * 24 * 3600
)

func newDevice(id string, ts int64) *device {
	return &device{id: id, first: ts, last: ts, hourTop: floorDiv(ts, 3600), authHour: floorDiv(ts, 3600)}
}

func (dev *device) warm(ts int64, warmUp Duration) bool {
	return ts-dev.first >= int64(time.Duration(warmUp)/time.Second)
}

func (dev *device) learning(ts int64) bool { return ts >= dev.hold }

// advanceHours moves the hourly ring to hour h, zeroing the hours it
// passes.
func (dev *device) advanceHours(h int64) {
	if h <= dev.hourTop {
		return
	}
	if h-dev.hourTop >= histHours {
		dev.hourly = [histHours]uint8{}
	} else {
		for x := dev.hourTop + 1; x <= h; x++ {
			dev.hourly[mod(x, histHours)] = 0
		}
	}
	dev.hourTop = h
}

// inRing reports whether hour h is held by the ring.
func (dev *device) inRing(h int64) bool { return h <= dev.hourTop && h > dev.hourTop-histHours }

// refsAt collects the reference counts for hour h: the same hour of the
// week and the hours beside it, in each of the 4 weeks before, as far as
// the device was seen then. all holds each hour (up to 12), peaks each
// week's largest of its three (up to 4): a week's peak is what the
// volume rule compares with, so that the first and last hour of a working
// day, whose neighbours are quiet, are judged against the busy hour beside
// them rather than against the quiet one (and an hour's shift with
// daylight saving time changes nothing).
func (dev *device) refsAt(h int64) (all, peaks refs) {
	firstHour := floorDiv(dev.first, 3600)
	for k := int64(1); k <= 4; k++ {
		peak, any := 0.0, false
		for d := int64(-1); d <= 1; d++ {
			x := h - k*hoursPerWeek + d
			if x >= firstHour && dev.inRing(x) {
				v := float64(dev.hourly[mod(x, histHours)])
				all.add(v)
				peak, any = max(peak, v), true
			}
		}
		if any {
			peaks.add(peak)
		}
	}
	return all, peaks
}

func (dev *device) pushCall(c callRec) {
	dev.calls[dev.callPos] = c
	dev.callPos = (dev.callPos + 1) % recentCalls
	dev.callN = min(dev.callN+1, recentCalls)
}

// sumCalls adds up the newest calls with all of flags set and started at
// or after since: how many, and their answered minutes.
func (dev *device) sumCalls(flags uint8, since int64) (n int, minutes float64) {
	for i := 0; i < dev.callN; i++ {
		c := dev.calls[mod(int64(dev.callPos-1-i), recentCalls)]
		if c.t < since || c.flags&flags != flags {
			continue
		}
		n++
		minutes += float64(c.dur) / 60
	}
	return n, minutes
}

func (dev *device) country(code string) *countryRec {
	for i := range dev.countries {
		if dev.countries[i].code == code {
			return &dev.countries[i]
		}
	}
	return nil
}

func (dev *device) net(p netip.Prefix) *netRec {
	for i := range dev.nets {
		if dev.nets[i].p == p {
			return &dev.nets[i]
		}
	}
	return nil
}

// localDay is the day number of ts in the fleet's time zone.
func localDay(ts int64, loc *time.Location) int64 {
	_, off := time.Unix(ts, 0).In(loc).Zone()
	return floorDiv(ts+int64(off), 86400)
}

// numberHash is the keyed hash a called number is remembered by.
func (st *state) numberHash(number string) uint64 {
	h := sha256.New()
	h.Write(st.key[:])
	h.Write([]byte(number))
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0]))
}

// established reports whether calls to country code are normal for the
// device: a home country, one the device has called on establishDays days
// over a week, or one that many devices of the fleet have.
func (d *Detector) established(dev *device, code string) bool {
	if d.home[code] {
		return true
	}
	if c := dev.country(code); c != nil && c.est {
		return true
	}
	n := d.st.countryEst[code]
	return n >= 3 && float64(n) >= d.cfg.CommonCountryShare*float64(d.st.devices.len())
}

func (d *Detector) premium(number string) bool {
	if len(number) < 2 || number[0] != '+' {
		return false
	}
	for _, p := range d.cfg.PremiumPrefixes {
		if strings.HasPrefix(number, p) {
			return true
		}
	}
	return false
}

// call applies the call rules to an outbound call and learns from it.
// Inbound calls only show the device is alive.
func (d *Detector) call(dev *device, c Call, ts int64, out []Finding) []Finding {
	if c.Direction != Outbound {
		return out
	}
	h := floorDiv(ts, 3600)
	dev.advanceHours(h)
	if dev.inRing(h) {
		if s := mod(h, histHours); dev.hourly[s] < math.MaxUint8 {
			dev.hourly[s]++
		}
	}
	warm := dev.warm(ts, d.cfg.WarmUp)
	secs := uint32(time.Duration(c.Duration) / time.Second)
	code := CountryCode(c.Number)
	rec := callRec{t: ts, dur: secs}
	copy(rec.cc[:], code)
	if c.Answered {
		rec.flags |= callAnswered
	}
	if d.premium(c.Number) {
		rec.flags |= callPremium
	}
	if code != "" && !d.established(dev, code) {
		rec.flags |= callNewCountry
	}
	var ref, peaks refs
	if warm {
		ref, peaks = dev.refsAt(h)
		if ref.idle() {
			rec.flags |= callIdleHour
		}
	}
	var hash uint64
	if c.Number != "" {
		hash = d.st.numberHash(c.Number)
		known := false
		for _, x := range dev.dests {
			if x.h == hash {
				known = true
				break
			}
		}
		if !known {
			rec.flags |= callNewNumber
		}
	}
	dev.pushCall(rec)

	if rec.flags&callPremium != 0 {
		out = d.ruleCallPremium(dev, c, ts, out)
	}
	if warm && peaks.n >= 1 {
		out = d.ruleCallVolume(dev, h, peaks, ts, out)
	}
	if warm && rec.flags&callNewCountry != 0 {
		out = d.ruleCallWindow(rCallNewCountry, callNewCountry, dev, ts, out)
	}
	if warm && rec.flags&callIdleHour != 0 {
		out = d.ruleCallWindow(rCallOffHours, callIdleHour, dev, ts, out)
	}
	if warm && c.Answered && rec.flags&(callNewNumber|callNewCountry) != 0 {
		out = d.ruleCallLong(dev, secs, rec.flags, ts, out)
	}

	if !dev.learning(ts) {
		return out
	}
	if code != "" {
		d.learnCountry(dev, code, ts)
	}
	if c.Number != "" {
		d.learnNumber(dev, hash, ts)
	}
	if c.Answered {
		dev.durs[dev.durPos] = uint16(min(secs, math.MaxUint16))
		dev.durPos = (dev.durPos + 1) % durSamples
		dev.durN = min(dev.durN+1, durSamples)
	}
	return out
}

// fireDevice makes a device rule's finding unless it is cooling down, and
// holds learning when the rule says so.
func (d *Detector) fireDevice(rule int, dev *device, ts int64, src netip.Prefix, summary string, ev []Evidence, out []Finding) []Finding {
	if d.cooling(rule, &dev.fired[rule], ts) {
		return out
	}
	if ruleSpecs[rule].holds {
		dev.hold = max(dev.hold, ts+int64(time.Duration(d.cfg.LearnHold)/time.Second))
	}
	return append(out, d.finding(rule, ts, []string{dev.id}, 0, src, summary, ev))
}

func (d *Detector) ruleCallPremium(dev *device, c Call, ts int64, out []Finding) []Finding {
	rc := d.rules[rCallPremium]
	if !rc.Enabled {
		return out
	}
	n, mins := dev.sumCalls(callPremium, ts-int64(time.Duration(rc.Window)/time.Second))
	if n < rc.Min {
		return out
	}
	return d.fireDevice(rCallPremium, dev, ts, netip.Prefix{},
		fmt.Sprintf("%d calls to premium-rate numbers within %v, the latest to %s", n, time.Duration(rc.Window), maskNumber(c.Number)),
		[]Evidence{ev("premium_calls", n), ev("premium_minutes", int(math.Round(mins))), {"latest_number", maskNumber(c.Number)}}, out)
}

func (d *Detector) ruleCallVolume(dev *device, h int64, ref refs, ts int64, out []Finding) []Finding {
	rc := d.rules[rCallVolume]
	if !rc.Enabled {
		return out
	}
	count := float64(dev.hourly[mod(h, histHours)])
	n := ref.n
	med, mad := medianMAD(ref.v[:n])
	limit := med + rc.Threshold*countScale(med, mad)
	if count < float64(rc.Min) || count <= limit {
		return out
	}
	return d.fireDevice(rCallVolume, dev, ts, netip.Prefix{},
		fmt.Sprintf("%d outbound calls this hour, against a median weekly peak of %s around this hour of the week", int(count), fmtF(med)),
		[]Evidence{ev("calls_this_hour", int(count)), {"baseline_median", fmtF(med)}, {"baseline_mad", fmtF(mad)},
			{"limit", fmtF(limit)}, ev("reference_weeks", n)}, out)
}

// ruleCallWindow is call.new_country and call.off_hours: minutes or calls
// with a flag within the rule's window.
func (d *Detector) ruleCallWindow(rule int, flag uint8, dev *device, ts int64, out []Finding) []Finding {
	rc := d.rules[rule]
	if !rc.Enabled {
		return out
	}
	n, mins := dev.sumCalls(flag, ts-int64(time.Duration(rc.Window)/time.Second))
	if n < rc.Min && mins < rc.Threshold {
		return out
	}
	nNew, _ := dev.sumCalls(flag|callNewNumber, ts-int64(time.Duration(rc.Window)/time.Second))
	what := "to countries the device has no history with"
	if rule == rCallOffHours {
		what = "in hours of the week the device is idle in"
	}
	evs := []Evidence{ev("calls", n), ev("answered_minutes", int(math.Round(mins))), ev("calls_to_new_numbers", nNew),
		{"window", time.Duration(rc.Window).String()}}
	if rule == rCallNewCountry {
		evs = append(evs, Evidence{"countries", d.windowCountries(dev, flag, ts-int64(time.Duration(rc.Window)/time.Second))})
	}
	return d.fireDevice(rule, dev, ts, netip.Prefix{},
		fmt.Sprintf("%d calls (%d answered minutes) %s within %v", n, int(math.Round(mins)), what, time.Duration(rc.Window)), evs, out)
}

// windowCountries lists the countries of the calls with flag since.
func (d *Detector) windowCountries(dev *device, flag uint8, since int64) string {
	var codes []string
	for i := 0; i < dev.callN; i++ {
		c := dev.calls[mod(int64(dev.callPos-1-i), recentCalls)]
		if c.t < since || c.flags&flag != flag || c.cc[0] == 0 {
			continue
		}
		code := strings.TrimRight(string(c.cc[:]), "\x00")
		if !slices.Contains(codes, code) {
			codes = append(codes, code)
		}
	}
	slices.Sort(codes)
	return strings.Join(codes, ",")
}

// ruleCallLong judges an answered call to a number the device never
// called or a country it has no history with: long calls to known numbers
// (the conference bridge, the colleague abroad) are habits, a long call
// held open to a new number is how premium and international ranges are
// milked.
func (d *Detector) ruleCallLong(dev *device, secs uint32, flags uint8, ts int64, out []Finding) []Finding {
	rc := d.rules[rCallLong]
	if !rc.Enabled || dev.durN < minDurSamples {
		return out
	}
	var v [durSamples]float64
	for i := 0; i < dev.durN; i++ {
		v[i] = float64(dev.durs[i])
	}
	med, mad := medianMAD(v[:dev.durN])
	limit := max(float64(rc.Min)*60, med+rc.Threshold*max(madScale*mad, 60))
	if float64(secs) <= limit {
		return out
	}
	return d.fireDevice(rCallLong, dev, ts, netip.Prefix{},
		fmt.Sprintf("an answered outbound call of %d minutes to a new number, against a median of %s minutes", secs/60, fmtF(med/60)),
		[]Evidence{ev("minutes", int(secs/60)), {"baseline_median_minutes", fmtF(med / 60)},
			{"baseline_mad_minutes", fmtF(mad / 60)}, {"limit_minutes", fmtF(limit / 60)},
			{"new_number", strconv.FormatBool(flags&callNewNumber != 0)}, {"new_country", strconv.FormatBool(flags&callNewCountry != 0)}}, out)
}

func (d *Detector) learnCountry(dev *device, code string, ts int64) {
	day := localDay(ts, d.cfg.Location)
	c := dev.country(code)
	if c == nil {
		if len(dev.countries) >= maxCountries {
			old := 0
			for i, x := range dev.countries {
				if x.last < dev.countries[old].last {
					old = i
				}
			}
			if dev.countries[old].est {
				d.st.countryEst[dev.countries[old].code]--
				if d.st.countryEst[dev.countries[old].code] <= 0 {
					delete(d.st.countryEst, dev.countries[old].code)
				}
			}
			dev.countries = append(dev.countries[:old], dev.countries[old+1:]...)
		}
		dev.countries = append(dev.countries, countryRec{code: code, first: ts, last: ts, days: 1, lastDay: day})
		return
	}
	if day > c.lastDay {
		c.days++
		c.lastDay = day
	}
	c.last = max(c.last, ts)
	est := c.days >= establishDays && c.last-c.first >= establishSpan
	if est && !c.est {
		d.st.countryEst[code]++
	}
	c.est = est
}

func (d *Detector) learnNumber(dev *device, h uint64, ts int64) {
	for i := range dev.dests {
		if dev.dests[i].h == h {
			dev.dests[i].last = max(dev.dests[i].last, ts)
			return
		}
	}
	if len(dev.dests) >= maxDests {
		old := 0
		for i, x := range dev.dests {
			if x.last < dev.dests[old].last {
				old = i
			}
		}
		dev.dests[old] = destRec{h: h, last: ts}
		return
	}
	dev.dests = append(dev.dests, destRec{h: h, last: ts})
}

// registration applies the registration rules and learns the network.
func (d *Detector) registration(dev *device, r Registration, ts int64, out []Finding) []Finding {
	p := d.network(r.Source)
	known := dev.net(p)
	st := d.st

	_, fleetSeen := st.networks.get(p)
	st.networks.put(p, ts)
	if !fleetSeen && ts-st.started >= int64(time.Duration(d.cfg.WarmUp)/time.Second) && d.rules[rFleetNewNetwork].Enabled {
		out = d.fireDevice(rFleetNewNetwork, dev, ts, p,
			fmt.Sprintf("registration from %s, a network no device of the fleet was seen on", p),
			[]Evidence{{"network", p.String()}, {"address", r.Source.String()}}, out)
	}
	if known == nil && dev.warm(ts, d.cfg.WarmUp) && d.rules[rRegNewNetwork].Enabled {
		out = d.fireDevice(rRegNewNetwork, dev, ts, p,
			fmt.Sprintf("registration from %s, a network the device was never seen on", p),
			[]Evidence{{"network", p.String()}, {"address", r.Source.String()}, ev("known_networks", len(dev.nets))}, out)
	}

	dev.regs[dev.regPos] = regRec{p: p, t: ts}
	dev.regPos = (dev.regPos + 1) % regHistory
	dev.regN = min(dev.regN+1, regHistory)
	if rc := d.rules[rRegHijack]; rc.Enabled && ts-dev.first >= hijackMinAge {
		out = d.ruleRegHijack(dev, rc, ts, out)
	}

	if !dev.learning(ts) {
		return out
	}
	day := localDay(ts, d.cfg.Location)
	if known == nil {
		if len(dev.nets) >= maxNets {
			old := 0
			for i, x := range dev.nets {
				if x.last < dev.nets[old].last {
					old = i
				}
			}
			dev.nets = append(dev.nets[:old], dev.nets[old+1:]...)
		}
		dev.nets = append(dev.nets, netRec{p: p, first: ts, last: ts, days: 1, lastDay: day})
		return out
	}
	if day > known.lastDay {
		known.days++
		known.lastDay = day
	}
	known.last = max(known.last, ts)
	return out
}

// ruleRegHijack: within the window, the registrations switch networks at
// least Min times and one of the networks is not established for the
// device: two registrants take turns.
func (d *Detector) ruleRegHijack(dev *device, rc RuleConfig, ts int64, out []Finding) []Finding {
	since := ts - int64(time.Duration(rc.Window)/time.Second)
	var seq []netip.Prefix
	for i := dev.regN - 1; i >= 0; i-- { // oldest first
		r := dev.regs[mod(int64(dev.regPos-1-i), regHistory)]
		if r.t >= since && r.t <= ts {
			seq = append(seq, r.p)
		}
	}
	switches := 0
	var distinct []netip.Prefix
	var unestablished netip.Prefix
	for i, p := range seq {
		if i > 0 && p != seq[i-1] {
			switches++
		}
		seen := false
		for _, q := range distinct {
			seen = seen || q == p
		}
		if !seen {
			distinct = append(distinct, p)
			if n := dev.net(p); n == nil || n.days < netEstablishDays {
				unestablished = p
			}
		}
	}
	if switches < rc.Min || len(distinct) < 2 || !unestablished.IsValid() {
		return out
	}
	names := make([]string, len(distinct))
	for i, p := range distinct {
		names[i] = p.String()
	}
	return d.fireDevice(rRegHijack, dev, ts, unestablished,
		fmt.Sprintf("registrations alternate between %s (%d switches within %v); %s is new to the device", strings.Join(names, " and "), switches, time.Duration(rc.Window), unestablished),
		[]Evidence{{"networks", strings.Join(names, ",")}, ev("switches", switches), {"new_network", unestablished.String()}}, out)
}

// authFailure counts one or more authentication failures for the device
// and applies auth.failures.
func (d *Detector) authFailure(dev *device, count int, ts int64, out []Finding) []Finding {
	const alpha = 1.0 / hoursPerWeek // an hour's weight: the rate of the last week or so
	h := floorDiv(ts, 3600)
	if h > dev.authHour {
		if !dev.authFlagged {
			dev.auth.update(float64(dev.authCount), alpha)
		}
		gap := h - dev.authHour - 1
		if gap > 4*histHours {
			dev.auth = ewma{}
		} else {
			for range gap {
				dev.auth.update(0, alpha)
			}
		}
		dev.authHour, dev.authCount, dev.authFlagged = h, 0, false
	}
	// A late failure (an earlier hour) counts in the current hour; the
	// count saturates (a flood is a flood, and the state stays in its
	// bounds).
	dev.authCount = min(dev.authCount+int64(count), maxCount)
	rc := d.rules[rAuthFailures]
	if !rc.Enabled {
		return out
	}
	limit := dev.auth.Mean + rc.Threshold*max(dev.auth.Dev, 1)
	if dev.authCount < int64(rc.Min) || float64(dev.authCount) <= limit {
		return out
	}
	dev.authFlagged = true
	return d.fireDevice(rAuthFailures, dev, ts, netip.Prefix{},
		fmt.Sprintf("%d authentication failures this hour, against %s an hour usually", dev.authCount, fmtF(dev.auth.Mean)),
		[]Evidence{ev("failures_this_hour", int(dev.authCount)), {"ewma_per_hour", fmtF(dev.auth.Mean)},
			{"ewma_deviation", fmtF(dev.auth.Dev)}, {"limit", fmtF(limit)}}, out)
}

func ev(k string, v int) Evidence { return Evidence{Key: k, Value: strconv.Itoa(v)} }

func fmtF(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) }

// maskNumber keeps a number's country and first digits: evidence enough
// for an admin, not a full number in every log line.
func maskNumber(n string) string {
	if len(n) <= 6 {
		return n
	}
	return n[:6] + strings.Repeat("x", len(n)-6)
}
