package rollout

import (
	"fmt"
	"slices"
	"time"

	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/store"
)

// judge is what decides a released device's health: the rollout's target,
// its deadlines, now.
type judge struct {
	kind          Kind
	target        *store.FirmwareTarget // KindFirmware
	deadline      time.Duration
	reportTimeout time.Duration
	now           time.Time
}

// sticky failures stay failures whatever comes after: the phone itself
// undid the change.
func sticky(reason string) bool {
	return len(reason) > 0 && (hasPrefix(reason, reasonRolledBack) || hasPrefix(reason, reasonReverted))
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

// Reasons a device fails (the first words of Failure.Reason).
const (
	reasonRolledBack = "rolled back"
	reasonReverted   = "configuration reverted"
	reasonDeadline   = "not marked good within"
	reasonSilent     = "stopped reporting"
	reasonPublish    = "not published"
)

// judgeDevice updates d from the device's reports (newest first, as the
// store returns them; only those received since its release count) and
// the time it was last seen. It reports whether d changed.
func (j judge) judgeDevice(d *deviceRecord, reports []store.Report, lastSeen time.Time) bool {
	if !d.Released || d.Status == DeviceDone || d.Status == DeviceReverted || sticky(d.Reason) {
		return false
	}
	before := *d
	// The evidence is recomputed from the reports each time (the store
	// keeps the newest MaxReportHistory).
	d.SawBooted, d.SawInstalled, d.LastUptime = false, false, 0
	var last *api.Report
	lastAt := time.Time{}
	for i := len(reports) - 1; i >= 0; i-- {
		r := reports[i]
		if r.ReceivedAt.Before(d.ReleasedAt) {
			continue
		}
		rep, err := api.ParseReport(r.Signed)
		if err != nil {
			continue // the server stored it verified; a bad one proves nothing
		}
		lastAt = r.ReceivedAt
		if done, failed := j.observe(d, &rep); done {
			d.Status, d.Reason = DeviceDone, ""
			return changed(before, *d)
		} else if failed != "" {
			d.Status, d.Reason = DeviceFailed, failed
			return changed(before, *d)
		}
		last = &rep
	}
	since := d.ReleasedAt
	if lastSeen.After(since) {
		since = lastSeen
	}
	if lastAt.After(since) {
		since = lastAt
	}
	switch {
	case j.now.Sub(since) > j.reportTimeout:
		d.Status, d.Reason = DeviceFailed, fmt.Sprintf("%s: no report since %s", reasonSilent, since.UTC().Format(time.RFC3339))
	case j.now.Sub(d.ReleasedAt) > j.deadline:
		d.Status, d.Reason = DeviceFailed, fmt.Sprintf("%s %v: %s", reasonDeadline, j.deadline, j.progress(d, last))
	default:
		d.Status, d.Reason = DeviceUpdating, ""
	}
	return changed(before, *d)
}

func changed(a, b deviceRecord) bool {
	return a.Status != b.Status || a.Reason != b.Reason || a.SawBooted != b.SawBooted || a.SawInstalled != b.SawInstalled ||
		a.LastUptime != b.LastUptime
}

// observe takes one report: done, or a failure's reason, or neither.
func (j judge) observe(d *deviceRecord, rep *api.Report) (done bool, failed string) {
	defer func() { d.LastUptime = rep.UptimeSeconds }()
	switch j.kind {
	case KindConfig:
		p := rep.Provisioning
		if p == nil || d.ConfigVersion == 0 {
			return false, ""
		}
		if p.RevertedVersion >= d.ConfigVersion {
			return false, fmt.Sprintf("%s: the phone applied v%d and went back by itself (it broke what worked)", reasonReverted, p.RevertedVersion)
		}
		return p.ConfigVersion >= d.ConfigVersion, ""
	default:
		v := j.target.Version
		if rep.Firmware.Version == v {
			d.SawBooted = true
			return rep.Boot.MarkedGood, ""
		}
		// Running something else.
		if slices.ContainsFunc(rep.Slots, func(s api.Slot) bool { return s.Version == v && s.Bad && !s.Booted }) {
			// The phone's own word: its updater gave up on the new
			// image (a real phone reboots right after the install, so
			// this may be its first report since).
			return false, fmt.Sprintf("%s: the phone marked %s bad (it did not boot to good and the bootloader went back) and runs %s",
				reasonRolledBack, v, rep.Firmware.Version)
		}
		if d.SawBooted {
			return false, fmt.Sprintf("%s: booted %s, then came back on %s", reasonRolledBack, v, rep.Firmware.Version)
		}
		installed := slices.ContainsFunc(rep.Slots, func(s api.Slot) bool { return s.Version == v && !s.Booted && !s.Good })
		if d.SawInstalled && installed && d.LastUptime > 0 && rep.UptimeSeconds < d.LastUptime {
			// It rebooted after installing and still runs the old
			// image: the bootloader fell back.
			return false, fmt.Sprintf("%s: rebooted after installing %s and runs %s (the new image did not boot to good)", reasonRolledBack, v, rep.Firmware.Version)
		}
		if installed {
			d.SawInstalled = true
		}
		return false, ""
	}
}

// progress says how far a device got, for a deadline failure.
func (j judge) progress(d *deviceRecord, last *api.Report) string {
	var s string
	switch {
	case j.kind == KindConfig && last != nil && last.Provisioning != nil:
		s = fmt.Sprintf("runs configuration v%d, wanted v%d", last.Provisioning.ConfigVersion, d.ConfigVersion)
	case j.kind == KindConfig:
		s = fmt.Sprintf("no configuration state reported, wanted v%d", d.ConfigVersion)
	case d.SawBooted:
		s = "booted the new image, never marked it good"
	case d.SawInstalled:
		s = "installed the new image, never booted it"
	default:
		s = "never installed the new image"
	}
	if last != nil && last.Provisioning != nil && last.Provisioning.LastError != "" {
		s += "; the phone says: " + last.Provisioning.LastError
	}
	return s
}
