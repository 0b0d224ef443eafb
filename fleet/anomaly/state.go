package anomaly

import (
	"net/netip"
	"time"
)

// Fixed caps of the per-device and fleet-wide lists (Config holds the
// caps an admin may size; these bound one entry's memory).
const (
	// histHours is the hourly history a device and the fleet keep: 4
	// weeks, so the same hour of the week is seen 4 times.
	histHours = 28 * 24
	// hoursPerWeek is the distance between the same hour of two weeks.
	hoursPerWeek = 7 * 24
	// recentCalls is how many outbound calls a device's windows look back
	// over (call.premium, call.new_country, call.off_hours); a window
	// holding more calls counts the newest 64.
	recentCalls = 64
	// durSamples is how many answered outbound call lengths call.long's
	// baseline holds; minDurSamples are needed before it judges.
	durSamples    = 64
	minDurSamples = 16
	// maxCountries, maxDests, maxNets bound a device's countries, called
	// numbers and registration networks (least recently used forgotten).
	maxCountries = 32
	maxDests     = 128
	maxNets      = 16
	// regHistory is how many registrations reg.hijack looks back over.
	regHistory = 8
	// maxSourceDevices bounds the devices a source's windows hold (and
	// so fleet.probe's and fleet.auth_spray's Min).
	maxSourceDevices = 32
	// maxFleetWindow bounds the fleet-wide windows (devices with
	// authentication failures, credential changes).
	maxFleetWindow = 4096
)

// state is everything a Detector learnt; the Detector's mutex guards it.
type state struct {
	// now is the newest observation's time, started the first's (Unix
	// seconds; 0 before any).
	now, started int64
	// seq is the last finding ID.
	seq uint64
	// key keys the hash of called numbers, so the state holds no number
	// and a number cannot be crafted to collide with a known one.
	key [32]byte
	// devices, most recently seen first.
	devices *lru[string, *device]
	// networks seen fleet-wide: network -> last seen.
	networks *lru[netip.Prefix, int64]
	// sources: probing or authenticating source networks.
	sources *lru[netip.Prefix, *source]
	// authWin: devices with authentication failures from outside the
	// infrastructure; credWin: devices whose credentials changed.
	authWin, credWin *window
	// hourTop is the newest hour (Unix hours) of the fleet's rings;
	// authHourly and credHourly hold the windows' counts at each hour's
	// end, slot = hour % histHours.
	hourTop                int64
	authHourly, credHourly [histHours]uint16
	// fired holds when fleet-wide rules (fleet.auth_burst,
	// fleet.credential_burst) last fired.
	fired [numRules]int64
	// responses: blocks and quarantines by device, at most MaxDevices.
	responses map[string]*respState
	// countryEst counts, per country, the tracked devices it is
	// established for. Derived (recomputed on restore), not saved.
	countryEst map[string]int
}

type respState struct {
	block, quarantine Response // Kind "" when none
}

func newState(cfg Config) (*state, error) {
	k, err := newKey()
	if err != nil {
		return nil, err
	}
	return &state{
		key:        k,
		devices:    newLRU[string, *device](cfg.MaxDevices),
		networks:   newLRU[netip.Prefix, int64](cfg.MaxNetworks),
		sources:    newLRU[netip.Prefix, *source](cfg.MaxSources),
		authWin:    newWindow(maxFleetWindow),
		credWin:    newWindow(maxFleetWindow),
		responses:  make(map[string]*respState),
		countryEst: make(map[string]int),
	}, nil
}

// forget drops what a forgotten device added to fleet-wide counts.
func (st *state) forget(dev *device) {
	for _, c := range dev.countries {
		if c.est {
			st.countryEst[c.code]--
			if st.countryEst[c.code] <= 0 {
				delete(st.countryEst, c.code)
			}
		}
	}
}

// trim applies lowered caps at once.
func (st *state) trim(cfg Config) {
	st.devices.cap = cfg.MaxDevices
	for st.devices.len() > cfg.MaxDevices {
		k, dev, _ := st.devices.oldest()
		st.devices.remove(k)
		st.forget(dev)
	}
	st.networks.cap = cfg.MaxNetworks
	for st.networks.len() > cfg.MaxNetworks {
		k, _, _ := st.networks.oldest()
		st.networks.remove(k)
	}
	st.sources.cap = cfg.MaxSources
	for st.sources.len() > cfg.MaxSources {
		k, _, _ := st.sources.oldest()
		st.sources.remove(k)
	}
	for len(st.responses) > cfg.MaxDevices {
		st.dropSoonestResponse()
	}
}

// respond records a block or quarantine, keeping the later end when one
// is in force. Past maxDevices devices with responses, the one ending
// soonest goes (expired ones go first, at every hour).
func (st *state) respond(r Response, maxDevices int) {
	rs, ok := st.responses[r.Device]
	if !ok {
		if len(st.responses) >= maxDevices {
			st.dropSoonestResponse()
		}
		rs = &respState{}
		st.responses[r.Device] = rs
	}
	slot := &rs.block
	if r.Kind == ResponseQuarantine {
		slot = &rs.quarantine
	}
	if slot.Kind == "" || r.Until.After(slot.Until) {
		*slot = r
	}
}

func (st *state) dropSoonestResponse() {
	var victim string
	var end time.Time
	for dev, rs := range st.responses {
		e := rs.block.Until
		if rs.quarantine.Until.After(e) {
			e = rs.quarantine.Until
		}
		if victim == "" || e.Before(end) || e.Equal(end) && dev < victim {
			victim, end = dev, e
		}
	}
	delete(st.responses, victim)
}

// expireResponses drops the responses that ended before now.
func (st *state) expireResponses(now int64) {
	t := time.Unix(now, 0)
	for dev, rs := range st.responses {
		if rs.block.Kind != "" && !rs.block.Until.After(t) {
			rs.block = Response{}
		}
		if rs.quarantine.Kind != "" && !rs.quarantine.Until.After(t) {
			rs.quarantine = Response{}
		}
		if rs.block.Kind == "" && rs.quarantine.Kind == "" {
			delete(st.responses, dev)
		}
	}
}

// window is a set of keys (devices) with the newest time each was seen,
// from which the keys older than a cutoff are dropped; bounded by its
// cap (least recently seen dropped first).
type window struct {
	l *lru[string, int64]
}

func newWindow(capacity int) *window { return &window{l: newLRU[string, int64](capacity)} }

func (w *window) add(k string, t int64) {
	if old, ok := w.l.peek(k); ok && old > t {
		t = old
	}
	w.l.put(k, t)
}

// expire drops the keys last seen at or before cutoff. Keys arrive in
// time order but for late observations, so the oldest sit at the tail; a
// late key touched out of order stays until it reaches the tail.
func (w *window) expire(cutoff int64) {
	for {
		k, t, ok := w.l.oldest()
		if !ok || t > cutoff {
			return
		}
		w.l.remove(k)
	}
}

func (w *window) count() int { return w.l.len() }

// keys returns the keys, most recently seen first.
func (w *window) keys() []string {
	out := make([]string, 0, min(w.l.len(), maxFindingDevices+1))
	w.l.each(func(k string, _ int64) { out = append(out, k) })
	return out
}

// floorDiv divides rounding towards minus infinity (hours and days before
// 1970 never occur past validation, but a negative zone offset near the
// epoch would).
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}
