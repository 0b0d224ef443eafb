package rollout

import (
	"fmt"
	"strings"
	"time"

	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/store"
	"github.com/hardphone/hardphone/internal/weekly"
)

// Kind is what a rollout changes.
type Kind string

// Kinds.
const (
	KindFirmware Kind = "firmware"
	KindConfig   Kind = "config"
)

// Bounds of a rollout request.
const (
	// MaxRings bounds the rings of a rollout.
	MaxRings = 8
	// MaxCanaries bounds the named devices of a ring.
	MaxCanaries = 100
	// MaxReason bounds an operator's reason (halt, abort).
	MaxReason = 256
	// MinDeadline and MaxDeadline bound a ring's deadline.
	MinDeadline = time.Minute
	MaxDeadline = 30 * 24 * time.Hour
)

// Defaults of a rollout request.
const (
	DefaultDeadline      = 24 * time.Hour
	DefaultReportTimeout = time.Hour
)

// RingSpec is one ring as asked for: named devices (a canary ring) or a
// cumulative percentage of the group's devices (100: all the rest).
type RingSpec struct {
	Name    string   `json:"name"`
	Devices []string `json:"devices,omitempty"`
	Percent int      `json:"percent,omitempty"`
}

// Spec is a rollout request.
type Spec struct {
	Kind  Kind   `json:"kind"`
	Group string `json:"group"`
	// Device, when set, makes a device-scope rollout: it moves that
	// device only, and its firmware or document becomes the device's own
	// assignment (Group is then the device's group, filled in by Create).
	Device string `json:"device,omitempty"`
	// Firmware is the image repository's target name (KindFirmware).
	Firmware string `json:"firmware,omitempty"`
	// Config is the group's new configuration document, TOML
	// (KindConfig).
	Config []byte     `json:"config,omitempty"`
	Rings  []RingSpec `json:"rings"`
	// MaxFailurePercent is the share of a ring's devices that may fail
	// before the rollout halts (0: the first failure halts it).
	MaxFailurePercent int `json:"max_failure_percent"`
	// Deadline is how long a ring's devices have to report the change
	// done (marked good) once the ring started.
	Deadline time.Duration `json:"deadline"`
	// ReportTimeout: a device of a started ring that sends no report for
	// this long has stopped reporting (a failure).
	ReportTimeout time.Duration `json:"report_timeout"`
	// Window, when set, is the maintenance window in the phones' local
	// time ("Mon-Fri 02:00-04:00 Europe/Berlin"): a ring starts only
	// inside it (the phones install firmware only inside their own
	// window, [provision] maintenance).
	Window string `json:"window,omitempty"`
}

// scope is what the rollout changes: the device's own assignment for a
// device-scope rollout, else the group's.
func (s Spec) scope() store.Scope {
	if s.Device != "" {
		return store.Scope{Kind: store.ScopeDevice, Name: s.Device}
	}
	return store.Scope{Kind: store.ScopeGroup, Name: s.Group}
}

// target names the scope for people: "group G" or "device D of group G".
func (s Spec) target() string {
	if s.Device != "" {
		return fmt.Sprintf("device %s of group %s", s.Device, s.Group)
	}
	return "group " + s.Group
}

