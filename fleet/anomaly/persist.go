package anomaly

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// StateVersion is the version of the state format MarshalState writes and
// UnmarshalState reads.
const StateVersion = 1

// maxTS bounds every time in a state blob (the end of year 9999), so that
// sums of times and durations cannot overflow.
const maxTS = 253402300799

// The state's JSON form. Lists are in least-recently-used order (most
// recent first) where the running state keeps one, rings oldest first;
// the hourly rings are sparse (slot, count pairs, slots ascending, zeros
// left out: most hours of most devices are quiet); derived values (which
// countries are established fleet-wide) are recomputed on restore.
type stateFile struct {
	Version    int              `json:"version"`
	Now        int64            `json:"now"`
	Started    int64            `json:"started"`
	Seq        uint64           `json:"seq"`
	Key        []byte           `json:"key"`
	HourTop    int64            `json:"hour_top"`
	AuthHourly []int            `json:"auth_hourly,omitempty"`
	CredHourly []int            `json:"cred_hourly,omitempty"`
	Fired      map[string]int64 `json:"fired,omitempty"`
	Devices    []deviceFile     `json:"devices"`
	Networks   []seenFile       `json:"networks"`
	Sources    []sourceFile     `json:"sources"`
	AuthWin    []seenFile       `json:"auth_window"`
	CredWin    []seenFile       `json:"cred_window"`
	Responses  []Response       `json:"responses"`
}

type deviceFile struct {
	ID          string           `json:"id"`
	First       int64            `json:"first"`
	Last        int64            `json:"last"`
	Hold        int64            `json:"hold,omitempty"`
	HourTop     int64            `json:"hour_top"`
	Hourly      []int            `json:"hourly,omitempty"`
	Calls       []callFile       `json:"calls,omitempty"`
	Durs        []uint16         `json:"durs,omitempty"`
	Countries   []countryFile    `json:"countries,omitempty"`
	Dests       []destFile       `json:"dests,omitempty"`
	Nets        []netFile        `json:"nets,omitempty"`
	Regs        []seenFile       `json:"regs,omitempty"`
	Auth        ewma             `json:"auth"`
	AuthHour    int64            `json:"auth_hour"`
	AuthCount   int64            `json:"auth_count,omitempty"`
	AuthFlagged bool             `json:"auth_flagged,omitempty"`
	Fired       map[string]int64 `json:"fired,omitempty"`
}

type callFile struct {
	T int64  `json:"t"`
	D uint32 `json:"d"`
	C string `json:"c,omitempty"`
	F uint8  `json:"f"`
}

type countryFile struct {
	C       string `json:"c"`
	First   int64  `json:"first"`
	Last    int64  `json:"last"`
	Days    int    `json:"days"`
	LastDay int64  `json:"last_day"`
}

type destFile struct {
	H uint64 `json:"h"`
	T int64  `json:"t"`
}

type netFile struct {
	P       netip.Prefix `json:"p"`
	First   int64        `json:"first"`
	Last    int64        `json:"last"`
	Days    int          `json:"days"`
	LastDay int64        `json:"last_day"`
}

// seenFile is a key (a device ID or a network) with a time.
type seenFile struct {
	K string `json:"k"`
	T int64  `json:"t"`
}

type sourceFile struct {
	P          netip.Prefix `json:"p"`
	Probes     []seenFile   `json:"probes,omitempty"`
	Auths      []seenFile   `json:"auths,omitempty"`
	Events     int64        `json:"events,omitempty"`
	Kinds      []string     `json:"kinds,omitempty"`
	FiredProbe int64        `json:"fired_probe,omitempty"`
	FiredAuth  int64        `json:"fired_auth,omitempty"`
}

// MarshalState returns the detector's state (baselines, windows, active
// responses, the finding counter) as versioned JSON for the server to
// persist. The same state always encodes to the same bytes. The blob holds
// the key called numbers are hashed with: keep it as private as the
// database.
func (d *Detector) MarshalState() ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return encodeState(d.st)
}

