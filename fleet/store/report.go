package store

import (
	"fmt"
	"math"
	"time"
)

// Bounds on reports.
const (
	// MaxReportHistory is how many reports a device keeps, the latest
	// included; PutReport drops older ones in the same transaction.
	MaxReportHistory = 100
	// MaxSignedReport bounds the signed bytes of one report.
	MaxSignedReport = 16 << 10
	// MaxSlots bounds the slots of one report.
	MaxSlots = 8
	// MaxCounters bounds the security counters of one report.
	MaxCounters = 256
	// MaxFindings bounds the lockdown findings of one report.
	MaxFindings = 32
)

// Report is one check-in of a device, as the server verified and parsed
// it. JSON field names are part of the stored format: renaming one needs a
// migration.
type Report struct {
	// ReceivedAt is the server's time of receipt.
	ReceivedAt time.Time `json:"received_at"`
	// Firmware is the running image.
	Firmware FirmwareVersion `json:"firmware"`
	// Slots are the A/B slots, at most MaxSlots.
	Slots []SlotReport `json:"slots,omitempty"`
	// Boot is the boot-count state.
	Boot BootState `json:"boot"`
	// CertNotAfter is the expiry of the certificate the device uses.
	CertNotAfter time.Time `json:"cert_not_after"`
	// Lockdown is the result of the device's lockdown check.
	Lockdown LockdownResult `json:"lockdown"`
	// Counters are security counters by name (at most MaxCounters; names
	// as model names).
	Counters map[string]uint64 `json:"counters,omitempty"`
	// Uptime is the device's time since boot.
	Uptime time.Duration `json:"uptime_ns"`
	// Signed is the report exactly as the device signed it, 1..
	// MaxSignedReport bytes: the evidence behind every field above.
	Signed []byte `json:"-"`
}

// FirmwareVersion is an image version and its anti-rollback security
// version.
type FirmwareVersion struct {
	Version         string `json:"version"`
	SecurityVersion uint64 `json:"security_version"`
}

// SlotReport is one A/B slot.
type SlotReport struct {
	Name            string `json:"name"`
	Version         string `json:"version"`
	SecurityVersion uint64 `json:"security_version"`
	// Booted: the running image came from this slot.
	Booted bool `json:"booted"`
	// Good: the slot is marked good.
	Good bool `json:"good"`
}

// BootState is the boot-count state (U-Boot bootchooser variables).
type BootState struct {
	// Slot is the slot booted.
	Slot string `json:"slot"`
	// AttemptsLeft is the boot attempts left on it.
	AttemptsLeft uint32 `json:"attempts_left"`
	// MarkedGood: this boot was marked good.
	MarkedGood bool `json:"marked_good"`
}

// LockdownResult is the outcome of the device's lockdown check.
type LockdownResult struct {
	// OK: the running system matches the policy.
	OK bool `json:"ok"`
	// Findings name each drift, at most MaxFindings lines of printable
	// ASCII up to MaxTextLen bytes.
	Findings []string `json:"findings,omitempty"`
}

// Validate checks every field.
func (r Report) Validate() error {
	if err := checkTime("received_at", r.ReceivedAt); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := checkVersion("firmware version", r.Firmware.Version); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := checkSecurityVersion(r.Firmware.SecurityVersion); err != nil {
		return fmt.Errorf("report firmware: %w", err)
	}
	if len(r.Slots) > MaxSlots {
		return fmt.Errorf("%w: report: %d slots, want at most %d", ErrInvalid, len(r.Slots), MaxSlots)
	}
	for i, s := range r.Slots {
		if err := checkName("slot name", s.Name); err != nil {
			return fmt.Errorf("report slot %d: %w", i, err)
		}
		if err := checkVersion("slot version", s.Version); err != nil {
			return fmt.Errorf("report slot %s: %w", s.Name, err)
		}
		if err := checkSecurityVersion(s.SecurityVersion); err != nil {
			return fmt.Errorf("report slot %s: %w", s.Name, err)
		}
	}
	if r.Boot.Slot != "" {
		if err := checkName("boot slot", r.Boot.Slot); err != nil {
			return fmt.Errorf("report: %w", err)
		}
	}
	if err := checkTime("cert_not_after", r.CertNotAfter); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if len(r.Lockdown.Findings) > MaxFindings {
		return fmt.Errorf("%w: report: %d lockdown findings, want at most %d", ErrInvalid, len(r.Lockdown.Findings), MaxFindings)
	}
	for i, f := range r.Lockdown.Findings {
		if err := checkText("lockdown finding", f, MaxTextLen); err != nil {
			return fmt.Errorf("report finding %d: %w", i, err)
		}
	}
	if len(r.Counters) > MaxCounters {
		return fmt.Errorf("%w: report: %d counters, want at most %d", ErrInvalid, len(r.Counters), MaxCounters)
	}
	for name, v := range r.Counters {
		if err := checkName("counter name", name); err != nil {
			return fmt.Errorf("report: %w", err)
		}
		// JSON numbers above 2^53 survive encoding/json and jsonb, but
		// not every reader of an export; counters never get there.
		if v > 1<<53 {
			return fmt.Errorf("%w: report counter %s = %d, want at most 2^53", ErrInvalid, name, v)
		}
	}
	if r.Uptime < 0 {
		return fmt.Errorf("%w: report: negative uptime %v", ErrInvalid, r.Uptime)
	}
	if len(r.Signed) == 0 || len(r.Signed) > MaxSignedReport {
		return fmt.Errorf("%w: report: %d signed bytes, want 1..%d", ErrInvalid, len(r.Signed), MaxSignedReport)
	}
	return nil
}

// checkSecurityVersion keeps security versions within a signed 64-bit
// integer, what SQL can index and compare.
func checkSecurityVersion(v uint64) error {
	if v > math.MaxInt64 {
		return fmt.Errorf("%w: security version %d, want at most 2^63-1", ErrInvalid, v)
	}
	return nil
}

// ValidateReport checks a PutReport call and returns the report as it is
// to be stored: times normalised, slices and maps copied, empty ones nil.
func ValidateReport(id DeviceID, r Report) (Report, error) {
	if err := id.Validate(); err != nil {
		return Report{}, err
	}
	if err := r.Validate(); err != nil {
		return Report{}, fmt.Errorf("device %s: %w", id, err)
	}
	r.ReceivedAt = NormTime(r.ReceivedAt)
	r.CertNotAfter = NormTime(r.CertNotAfter)
	r.Slots = cloneOrNil(r.Slots)
	r.Lockdown.Findings = cloneOrNil(r.Lockdown.Findings)
	if len(r.Counters) == 0 {
		r.Counters = nil
	} else {
		m := make(map[string]uint64, len(r.Counters))
		for k, v := range r.Counters {
			m[k] = v
		}
		r.Counters = m
	}
	r.Signed = append([]byte(nil), r.Signed...)
	return r, nil
}

func cloneOrNil[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return append([]T(nil), s...)
}
