package api

import (
	"fmt"
	"time"
)

// Scope kinds of PathAdminConfig and PathAdminFirmware.
const (
	ScopeGroup  = "group"
	ScopeDevice = "device"
)

// MaxConfigRequest bounds ConfigRequest.TOML.
const MaxConfigRequest = 256 << 10

// ConfigRequest sets a configuration document: group defaults or one
// device's overrides, in the phone's config schema (TOML). The server
// composes group and device documents per device and refuses one whose
// composition does not validate, with the reason.
type ConfigRequest struct {
	TOML string `json:"toml"`
}

// Validate checks presence and size.
func (r *ConfigRequest) Validate() error {
	if r.TOML == "" || len(r.TOML) > MaxConfigRequest {
		return fmt.Errorf("toml of %d bytes, want 1..%d", len(r.TOML), MaxConfigRequest)
	}
	return nil
}

// FirmwareRequest assigns a bundle the image repository lists.
type FirmwareRequest struct {
	// Target is the image repository's target name (`hpctl repo add`).
	Target string `json:"target"`
}

// Validate checks presence and size.
func (r *FirmwareRequest) Validate() error {
	if r.Target == "" || len(r.Target) > 255 {
		return fmt.Errorf("target of %d bytes, want 1..255", len(r.Target))
	}
	return nil
}

// FirmwareTarget is a bundle as the image repository lists it.
type FirmwareTarget struct {
	Name   string `json:"name"`
	Length int64  `json:"length"`
	// SHA256 is 64 hex digits.
	SHA256          string `json:"sha256"`
	Compatible      string `json:"compatible,omitempty"`
	Version         string `json:"version,omitempty"`
	SecurityVersion uint64 `json:"security_version,omitempty"`
}

// AssignmentResponse is a group's or a device's assignment after a
// change, or as GET shows it.
type AssignmentResponse struct {
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	Revision uint64 `json:"revision"`
	// TOML is the scope's configuration document, "" when none.
	TOML string `json:"toml,omitempty"`
	// Firmware is the assigned bundle, nil when none.
	Firmware  *FirmwareTarget `json:"firmware,omitempty"`
	UpdatedAt time.Time       `json:"updated_at"`
	UpdatedBy string          `json:"updated_by,omitempty"`
	// Published lists the devices whose director metadata a change
	// republished (device ID and the new config version), Failed those
	// it could not (they are retried in the background).
	Published []PublishedDevice `json:"published,omitempty"`
	Failed    []string          `json:"failed,omitempty"`
}

// PublishedDevice is a device a change republished.
type PublishedDevice struct {
	DeviceID       string `json:"device_id"`
	ConfigVersion  uint64 `json:"config_version"`
	TargetsVersion int64  `json:"targets_version"`
}

// ProvisionStatus is what the director publishes for one device.
type ProvisionStatus struct {
	DeviceID string `json:"device_id"`
	// ConfigVersion is the published configuration document's version
	// (0: none); Config the document as published (sealed values stay
	// sealed: only the phone can open them).
	ConfigVersion uint64 `json:"config_version"`
	Config        string `json:"config,omitempty"`
	// Firmware is the bundle the director names, nil when none.
	Firmware *FirmwareTarget `json:"firmware,omitempty"`
	// Versions and expiry of the device's director metadata.
	TimestampVersion int64     `json:"timestamp_version"`
	SnapshotVersion  int64     `json:"snapshot_version"`
	TargetsVersion   int64     `json:"targets_version"`
	TimestampExpires time.Time `json:"timestamp_expires"`
	TargetsExpires   time.Time `json:"targets_expires"`
	// Accounts are the registrar accounts the fleet manages for it.
	Accounts []AccountStatus `json:"accounts,omitempty"`
	// ReportedConfigVersion is what the phone said it runs.
	ReportedConfigVersion uint64 `json:"reported_config_version,omitempty"`
}

// AccountStatus is one registrar account the fleet manages.
type AccountStatus struct {
	// Name is the [[account]]'s name, User and Domain the registrar's
	// subscriber, Credential the phone's credential-store name.
	Name       string `json:"name"`
	User       string `json:"user"`
	Domain     string `json:"domain"`
	Credential string `json:"credential"`
	// Generation counts the passwords generated for it.
	Generation uint64 `json:"generation"`
	// SealedVersion is the document version the current password was
	// sealed for; the phone confirms it by reporting that version or a
	// later one.
	SealedVersion uint64 `json:"sealed_version"`
	// PreviousValid is true while the password before it is still
	// accepted by the registrar (until the phone confirms the new one).
	PreviousValid bool      `json:"previous_valid"`
	RotatedAt     time.Time `json:"rotated_at"`
	NextRotation  time.Time `json:"next_rotation"`
}
