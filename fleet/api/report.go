package api

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Report is what a phone tells the fleet at each check-in. Its JSON, as
// MarshalReport writes it, is the request body, and the identity key signs
// exactly those bytes (SignReport); the server keeps them as evidence.
type Report struct {
	// DeviceID is the phone's fleet ID (from its certificate); the server
	// refuses a report for another device than the TLS client's.
	DeviceID string `json:"device_id"`
	// SentAt is the phone's clock at signing; the server refuses a report
	// more than MaxClockSkew away from its own clock or older than the
	// last one it stored.
	SentAt time.Time `json:"sent_at"`
	// Model and Serial are what the phone believes it is; the server
	// compares them with its record.
	Model  string `json:"model"`
	Serial string `json:"serial"`
	// Firmware is the running image and its security version.
	Firmware Firmware `json:"firmware"`
	// Slots are the A/B slots (at most 8).
	Slots []Slot `json:"slots,omitempty"`
	// Boot is the boot-count state.
	Boot Boot `json:"boot"`
	// CertNotAfter is the expiry of the certificate the phone uses.
	CertNotAfter time.Time `json:"cert_not_after"`
	// Lockdown is the result of the phone's lockdown check.
	Lockdown Lockdown `json:"lockdown"`
	// Counters are security counters by name (at most 256).
	Counters map[string]uint64 `json:"counters,omitempty"`
	// UptimeSeconds is the time since boot.
	UptimeSeconds uint64 `json:"uptime_s"`
	// Provisioning is the state of the phone's director metadata and
	// configuration document; absent from phones that predate it.
	Provisioning *Provisioning `json:"provisioning,omitempty"`
}

// Provisioning is what a phone reports about what the director sent it.
type Provisioning struct {
	// ConfigVersion is the version of the director's configuration
	// document the phone runs and has marked good (0: none). The fleet
	// takes it as the phone's confirmation of the secrets in that
	// document: a rotated password's predecessor stays valid at the
	// registrar until then.
	ConfigVersion uint64 `json:"config_version,omitempty"`
	// RevertedVersion is the last document version the phone applied and
	// reverted by itself (it broke what worked), 0 for none.
	RevertedVersion uint64 `json:"reverted_version,omitempty"`
	// DirectorTargets is the version of the director targets metadata the
	// phone trusts.
	DirectorTargets int64 `json:"director_targets,omitempty"`
	// Stale is true when the phone's trusted metadata expired (a frozen
	// server, or replayed files): it keeps its last good configuration.
	// StaleRole names the role that expired.
	Stale     bool   `json:"stale,omitempty"`
	StaleRole string `json:"stale_role,omitempty"`
	// LastError is why the phone's last refresh or apply was refused.
	LastError string `json:"last_error,omitempty"`
}

// Bounds on Provisioning's text.
const (
	maxStaleRole = 16
	maxLastError = 512
)

// Validate checks the text fields' bounds.
func (p *Provisioning) Validate() error {
	if len(p.StaleRole) > maxStaleRole {
		return fmt.Errorf("provisioning.stale_role of %d bytes, want at most %d", len(p.StaleRole), maxStaleRole)
	}
	if len(p.LastError) > maxLastError {
		return fmt.Errorf("provisioning.last_error of %d bytes, want at most %d", len(p.LastError), maxLastError)
	}
	if p.DirectorTargets < 0 {
		return fmt.Errorf("provisioning.director_targets %d is negative", p.DirectorTargets)
	}
	return nil
}

// Firmware is an image version and its anti-rollback security version.
type Firmware struct {
	Version         string `json:"version"`
	SecurityVersion uint64 `json:"security_version"`
}

// Slot is one A/B slot.
type Slot struct {
	Name            string `json:"name"`
	Version         string `json:"version"`
	SecurityVersion uint64 `json:"security_version"`
	Booted          bool   `json:"booted"`
	Good            bool   `json:"good"`
	// Bad: the phone's updater gave up on the slot (the bootloader fell
	// back from it, or a reboot cut its install short); it will not boot
	// this image again.
	Bad bool `json:"bad,omitempty"`
}

// Boot is the boot-count state.
type Boot struct {
	Slot         string `json:"slot"`
	AttemptsLeft uint32 `json:"attempts_left"`
	MarkedGood   bool   `json:"marked_good"`
}