// Validate checks the request's form (the group's devices and the target
// are checked when the rollout is planned).
func (s *Spec) Validate() error {
	switch s.Kind {
	case KindFirmware:
		if s.Firmware == "" || len(s.Firmware) > store.MaxTargetNameLen || s.Config != nil {
			return fmt.Errorf("%w: a firmware rollout names one target (1..%d bytes) and no document", ErrInvalid, store.MaxTargetNameLen)
		}
	case KindConfig:
		if len(s.Config) == 0 || len(s.Config) > store.MaxConfigDoc || s.Firmware != "" {
			return fmt.Errorf("%w: a configuration rollout carries one document (1..%d bytes) and no firmware", ErrInvalid, store.MaxConfigDoc)
		}
	default:
		return fmt.Errorf("%w: kind %.16q, want firmware or config", ErrInvalid, s.Kind)
	}
	switch {
	case s.Device != "":
		if err := store.DeviceID(s.Device).Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if s.Group != "" {
			if err := (store.Scope{Kind: store.ScopeGroup, Name: s.Group}).Validate(); err != nil {
				return fmt.Errorf("%w: %w", ErrInvalid, err)
			}
		}
	default:
		if err := (store.Scope{Kind: store.ScopeGroup, Name: s.Group}).Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	if len(s.Rings) == 0 || len(s.Rings) > MaxRings {
		return fmt.Errorf("%w: %d rings, want 1..%d", ErrInvalid, len(s.Rings), MaxRings)
	}
	last := 0
	names := map[string]bool{}
	seen := map[string]bool{}
	for i, r := range s.Rings {
		if r.Name == "" || len(r.Name) > 32 || strings.ContainsFunc(r.Name, func(c rune) bool { return c < 0x21 || c > 0x7e }) {
			return fmt.Errorf("%w: ring %d name %.40q: want 1..32 printable ASCII characters", ErrInvalid, i, r.Name)
		}
		if names[r.Name] {
			return fmt.Errorf("%w: ring name %s twice", ErrInvalid, r.Name)
		}
		names[r.Name] = true
		switch {
		case len(r.Devices) > 0 && r.Percent == 0:
			if len(r.Devices) > MaxCanaries {
				return fmt.Errorf("%w: ring %s names %d devices, at most %d", ErrInvalid, r.Name, len(r.Devices), MaxCanaries)
			}
			for _, d := range r.Devices {
				if err := store.DeviceID(d).Validate(); err != nil {
					return fmt.Errorf("%w: ring %s: %w", ErrInvalid, r.Name, err)
				}
				if seen[d] {
					return fmt.Errorf("%w: device %s in two rings", ErrInvalid, d)
				}
				seen[d] = true
			}
		case len(r.Devices) == 0 && r.Percent > 0 && r.Percent <= 100:
			if r.Percent <= last {
				return fmt.Errorf("%w: ring %s at %d%% after %d%%: percentages are cumulative and must grow", ErrInvalid, r.Name, r.Percent, last)
			}
			last = r.Percent
		default:
			return fmt.Errorf("%w: ring %s: give devices or a percentage (1..100), not both", ErrInvalid, r.Name)
		}
	}
	if s.Rings[len(s.Rings)-1].Percent != 100 {
		return fmt.Errorf("%w: the last ring must be 100%% (every device of the group)", ErrInvalid)
	}
	if s.MaxFailurePercent < 0 || s.MaxFailurePercent > 100 {
		return fmt.Errorf("%w: max failure percent %d, want 0..100", ErrInvalid, s.MaxFailurePercent)
	}
	if s.Deadline == 0 {
		s.Deadline = DefaultDeadline
	}
	if s.ReportTimeout == 0 {
		s.ReportTimeout = DefaultReportTimeout
	}
	if s.Deadline < MinDeadline || s.Deadline > MaxDeadline || s.ReportTimeout < MinDeadline || s.ReportTimeout > MaxDeadline {
		return fmt.Errorf("%w: deadline %v and report timeout %v, want %v..%v", ErrInvalid, s.Deadline, s.ReportTimeout, MinDeadline, MaxDeadline)
	}
	if s.Window != "" {
		if _, err := weekly.Parse(s.Window); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	return nil
}

// SpecFromRequest reads a rollout request as the fleet API and the console
// both take it: the wire form checked (api.RolloutRequest.Validate), its
// durations parsed, the result validated. Every error wraps ErrInvalid.
func SpecFromRequest(req api.RolloutRequest) (Spec, error) {
	if err := req.Validate(); err != nil {
		return Spec{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	spec := Spec{Kind: Kind(req.Kind), Group: req.Group, Device: req.Device, Firmware: req.Firmware, MaxFailurePercent: req.MaxFailurePercent,
		Window: req.Window}
	if req.Config != "" {
		spec.Config = []byte(req.Config)
	}
	for _, rg := range req.Rings {
		spec.Rings = append(spec.Rings, RingSpec{Name: rg.Name, Devices: rg.Devices, Percent: rg.Percent})
	}
	for _, d := range []struct {
		s   string
		dst *time.Duration
	}{{req.Deadline, &spec.Deadline}, {req.ReportTimeout, &spec.ReportTimeout}} {
		if d.s == "" {
			continue
		}
		v, err := time.ParseDuration(d.s)
		if err != nil {
			return Spec{}, fmt.Errorf("%w: duration %.32q: %v", ErrInvalid, d.s, err)
		}
		*d.dst = v
	}
	if err := spec.Validate(); err != nil {
		return Spec{}, err
	}
	return spec, nil
}