// MaxStateBytes is the largest state blob a detector with cfg's caps
// writes (its devices, sources and networks all full), and so the most
// UnmarshalState and ReadState accept.
func MaxStateBytes(cfg Config) int64 {
	const (
		perDevice  = 20 << 10 // every list of a device full, in JSON
		perSource  = 4 << 10
		perNetwork = 96
		fixed      = 1<<20 + 2*maxFleetWindow*96
	)
	return fixed + int64(cfg.MaxDevices)*(perDevice+512) + int64(cfg.MaxSources)*perSource + int64(cfg.MaxNetworks)*perNetwork
}

// ReadState reads a state blob from r (at most MaxStateBytes) and
// restores it (UnmarshalState).
func (d *Detector) ReadState(r io.Reader) error {
	d.mu.Lock()
	limit := MaxStateBytes(d.cfg)
	d.mu.Unlock()
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return fmt.Errorf("read anomaly state: %w", err)
	}
	return d.UnmarshalState(b)
}

// UnmarshalState replaces the detector's state by one MarshalState wrote
// (by this or an earlier version). The blob is decoded and checked against
// every bound first; a blob that fails changes nothing. Devices, sources
// and networks beyond the configuration's caps are forgotten, least
// recently seen first.
func (d *Detector) UnmarshalState(b []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if limit := MaxStateBytes(d.cfg); int64(len(b)) > limit {
		return fmt.Errorf("%w: anomaly state of %d bytes (at most %d for these caps)", ErrInvalid, len(b), limit)
	}
	st, err := decodeState(b, d.cfg)
	if err != nil {
		return err
	}
	dropped := st.devices.len()
	st.trim(d.cfg)
	if dropped -= st.devices.len(); dropped > 0 {
		d.log.Warn("anomaly state holds more devices than max_devices; least recently seen forgotten", "dropped", dropped)
	}
	d.st = st
	return nil
}

func encodeState(st *state) ([]byte, error) {
	f := stateFile{
		Version: StateVersion, Now: st.now, Started: st.started, Seq: st.seq, Key: st.key[:], HourTop: st.hourTop,
		AuthHourly: sparse(st.authHourly[:]), CredHourly: sparse(st.credHourly[:]), Fired: firedMap(&st.fired),
		Devices: []deviceFile{}, Networks: []seenFile{}, Sources: []sourceFile{}, Responses: []Response{},
		AuthWin: windowFile(st.authWin), CredWin: windowFile(st.credWin),
	}
	st.devices.each(func(_ string, dev *device) { f.Devices = append(f.Devices, encodeDevice(dev)) })
	st.networks.each(func(p netip.Prefix, t int64) { f.Networks = append(f.Networks, seenFile{K: p.String(), T: t}) })
	st.sources.each(func(p netip.Prefix, s *source) {
		f.Sources = append(f.Sources, sourceFile{P: p, Probes: windowFile(s.probes), Auths: windowFile(s.auths),
			Events: s.events, Kinds: slices.Clone(s.kinds), FiredProbe: s.firedProbe, FiredAuth: s.firedAuth})
	})
	for _, rs := range st.responses {
		for _, r := range []Response{rs.block, rs.quarantine} {
			if r.Kind != "" {
				f.Responses = append(f.Responses, cloneResponse(r))
			}
		}
	}
	slices.SortFunc(f.Responses, func(a, b Response) int {
		if c := strings.Compare(a.Device, b.Device); c != 0 {
			return c
		}
		return strings.Compare(string(a.Kind), string(b.Kind))
	})
	b, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encode anomaly state: %w", err)
	}
	return b, nil
}

// sparse renders a ring as slot, count pairs of its non-zero slots.
func sparse[T uint8 | uint16](r []T) []int {
	var out []int
	for i, v := range r {
		if v != 0 {
			out = append(out, i, int(v))
		}
	}
	return out
}

