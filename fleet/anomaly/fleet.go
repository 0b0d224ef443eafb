package anomaly

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// source is a probing or authenticating source network.
type source struct {
	// probes and auths hold the devices the source probed or failed to
	// authenticate as, with when.
	probes, auths *window
	// events counts the probe events in the source's lifetime (evidence);
	// kinds the probe kinds seen (evidence), at most 8.
	events int64
	kinds  []string
	// firedProbe, firedAuth: when fleet.probe and fleet.auth_spray last
	// fired for the source.
	firedProbe, firedAuth int64
}

func newSource() *source {
	return &source{probes: newWindow(maxSourceDevices), auths: newWindow(maxSourceDevices)}
}

func (d *Detector) source(p netip.Prefix) *source {
	st := d.st
	if s, ok := st.sources.get(p); ok {
		return s
	}
	s := newSource()
	st.sources.put(p, s)
	return s
}

func (d *Detector) windowSecs(rule int) int64 {
	return int64(time.Duration(d.rules[rule].Window) / time.Second)
}

// advanceFleet closes the fleet's hours up to the one ts is in: each
// closed hour's window counts go into the rings that fleet.auth_burst and
// fleet.credential_burst take their baselines from; ended responses go.
func (d *Detector) advanceFleet(ts int64) {
	st := d.st
	h := floorDiv(ts, 3600)
	if st.hourTop == 0 {
		st.hourTop = h
		return
	}
	if h <= st.hourTop {
		return
	}
	if h-st.hourTop > histHours {
		st.authHourly, st.credHourly = [histHours]uint16{}, [histHours]uint16{}
		st.hourTop = h - histHours
	}
	for x := st.hourTop; x < h; x++ {
		end := (x + 1) * 3600
		st.authWin.expire(end - d.windowSecs(rFleetAuthBurst))
		st.credWin.expire(end - d.windowSecs(rFleetCredentialBurst))
		st.authHourly[mod(x, histHours)] = uint16(min(st.authWin.count(), 65535))
		st.credHourly[mod(x, histHours)] = uint16(min(st.credWin.count(), 65535))
	}
	st.hourTop = h
	st.expireResponses(ts)
}

// fleetPeaks are the reference values of a fleet ring for hour h: for
// each of the 4 weeks before (as far as the detector ran then), the
// largest of the same hour of the week and the hours beside it.
func (st *state) fleetPeaks(ring *[histHours]uint16, h int64) refs {
	var r refs
	startHour := floorDiv(st.started, 3600)
	for k := int64(1); k <= 4; k++ {
		peak, any := 0.0, false
		for d := int64(-1); d <= 1; d++ {
			x := h - k*hoursPerWeek + d
			if x >= startHour && x < st.hourTop && x >= st.hourTop-histHours {
				peak, any = max(peak, float64(ring[mod(x, histHours)])), true
			}
		}
		if any {
			r.add(peak)
		}
	}
	return r
}

// burstLimit is a fleet burst rule's limit at hour h: median + Threshold
// x scale of the weekly peaks, at least Min (Min alone before a week
// has passed).
func (d *Detector) burstLimit(rule int, ring *[histHours]uint16, h int64) (limit, med, mad float64, n int) {
	rc := d.rules[rule]
	r := d.st.fleetPeaks(ring, h)
	limit = float64(rc.Min)
	if r.n >= 1 {
		med, mad = medianMAD(r.v[:r.n])
		limit = max(limit, med+rc.Threshold*countScale(med, mad))
	}
	return limit, med, mad, r.n
}

// securityEvent applies the authentication and probe rules.
func (d *Detector) securityEvent(dev *device, e SecurityEvent, ts int64, out []Finding) []Finding {
	count := max(e.Count, 1)
	outside := e.Peer.IsValid() && !d.infrastructure(e.Peer)
	if authKinds[e.Kind] {
		out = d.authFailure(dev, count, ts, out)
		if outside {
			out = d.fleetAuth(dev, e.Peer, ts, out)
		}
	}
	if probeKinds[e.Kind] && outside {
		out = d.fleetProbe(dev, e, count, ts, out)
	}
	return out
}

