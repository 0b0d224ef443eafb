package store

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
)

// DeviceID names a device in the fleet: "dev-" and 32 lowercase hex
// digits (128 random bits), so IDs say nothing about the hardware.
type DeviceID string

const deviceIDPrefix = "dev-"

// NewDeviceID returns a random device ID from crypto/rand.
func NewDeviceID() DeviceID {
	var b [16]byte
	// crypto/rand.Read never returns an error (it crashes the program if
	// the kernel's generator fails).
	_, _ = rand.Read(b[:])
	return DeviceID(deviceIDPrefix + hex.EncodeToString(b[:]))
}

// Validate checks the form NewDeviceID makes.
func (id DeviceID) Validate() error {
	s := string(id)
	if len(s) != len(deviceIDPrefix)+32 || s[:len(deviceIDPrefix)] != deviceIDPrefix {
		return fmt.Errorf("%w: device ID %.80q, want %q and 32 hex digits", ErrInvalid, s, deviceIDPrefix)
	}
	for i := len(deviceIDPrefix); i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("%w: device ID %q: byte %d is not a lowercase hex digit", ErrInvalid, s, i)
		}
	}
	return nil
}

// ParseDeviceCursor parses a ListDevices cursor; "" is the start.
func ParseDeviceCursor(after string) (DeviceID, error) {
	if after == "" {
		return "", nil
	}
	id := DeviceID(after)
	if err := id.Validate(); err != nil {
		return "", fmt.Errorf("page cursor: %w", err)
	}
	return id, nil
}

// DeviceState is where a device is in its life.
type DeviceState string

// Device states. They only move forward: enrolled -> revoked -> retired,
// or enrolled -> retired.
const (
	// StateEnrolled: the device holds a certificate and may renew it.
	StateEnrolled DeviceState = "enrolled"
	// StateRevoked: its certificates are revoked and it may not renew;
	// it still holds its EK and serial, so it cannot enrol again until an
	// admin retires it.
	StateRevoked DeviceState = "revoked"
	// StateRetired: decommissioned; its EK and serial are free for a new
	// enrolment (the record stays for history).
	StateRetired DeviceState = "retired"
)

// Validate checks that s is one of the states.
func (s DeviceState) Validate() error {
	switch s {
	case StateEnrolled, StateRevoked, StateRetired:
		return nil
	}
	return fmt.Errorf("%w: device state %.32q", ErrInvalid, string(s))
}

// CanMove reports whether a device may go from s to to (a move to the same
// state is not a move).
func (s DeviceState) CanMove(to DeviceState) bool {
	switch {
	case s == StateEnrolled && (to == StateRevoked || to == StateRetired):
		return true
	case s == StateRevoked && to == StateRetired:
		return true
	}
	return false
}

// Device is an enrolled phone.
type Device struct {
	// ID is the fleet's name for the device (NewDeviceID).
	ID DeviceID
	// Serial, Model and Group come from the allow-list entry.
	Serial, Model, Group string
	// EK is the hash of the TPM's EK certificate.
	EK EKHash
	// IdentityPublicKey is the TPM-resident identity key, DER
	// SubjectPublicKeyInfo, whose possession enrolment proved.
	IdentityPublicKey []byte
	// State is where the device is in its life.
	State DeviceState
	// EnrolledAt is when CreateDevice ran; StateChangedAt when State last
	// changed (EnrolledAt until then); LastSeen the latest report's
	// ReceivedAt (EnrolledAt until then).
	EnrolledAt, StateChangedAt, LastSeen time.Time
	// CurrentCertSerial and CertNotAfter are those of the certificate
	// issued last (CreateDevice or AddCert).
	CurrentCertSerial CertSerial
	CertNotAfter      time.Time
	// SealingPublicKey is the TPM-resident key the fleet seals the
	// device's secrets to (DER SubjectPublicKeyInfo), proven at
	// enrolment; nil when the phone enrolled without one.
	SealingPublicKey []byte
}

// Validate checks every field a caller sets for CreateDevice.
func (d Device) Validate() error {
	if err := d.ID.Validate(); err != nil {
		return err
	}
	if err := checkSerial(d.Serial); err != nil {
		return fmt.Errorf("device %s: %w", d.ID, err)
	}
	if err := checkName("model", d.Model); err != nil {
		return fmt.Errorf("device %s: %w", d.ID, err)
	}
	if err := checkName("group", d.Group); err != nil {
		return fmt.Errorf("device %s: %w", d.ID, err)
	}
	if d.EK.IsZero() {
		return fmt.Errorf("%w: device %s: zero EK hash", ErrInvalid, d.ID)
	}
	if err := checkPublicKey(d.IdentityPublicKey); err != nil {
		return fmt.Errorf("device %s: %w", d.ID, err)
	}
	if err := d.State.Validate(); err != nil {
		return fmt.Errorf("device %s: %w", d.ID, err)
	}
	if err := checkTime("enrolled_at", d.EnrolledAt); err != nil {
		return fmt.Errorf("device %s: %w", d.ID, err)
	}
	if d.SealingPublicKey != nil {
		if err := CheckSealingKey(d.SealingPublicKey); err != nil {
			return fmt.Errorf("device %s: %w", d.ID, err)
		}
	}
	return nil
}

// ValidateNewDevice checks a CreateDevice call and returns the device as
// it is to be stored: enrolled, with its certificate fields, LastSeen and
// StateChangedAt set, times normalised.
func ValidateNewDevice(d Device, first Cert) (Device, Cert, error) {
	if err := d.Validate(); err != nil {
		return Device{}, Cert{}, err
	}
	if d.State != StateEnrolled {
		return Device{}, Cert{}, fmt.Errorf("%w: new device %s in state %s, want %s", ErrInvalid, d.ID, d.State, StateEnrolled)
	}
	if err := first.Validate(); err != nil {
		return Device{}, Cert{}, fmt.Errorf("device %s first certificate: %w", d.ID, err)
	}
	if first.DeviceID != d.ID {
		return Device{}, Cert{}, fmt.Errorf("%w: first certificate is for device %s, want %s", ErrInvalid, first.DeviceID, d.ID)
	}
	if first.RevokedAt != nil {
		return Device{}, Cert{}, fmt.Errorf("%w: device %s: first certificate already revoked", ErrInvalid, d.ID)
	}
	if !d.CurrentCertSerial.IsZero() && d.CurrentCertSerial != first.Serial {
		return Device{}, Cert{}, fmt.Errorf("%w: device %s: current certificate %s is not the first certificate %s", ErrInvalid, d.ID, d.CurrentCertSerial, first.Serial)
	}
	first = first.norm()
	d.IdentityPublicKey = append([]byte(nil), d.IdentityPublicKey...)
	if d.SealingPublicKey != nil {
		d.SealingPublicKey = append([]byte(nil), d.SealingPublicKey...)
	}
	d.EnrolledAt = NormTime(d.EnrolledAt)
	d.StateChangedAt = d.EnrolledAt
	d.LastSeen = d.EnrolledAt
	d.CurrentCertSerial = first.Serial
	d.CertNotAfter = first.NotAfter
	return d, first, nil
}