// unsparse fills a ring from sparse's pairs, refusing anything sparse
// would not have written.
func unsparse[T uint8 | uint16](pairs []int, r []T, maxV int) error {
	if len(pairs)%2 != 0 || len(pairs) > 2*len(r) {
		return fmt.Errorf("ring of %d values: want slot, count pairs", len(pairs))
	}
	last := -1
	for i := 0; i < len(pairs); i += 2 {
		slot, v := pairs[i], pairs[i+1]
		if slot <= last || slot >= len(r) || v < 1 || v > maxV {
			return fmt.Errorf("ring pair %d, %d: slots ascending below %d, counts 1..%d", slot, v, len(r), maxV)
		}
		r[slot] = T(v)
		last = slot
	}
	return nil
}

func firedMap(f *[numRules]int64) map[string]int64 {
	var m map[string]int64
	for i, t := range f {
		if t != 0 {
			if m == nil {
				m = make(map[string]int64)
			}
			m[ruleSpecs[i].name] = t
		}
	}
	return m
}

func windowFile(w *window) []seenFile {
	out := []seenFile{}
	w.l.each(func(k string, t int64) { out = append(out, seenFile{K: k, T: t}) })
	return out
}

func encodeDevice(dev *device) deviceFile {
	f := deviceFile{ID: dev.id, First: dev.first, Last: dev.last, Hold: dev.hold, HourTop: dev.hourTop,
		Hourly: sparse(dev.hourly[:]), Auth: dev.auth, AuthHour: dev.authHour, AuthCount: dev.authCount,
		AuthFlagged: dev.authFlagged, Fired: firedMap(&dev.fired)}
	for i := dev.callN - 1; i >= 0; i-- {
		c := dev.calls[mod(int64(dev.callPos-1-i), recentCalls)]
		f.Calls = append(f.Calls, callFile{T: c.t, D: c.dur, C: strings.TrimRight(string(c.cc[:]), "\x00"), F: c.flags})
	}
	for i := dev.durN - 1; i >= 0; i-- {
		f.Durs = append(f.Durs, dev.durs[mod(int64(dev.durPos-1-i), durSamples)])
	}
	for _, c := range dev.countries {
		f.Countries = append(f.Countries, countryFile{C: c.code, First: c.first, Last: c.last, Days: c.days, LastDay: c.lastDay})
	}
	for _, x := range dev.dests {
		f.Dests = append(f.Dests, destFile{H: x.h, T: x.last})
	}
	for _, n := range dev.nets {
		f.Nets = append(f.Nets, netFile{P: n.p, First: n.first, Last: n.last, Days: n.days, LastDay: n.lastDay})
	}
	for i := dev.regN - 1; i >= 0; i-- {
		r := dev.regs[mod(int64(dev.regPos-1-i), regHistory)]
		f.Regs = append(f.Regs, seenFile{K: r.p.String(), T: r.t})
	}
	return f
}