func (d *Detector) fleetAuth(dev *device, peer netip.Addr, ts int64, out []Finding) []Finding {
	st := d.st
	p := d.network(peer)
	s := d.source(p)
	if rc := d.rules[rFleetAuthSpray]; rc.Enabled {
		s.auths.expire(ts - d.windowSecs(rFleetAuthSpray))
		s.auths.add(dev.id, ts)
		if n := s.auths.count(); n >= rc.Min && !d.cooling(rFleetAuthSpray, &s.firedAuth, ts) {
			devs := s.auths.keys()
			out = append(out, d.finding(rFleetAuthSpray, ts, devs, 0, p,
				fmt.Sprintf("%s failed to authenticate as %d devices within %v", p, n, time.Duration(rc.Window)),
				[]Evidence{{"network", p.String()}, ev("devices", n), {"window", time.Duration(rc.Window).String()}}))
		}
	}
	rc := d.rules[rFleetAuthBurst]
	st.authWin.expire(ts - d.windowSecs(rFleetAuthBurst))
	st.authWin.add(dev.id, ts)
	if !rc.Enabled {
		return out
	}
	n := st.authWin.count()
	limit, med, mad, refN := d.burstLimit(rFleetAuthBurst, &st.authHourly, floorDiv(ts, 3600))
	if float64(n) < limit || d.cooling(rFleetAuthBurst, &st.fired[rFleetAuthBurst], ts) {
		return out
	}
	return append(out, d.finding(rFleetAuthBurst, ts, st.authWin.keys(), 0, netip.Prefix{},
		fmt.Sprintf("%d devices with authentication failures from outside the infrastructure within %v (limit %s)", n, time.Duration(rc.Window), fmtF(limit)),
		[]Evidence{ev("devices", n), {"limit", fmtF(limit)}, {"baseline_median", fmtF(med)}, {"baseline_mad", fmtF(mad)},
			ev("reference_weeks", refN), {"window", time.Duration(rc.Window).String()}}))
}

func (d *Detector) fleetProbe(dev *device, e SecurityEvent, count int, ts int64, out []Finding) []Finding {
	p := d.network(e.Peer)
	s := d.source(p)
	s.events += int64(count)
	if !slices.Contains(s.kinds, e.Kind) && len(s.kinds) < 8 {
		s.kinds = append(s.kinds, e.Kind)
		slices.Sort(s.kinds)
	}
	rc := d.rules[rFleetProbe]
	s.probes.expire(ts - d.windowSecs(rFleetProbe))
	s.probes.add(dev.id, ts)
	if !rc.Enabled {
		return out
	}
	n := s.probes.count()
	if n < rc.Min || d.cooling(rFleetProbe, &s.firedProbe, ts) {
		return out
	}
	return append(out, d.finding(rFleetProbe, ts, s.probes.keys(), 0, p,
		fmt.Sprintf("%s probed %d devices within %v (%s)", p, n, time.Duration(rc.Window), strings.Join(s.kinds, ",")),
		[]Evidence{{"network", p.String()}, ev("devices", n), {"kinds", strings.Join(s.kinds, ",")},
			{"events_total", fmt.Sprint(s.events)}, {"window", time.Duration(rc.Window).String()}}))
}

// credentialChange applies fleet.credential_burst.
func (d *Detector) credentialChange(dev *device, c CredentialChange, ts int64, out []Finding) []Finding {
	st := d.st
	rc := d.rules[rFleetCredentialBurst]
	st.credWin.expire(ts - d.windowSecs(rFleetCredentialBurst))
	st.credWin.add(dev.id, ts)
	if !rc.Enabled {
		return out
	}
	n := st.credWin.count()
	limit, med, mad, refN := d.burstLimit(rFleetCredentialBurst, &st.credHourly, floorDiv(ts, 3600))
	if float64(n) < limit || d.cooling(rFleetCredentialBurst, &st.fired[rFleetCredentialBurst], ts) {
		return out
	}
	evs := []Evidence{ev("devices", n), {"limit", fmtF(limit)}, {"baseline_median", fmtF(med)}, {"baseline_mad", fmtF(mad)},
		ev("reference_weeks", refN), {"window", time.Duration(rc.Window).String()}, {"latest", c.What}}
	if c.Actor != "" {
		evs = append(evs, Evidence{"latest_actor", c.Actor})
	}
	return append(out, d.finding(rFleetCredentialBurst, ts, st.credWin.keys(), 0, netip.Prefix{},
		fmt.Sprintf("credentials of %d devices changed within %v (limit %s)", n, time.Duration(rc.Window), fmtF(limit)), evs))
}
