package store

import (
	"fmt"
	"time"
)

// Bounds on the director's records.
const (
	// MaxConfigDoc bounds one configuration document an admin sets for a
	// group or a device (TOML).
	MaxConfigDoc = 256 << 10
	// MaxProvisionData bounds a device's provisioning state: its director
	// repository (metadata and the composed configuration document, at
	// most 1 MiB) and its accounts.
	MaxProvisionData = 4 << 20
	// MaxTargetNameLen bounds a firmware target name.
	MaxTargetNameLen = 255
)

// ScopeKind says what an assignment applies to.
type ScopeKind string

// Scope kinds: a group's defaults, or one device's overrides.
const (
	ScopeGroup  ScopeKind = "group"
	ScopeDevice ScopeKind = "device"
)

// Scope names what an assignment applies to: a group (its name, as the
// allow-list gives devices) or a device (its ID).
type Scope struct {
	Kind ScopeKind
	Name string
}

func (s Scope) String() string { return string(s.Kind) + " " + s.Name }

// Validate checks the kind and the name's form.
func (s Scope) Validate() error {
	switch s.Kind {
	case ScopeGroup:
		return checkName("group", s.Name)
	case ScopeDevice:
		return DeviceID(s.Name).Validate()
	}
	return fmt.Errorf("%w: scope kind %.16q, want group or device", ErrInvalid, string(s.Kind))
}

// FirmwareTarget is a bundle of the image repository as its targets
// metadata lists it; the director names exactly this.
type FirmwareTarget struct {
	Name            string
	Length          int64
	SHA256          [32]byte
	Compatible      string
	Version         string
	SecurityVersion uint64
}

// Validate checks the fields' forms.
func (f FirmwareTarget) Validate() error {
	if f.Name == "" || len(f.Name) > MaxTargetNameLen {
		return fmt.Errorf("%w: firmware target name of %d bytes, want 1..%d", ErrInvalid, len(f.Name), MaxTargetNameLen)
	}
	if err := checkText("firmware target name", f.Name, MaxTargetNameLen); err != nil {
		return err
	}
	if f.Length <= 0 {
		return fmt.Errorf("%w: firmware target %s of %d bytes", ErrInvalid, f.Name, f.Length)
	}
	if f.SHA256 == [32]byte{} {
		return fmt.Errorf("%w: firmware target %s: zero SHA-256", ErrInvalid, f.Name)
	}
	if err := checkText("firmware compatible", f.Compatible, MaxTextLen); err != nil {
		return err
	}
	return checkText("firmware version", f.Version, MaxNameLen)
}

// Assignment is what a group's or a device's phones should have: a
// configuration document (group defaults or device overrides; the
// director composes them) and a firmware target. Revision counts the
// writes (1 for the first), so concurrent admins do not overwrite each
// other (PutAssignment).
type Assignment struct {
	Scope    Scope
	Revision uint64
	// Config is TOML, nil when the scope sets none.
	Config []byte
	// Firmware is nil when the scope assigns none.
	Firmware *FirmwareTarget
	// UpdatedAt and UpdatedBy say who wrote it last (an admin's
	// certificate subject).
	UpdatedAt time.Time
	UpdatedBy string
}

// Validate checks the fields a caller sets.
func (a Assignment) Validate() error {
	if err := a.Scope.Validate(); err != nil {
		return err
	}
	if len(a.Config) > MaxConfigDoc {
		return fmt.Errorf("%w: %s: config of %d bytes, want at most %d", ErrInvalid, a.Scope, len(a.Config), MaxConfigDoc)
	}
	if a.Config != nil && len(a.Config) == 0 {
		return fmt.Errorf("%w: %s: empty config (nil for none)", ErrInvalid, a.Scope)
	}
	if a.Firmware != nil {
		if err := a.Firmware.Validate(); err != nil {
			return fmt.Errorf("%s: %w", a.Scope, err)
		}
	}
	if err := checkText("updated_by", a.UpdatedBy, MaxTextLen); err != nil {
		return err
	}
	return checkTime("updated_at", a.UpdatedAt)
}

// Provision is a device's provisioning state as the director keeps it:
// opaque to the store (the director's encoding of the device's published
// repository and accounts), versioned by Rev for compare-and-swap between
// replicas, with the time the background worker should look at it next.
type Provision struct {
	DeviceID DeviceID
	// Rev counts the writes (1 for the first).
	Rev uint64
	// DueAt is when the device needs work (a timestamp to re-sign, a
	// password to rotate); ListProvisionDue finds it then.
	DueAt time.Time
	// Data is 1..MaxProvisionData bytes.
	Data []byte
}

// Validate checks the fields a caller sets.
func (p Provision) Validate() error {
	if err := p.DeviceID.Validate(); err != nil {
		return err
	}
	if len(p.Data) == 0 || len(p.Data) > MaxProvisionData {
		return fmt.Errorf("%w: provision of device %s: %d bytes, want 1..%d", ErrInvalid, p.DeviceID, len(p.Data), MaxProvisionData)
	}
	return checkTime("due_at", p.DueAt)
}

// CheckSealingKey validates a sealing public key (DER
// SubjectPublicKeyInfo) for SetSealingKey and CreateDevice.
func CheckSealingKey(der []byte) error {
	if err := checkPublicKey(der); err != nil {
		return fmt.Errorf("sealing key: %w", err)
	}
	return nil
}