// decodeState parses and checks a blob; the result shares nothing with
// the running state.
func decodeState(b []byte, cfg Config) (*state, error) {
	var probe struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("%w: anomaly state: %v", ErrInvalid, err)
	}
	if probe.Version > StateVersion {
		return nil, fmt.Errorf("%w: version %d (this binary reads %d)", ErrStateVersion, probe.Version, StateVersion)
	}
	if probe.Version != StateVersion {
		return nil, fmt.Errorf("%w: anomaly state version %d", ErrInvalid, probe.Version)
	}
	var f stateFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: anomaly state: %v", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: anomaly state: data after the object", ErrInvalid)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: anomaly state: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	if !validTS(f.Now) || !validTS(f.Started) || f.Started > f.Now || (f.Started == 0) != (f.Now == 0) {
		return nil, bad("times now %d, started %d", f.Now, f.Started)
	}
	if len(f.Key) != 32 {
		return nil, bad("key of %d bytes (want 32)", len(f.Key))
	}
	if !validHour(f.HourTop) {
		return nil, bad("fleet hour %d", f.HourTop)
	}
	if len(f.Devices) > maxTrackCap || len(f.Networks) > maxTrackCap || len(f.Sources) > maxTrackCap ||
		len(f.AuthWin) > maxFleetWindow || len(f.CredWin) > maxFleetWindow || len(f.Responses) > 2*maxTrackCap {
		return nil, bad("a list beyond its bound")
	}
	// The restored state's caps are the hard bounds; trim applies the
	// configuration's afterwards.
	st := &state{
		now: f.Now, started: f.Started, seq: f.Seq, hourTop: f.HourTop,
		devices:    newLRU[string, *device](maxTrackCap),
		networks:   newLRU[netip.Prefix, int64](maxTrackCap),
		sources:    newLRU[netip.Prefix, *source](maxTrackCap),
		authWin:    newWindow(maxFleetWindow),
		credWin:    newWindow(maxFleetWindow),
		responses:  make(map[string]*respState),
		countryEst: make(map[string]int),
	}
	copy(st.key[:], f.Key)
	if err := unsparse(f.AuthHourly, st.authHourly[:], math.MaxUint16); err != nil {
		return nil, bad("fleet authentication ring: %v", err)
	}
	if err := unsparse(f.CredHourly, st.credHourly[:], math.MaxUint16); err != nil {
		return nil, bad("fleet credential ring: %v", err)
	}
	if err := decodeFired(f.Fired, &st.fired); err != nil {
		return nil, bad("fired: %v", err)
	}
	for i, df := range f.Devices {
		dev, err := decodeDevice(df)
		if err != nil {
			return nil, bad("device %d: %v", i, err)
		}
		if !st.devices.pushBack(dev.id, dev) {
			return nil, bad("device %q twice", dev.id)
		}
		for _, c := range dev.countries {
			if c.est {
				st.countryEst[c.code]++
			}
		}
	}
	for i, n := range f.Networks {
		p, err := parseNetwork(n.K)
		if err != nil || !validTS(n.T) {
			return nil, bad("network %d: %q at %d", i, clip(n.K), n.T)
		}
		if !st.networks.pushBack(p, n.T) {
			return nil, bad("network %s twice", p)
		}
	}
	for i, sf := range f.Sources {
		s, err := decodeSource(sf)
		if err != nil {
			return nil, bad("source %d: %v", i, err)
		}
		if !st.sources.pushBack(sf.P, s) {
			return nil, bad("source %s twice", sf.P)
		}
	}
	var err error
	if st.authWin, err = decodeWindow(f.AuthWin, maxFleetWindow); err != nil {
		return nil, bad("auth window: %v", err)
	}
	if st.credWin, err = decodeWindow(f.CredWin, maxFleetWindow); err != nil {
		return nil, bad("credential window: %v", err)
	}
	for i, r := range f.Responses {
		if err := checkResponse(r, f.Seq); err != nil {
			return nil, bad("response %d: %v", i, err)
		}
		rs := st.responses[r.Device]
		if rs == nil {
			rs = &respState{}
			st.responses[r.Device] = rs
		}
		slot := &rs.block
		if r.Kind == ResponseQuarantine {
			slot = &rs.quarantine
		}
		if slot.Kind != "" {
			return nil, bad("response %d: a second %s for %s", i, r.Kind, r.Device)
		}
		*slot = cloneResponse(r)
	}
	return st, nil
}

func validTS(t int64) bool   { return t == 0 || t >= firstValidTS && t <= maxTS }
func validHour(h int64) bool { return h == 0 || h >= firstValidTS/3600 && h <= maxTS/3600 }
func validDay(d int64) bool  { return d >= firstValidTS/86400-1 && d <= maxTS/86400+1 }

func decodeFired(m map[string]int64, out *[numRules]int64) error {
	for name, t := range m {
		i, ok := ruleIndex[name]
		if !ok || t == 0 || !validTS(t) {
			return fmt.Errorf("rule %q at %d", clip(name), t)
		}
		out[i] = t
	}
	return nil
}