// Lockdown is the outcome of the lockdown check: OK, or the drift found.
type Lockdown struct {
	OK       bool     `json:"ok"`
	Findings []string `json:"findings,omitempty"`
}

// ErrNotCanonical is returned by ParseReport for a body that is not
// exactly what MarshalReport makes of its own parse: unknown or duplicate
// fields, another field order, spacing, or times not in UTC. Only one byte
// string can carry a given report, so the signed bytes and the stored
// fields cannot disagree.
var ErrNotCanonical = errors.New("report is not in canonical form")

// MarshalReport encodes r canonically: encoding/json's output (fields in
// declaration order, map keys sorted) with every time in UTC.
func MarshalReport(r Report) ([]byte, error) {
	r.SentAt = r.SentAt.UTC()
	r.CertNotAfter = r.CertNotAfter.UTC()
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("marshal report: %w", err)
	}
	if len(b) > MaxReport {
		return nil, fmt.Errorf("marshal report: %d bytes, want at most %d", len(b), MaxReport)
	}
	return b, nil
}

// ParseReport decodes a report body and checks that it is canonical.
func ParseReport(body []byte) (Report, error) {
	var r Report
	if len(body) == 0 || len(body) > MaxReport {
		return r, fmt.Errorf("report of %d bytes, want 1..%d", len(body), MaxReport)
	}
	if err := DecodeStrict(bytes.NewReader(body), &r); err != nil {
		return Report{}, fmt.Errorf("report: %w", err)
	}
	again, err := MarshalReport(r)
	if err != nil {
		return Report{}, err
	}
	if !bytes.Equal(again, body) {
		return Report{}, ErrNotCanonical
	}
	if r.Provisioning != nil {
		if err := r.Provisioning.Validate(); err != nil {
			return Report{}, fmt.Errorf("report: %w", err)
		}
	}
	return r, nil
}

// SignReport signs a report body with the identity key and returns the
// SignatureHeader value.
func SignReport(key crypto.Signer, body []byte) (string, error) {
	sum := sha256.Sum256(body)
	sig, err := key.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("sign report: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// ErrBadSignature is returned by VerifyReport for a signature that does
// not verify under the device's key.
var ErrBadSignature = errors.New("report signature does not verify")

// VerifyReport checks a SignatureHeader value over body with the device's
// identity key.
func VerifyReport(key *ecdsa.PublicKey, body []byte, header string) error {
	if header == "" || len(header) > MaxSignatureHeader {
		return fmt.Errorf("%w: %s header of %d bytes, want 1..%d", ErrBadSignature, SignatureHeader, len(header), MaxSignatureHeader)
	}
	sig, err := base64.StdEncoding.DecodeString(header)
	if err != nil {
		return fmt.Errorf("%w: %s header: %v", ErrBadSignature, SignatureHeader, err)
	}
	sum := sha256.Sum256(body)
	if key == nil || !ecdsa.VerifyASN1(key, sum[:], sig) {
		return ErrBadSignature
	}
	return nil
}

// Actions a check-in answer asks of the phone.
const (
	// ActionNone: carry on.
	ActionNone = "none"
	// ActionRenew: the certificate is past two-thirds of its life (or the
	// fleet wants a new one): renew now.
	ActionRenew = "renew"
	// ActionRetire: the phone was decommissioned: wipe its credentials.
	ActionRetire = "retire"
)

// CheckInResponse answers a check-in.
type CheckInResponse struct {
	// Action is ActionNone, ActionRenew or ActionRetire.
	Action string `json:"action"`
	// NextCheckInSeconds is the polling interval the fleet asks for; the
	// phone adds jitter.
	NextCheckInSeconds uint32 `json:"next_checkin_s"`
	// Posture lists why a renewal would be refused now (empty when it
	// would not be).
	Posture []string `json:"posture,omitempty"`
}

// Validate checks the action and bounds.
func (r *CheckInResponse) Validate() error {
	switch r.Action {
	case ActionNone, ActionRenew, ActionRetire:
	default:
		return fmt.Errorf("check-in action %.32q unknown", r.Action)
	}
	if len(r.Posture) > 32 {
		return fmt.Errorf("check-in answer with %d posture findings, want at most 32", len(r.Posture))
	}
	return nil
}

// DecodeStrict decodes exactly one JSON value from r into v, refusing
// unknown fields and anything after the value.
func DecodeStrict(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON value")
	}
	return nil
}
