package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/hardphone/hardphone/agent/control"
	"github.com/hardphone/hardphone/agent/events"
	"github.com/hardphone/hardphone/agent/provision"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/update"
)

// Provisioner is the phone's fleet client; *provision.Client is one.
type Provisioner interface {
	// Enrol returns once the phone holds a live fleet certificate,
	// enrolling (with backoff) when it does not; only ctx ends it early.
	Enrol(ctx context.Context) (*provision.Status, error)
	// Run checks in with the reports it is handed until ctx ends or the
	// fleet retires the phone.
	Run(ctx context.Context, report func(context.Context) (api.Report, error)) error
	// Status is the phone's standing (provision.ErrNotEnrolled before).
	Status() (*provision.Status, error)
}

// Report bounds: a report is at most api.MaxReport bytes.
const (
	maxReportFindings = 16
	maxReportText     = 200
	maxReportCounters = 200
)

// WithProvisioning makes the phone a fleet member: Run enrols first (the
// accounts wait for the certificate they present), then checks in with a
// report of the phone's state. model is the phone's model as the vendor's
// manifest names it (the board's name).
func WithProvisioning(p Provisioner, model string) Option {
	return func(a *Agent) error {
		if p == nil || model == "" {
			return errors.New("agent: provisioning needs a client and the phone's model")
		}
		a.prov, a.model = p, model
		return nil
	}
}

// WithIdentitySource makes every TLS flow ask get for the client
// certificate at each handshake (the fleet renews it), instead of a fixed
// one. get returns an empty certificate while there is none.
func WithIdentitySource(get func() (*tls.Certificate, error)) Option {
	return func(a *Agent) error {
		if get == nil {
			return errors.New("agent: nil identity source")
		}
		a.identSource = get
		return nil
	}
}

// runProvisioning enrols, closes enrolled, and checks in until ctx ends.
func (a *Agent) runProvisioning(ctx context.Context, enrolled chan<- struct{}) {
	st, err := a.prov.Enrol(ctx)
	if err != nil {
		return // ctx ended
	}
	a.log.Info("fleet member", "device", st.DeviceID, "certificate_expires", st.NotAfter)
	close(enrolled)
	if a.repos != nil {
		a.kickSync()
	}
	err = a.prov.Run(ctx, a.fleetReport)
	switch {
	case errors.Is(err, provision.ErrRetired):
		a.log.Error("the fleet retired this phone: its credentials are wiped", "error", err)
		a.record(events.Event{Kind: events.KindDeviceRetired, Detail: events.Detail{"device": st.DeviceID}})
	case err != nil && ctx.Err() == nil:
		a.log.Error("fleet check-in stopped", "error", err)
	}
}

// fleetReport is the check-in report: what the phone runs, how it boots,
// its lockdown state and its security counters. provision fills in the
// device ID, the time and the certificate's facts.
func (a *Agent) fleetReport(ctx context.Context) (api.Report, error) {
	r := api.Report{Model: a.model, UptimeSeconds: uint64(time.Since(a.started) / time.Second)}
	if a.repos != nil {
		// Every check-in cycle refreshes the fleet's metadata first, so
		// the report says what the phone made of it.
		a.syncForReport(ctx)
		ps := a.provisioningStatus()
		r.Provisioning = &api.Provisioning{ConfigVersion: ps.GoodVersion, DirectorTargets: ps.DirectorTargets,
			Stale: ps.Stale, StaleRole: ps.StaleRole, LastError: reportError(ps)}
		if ps.Reverted != nil {
			r.Provisioning.RevertedVersion = ps.Reverted.Version
		}
	}
	if a.updater != nil {
		st, err := a.updater.Status()
		if err != nil {
			return r, fmt.Errorf("report: %w", err)
		}
		r.Boot.Slot, r.Boot.MarkedGood = st.BootedSlot, st.BootMarkedGood
		for _, s := range st.Slots {
			if len(r.Slots) == 8 {
				break
			}
			// A slot the updater never installed (the factory image)
			// has no bundle version: the running one is the agent's
			// build, the other one unknown.
			version := s.Version
			switch {
			case version != "":
			case s.Booted:
				version = a.version
			}
			if version == "" {
				version = "unknown"
			}
			r.Slots = append(r.Slots, api.Slot{Name: s.Name, Version: cut(version), SecurityVersion: s.SecurityVersion,
				Booted: s.Booted, Good: s.State == update.StateGood, Bad: s.State == update.StateBad})
			if s.Booted {
				r.Firmware = api.Firmware{Version: cut(version), SecurityVersion: s.SecurityVersion}
				if s.AttemptsLeft != nil && *s.AttemptsLeft >= 0 {
					r.Boot.AttemptsLeft = uint32(*s.AttemptsLeft)
				}
			}
		}
	}
	if r.Firmware.Version == "" {
		r.Firmware.Version = cut(a.version)
	}
	if r.Firmware.Version == "" {
		r.Firmware.Version = "unknown"
	}
	r.Lockdown.OK = true
	if a.lock != nil && a.enforce {
		rep, err := a.lock.Check(ctx)
		if err != nil {
			r.Lockdown.OK = false
			r.Lockdown.Findings = []string{cut("the check could not run: " + err.Error())}
		} else {
			r.Lockdown.OK = rep.OK
			for _, f := range rep.Drift {
				if len(r.Lockdown.Findings) == maxReportFindings {
					break
				}
				r.Lockdown.Findings = append(r.Lockdown.Findings, cut(f.Kind+" "+f.Subject+": "+f.Detail))
			}
		}
	}
	r.Counters = map[string]uint64{}
	for _, acct := range a.accounts {
		b, err := json.Marshal(acct.Status().Counters)
		if err != nil {
			return r, fmt.Errorf("report: %w", err)
		}
		var m map[string]int64
		if err := json.Unmarshal(b, &m); err != nil {
			return r, fmt.Errorf("report: %w", err)
		}
		names := make([]string, 0, len(m))
		for k := range m {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if len(r.Counters) == maxReportCounters {
				break
			}
			if m[k] > 0 {
				r.Counters["sip."+acct.Name()+"."+k] = uint64(m[k])
			}
		}
	}
	if a.lock != nil {
		r.Counters["lockdown.drift_checks"] = a.lock.DriftEvents()
	}
	if a.repos != nil {
		for k, v := range a.fleetCounters() {
			if v > 0 && len(r.Counters) < maxReportCounters {
				r.Counters[k] = v
			}
		}
	}
	return r, nil
}

// reportError is the one reason the report gives for what the phone did
// not take from the fleet: the refresh's, else a refused document's
// (newer than the good one), else the firmware's.
func reportError(ps *control.ProvisioningStatus) string {
	s := ps.LastError
	switch {
	case s != "":
	case ps.Refused != nil && ps.Refused.Version > ps.GoodVersion:
		s = fmt.Sprintf("configuration v%d refused: %s", ps.Refused.Version, ps.Refused.Reason)
	case ps.Firmware != nil && ps.Firmware.State == control.FirmwareFailed:
		s = fmt.Sprintf("firmware %s: %s", ps.Firmware.Version, ps.Firmware.Detail)
	}
	return cutText(s)
}

// cut bounds a report string.
func cut(s string) string {
	if len(s) > maxReportText {
		return s[:maxReportText]
	}
	return s
}