// parseNetwork reads a network as MarshalState writes it: a masked
// prefix.
func parseNetwork(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, err
	}
	if p != p.Masked() || p.Addr().Zone() != "" || p.Addr().Is4In6() {
		return p, fmt.Errorf("network %s not in canonical form", p)
	}
	return p, nil
}

func decodeDevice(f deviceFile) (*device, error) {
	if !validDeviceID(f.ID) {
		return nil, fmt.Errorf("ID %q", clip(f.ID))
	}
	if f.First == 0 || !validTS(f.First) || !validTS(f.Last) || f.Last < f.First || !validTS(f.Hold) {
		return nil, fmt.Errorf("times first %d, last %d, hold %d", f.First, f.Last, f.Hold)
	}
	if !validHour(f.HourTop) || f.HourTop == 0 || !validHour(f.AuthHour) || f.AuthHour == 0 {
		return nil, fmt.Errorf("hours: ring %d, authentication %d", f.HourTop, f.AuthHour)
	}
	if len(f.Calls) > recentCalls || len(f.Durs) > durSamples || len(f.Countries) > maxCountries ||
		len(f.Dests) > maxDests || len(f.Nets) > maxNets || len(f.Regs) > regHistory {
		return nil, fmt.Errorf("a list beyond its cap")
	}
	if !finiteNonNeg(f.Auth.Mean) || !finiteNonNeg(f.Auth.Dev) || f.Auth.Mean > maxCount || f.Auth.Dev > maxCount ||
		f.AuthCount < 0 || f.AuthCount > maxCount {
		return nil, fmt.Errorf("authentication rate %v/%v, count %d", f.Auth.Mean, f.Auth.Dev, f.AuthCount)
	}
	dev := &device{id: f.ID, first: f.First, last: f.Last, hold: f.Hold, hourTop: f.HourTop,
		auth: f.Auth, authHour: f.AuthHour, authCount: f.AuthCount, authFlagged: f.AuthFlagged}
	if err := unsparse(f.Hourly, dev.hourly[:], math.MaxUint8); err != nil {
		return nil, fmt.Errorf("hourly ring: %v", err)
	}
	if err := decodeFired(f.Fired, &dev.fired); err != nil {
		return nil, fmt.Errorf("fired: %v", err)
	}
	for _, c := range f.Calls {
		if !validTS(c.T) || c.T == 0 || c.D > uint32(maxCallLen/time.Second) || c.F >= callNewNumber<<1 ||
			c.C != "" && CountryCode(c.C+"0") != c.C {
			return nil, fmt.Errorf("call %+v", c)
		}
		r := callRec{t: c.T, dur: c.D, flags: c.F}
		copy(r.cc[:], c.C)
		dev.pushCall(r)
	}
	for _, s := range f.Durs {
		dev.durs[dev.durPos] = s
		dev.durPos = (dev.durPos + 1) % durSamples
		dev.durN++
	}
	for _, c := range f.Countries {
		if c.C == "" || CountryCode(c.C+"0") != c.C || dev.country(c.C) != nil || c.First == 0 || !validTS(c.First) ||
			!validTS(c.Last) || c.Last < c.First || c.Days < 1 || c.Days > 100000 || !validDay(c.LastDay) {
			return nil, fmt.Errorf("country %+v", c)
		}
		dev.countries = append(dev.countries, countryRec{code: c.C, first: c.First, last: c.Last, days: c.Days, lastDay: c.LastDay,
			est: c.Days >= establishDays && c.Last-c.First >= establishSpan})
	}
	for _, x := range f.Dests {
		if !validTS(x.T) || x.T == 0 || slices.ContainsFunc(dev.dests, func(y destRec) bool { return y.h == x.H }) {
			return nil, fmt.Errorf("number hash %x", x.H)
		}
		dev.dests = append(dev.dests, destRec{h: x.H, last: x.T})
	}
	for _, n := range f.Nets {
		if !n.P.IsValid() || n.P != n.P.Masked() || n.P.Addr().Zone() != "" || n.P.Addr().Is4In6() || dev.net(n.P) != nil ||
			n.First == 0 || !validTS(n.First) || !validTS(n.Last) || n.Last < n.First || n.Days < 1 || n.Days > 100000 || !validDay(n.LastDay) {
			return nil, fmt.Errorf("network %+v", n)
		}
		dev.nets = append(dev.nets, netRec{p: n.P, first: n.First, last: n.Last, days: n.Days, lastDay: n.LastDay})
	}
	for _, r := range f.Regs {
		p, err := parseNetwork(r.K)
		if err != nil || !validTS(r.T) || r.T == 0 {
			return nil, fmt.Errorf("registration %q at %d", clip(r.K), r.T)
		}
		dev.regs[dev.regPos] = regRec{p: p, t: r.T}
		dev.regPos = (dev.regPos + 1) % regHistory
		dev.regN++
	}
	return dev, nil
}

func finiteNonNeg(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) && f >= 0 }

func decodeSource(f sourceFile) (*source, error) {
	if !f.P.IsValid() || f.P != f.P.Masked() || f.P.Addr().Zone() != "" || f.P.Addr().Is4In6() {
		return nil, fmt.Errorf("network %v", f.P)
	}
	if f.Events < 0 || len(f.Kinds) > 8 || !validTS(f.FiredProbe) || !validTS(f.FiredAuth) {
		return nil, fmt.Errorf("events %d, %d kinds, fired %d/%d", f.Events, len(f.Kinds), f.FiredProbe, f.FiredAuth)
	}
	for i, k := range f.Kinds {
		if !validKind(k) || i > 0 && k <= f.Kinds[i-1] {
			return nil, fmt.Errorf("kinds %q not sorted, unique and well formed", f.Kinds)
		}
	}
	s := &source{events: f.Events, kinds: slices.Clone(f.Kinds), firedProbe: f.FiredProbe, firedAuth: f.FiredAuth}
	var err error
	if s.probes, err = decodeWindow(f.Probes, maxSourceDevices); err != nil {
		return nil, fmt.Errorf("probes: %v", err)
	}
	if s.auths, err = decodeWindow(f.Auths, maxSourceDevices); err != nil {
		return nil, fmt.Errorf("authentications: %v", err)
	}
	return s, nil
}

func decodeWindow(entries []seenFile, capacity int) (*window, error) {
	if len(entries) > capacity {
		return nil, fmt.Errorf("%d entries (at most %d)", len(entries), capacity)
	}
	w := newWindow(capacity)
	for _, e := range entries {
		if !validDeviceID(e.K) || !validTS(e.T) || e.T == 0 || !w.l.pushBack(e.K, e.T) {
			return nil, fmt.Errorf("entry %q at %d", clip(e.K), e.T)
		}
	}
	return w, nil
}

func checkResponse(r Response, seq uint64) error {
	if r.Kind != ResponseBlock && r.Kind != ResponseQuarantine {
		return fmt.Errorf("kind %q", clip(string(r.Kind)))
	}
	if _, ok := ruleIndex[r.Rule]; !ok || r.Finding == 0 || r.Finding > seq || !validDeviceID(r.Device) {
		return fmt.Errorf("rule %q, finding %d, device %q", clip(r.Rule), r.Finding, clip(r.Device))
	}
	if u := r.Until.Unix(); u < firstValidTS || u > maxTS || r.Until.Location() != time.UTC || r.Until.Nanosecond() != 0 {
		return fmt.Errorf("until %v", r.Until)
	}
	if (r.Kind == ResponseBlock) != (r.Override != nil) {
		return fmt.Errorf("a block carries an override, a quarantine none")
	}
	if o := r.Override; o != nil {
		if len(o.Allow) > maxListEntries || o.International {
			return fmt.Errorf("override: %d allowed numbers, international %v", len(o.Allow), o.International)
		}
		for _, n := range o.Allow {
			if n == "" || !validNumber(n) {
				return fmt.Errorf("override number %q", clip(n))
			}
		}
	}
	return nil
}
