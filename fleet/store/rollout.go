package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
)

// Bounds on the rollout records.
const (
	// MaxRolloutData bounds a rollout's record (its plan, rings, state and
	// history, as fleet/rollout encodes them).
	MaxRolloutData = 1 << 20
	// MaxRolloutDeviceData bounds one device's record in a rollout (its
	// staged metadata, signatures and health: the configuration
	// documents it may carry are at most 1 MiB each).
	MaxRolloutDeviceData = 3 << 20
	// MaxRolloutDevices bounds the devices of one rollout.
	MaxRolloutDevices = 10000
	// MaxApproverKey bounds an approver's public key (PKIX DER).
	MaxApproverKey = 512
)

// RolloutID names a rollout: "ro-" and 32 lowercase hex digits.
type RolloutID string

const rolloutIDPrefix = "ro-"

// NewRolloutID returns a random rollout ID.
func NewRolloutID() RolloutID {
	var b [16]byte
	// crypto/rand.Read never returns an error.
	_, _ = rand.Read(b[:])
	return RolloutID(rolloutIDPrefix + hex.EncodeToString(b[:]))
}

// Validate checks the form NewRolloutID makes.
func (id RolloutID) Validate() error {
	s := string(id)
	if len(s) != len(rolloutIDPrefix)+32 || s[:len(rolloutIDPrefix)] != rolloutIDPrefix {
		return fmt.Errorf("%w: rollout ID %.80q, want %q and 32 hex digits", ErrInvalid, s, rolloutIDPrefix)
	}
	for i := len(rolloutIDPrefix); i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("%w: rollout ID %q: byte %d is not a lowercase hex digit", ErrInvalid, s, i)
		}
	}
	return nil
}

// Rollout is a staged rollout as the store keeps it: its group, whether
// it is still active, and the rest opaque (fleet/rollout's encoding),
// versioned by Rev for compare-and-swap between replicas.
type Rollout struct {
	ID    RolloutID
	Group string
	// Active is true until the rollout completed, was aborted or refused:
	// a group has at most one active rollout.
	Active bool
	// Rev counts the writes (1 for the first).
	Rev       uint64
	CreatedAt time.Time
	// Data is 1..MaxRolloutData bytes.
	Data []byte
}

// Validate checks the fields a caller sets.
func (r Rollout) Validate() error {
	if err := r.ID.Validate(); err != nil {
		return err
	}
	if err := checkName("group", r.Group); err != nil {
		return err
	}
	if len(r.Data) == 0 || len(r.Data) > MaxRolloutData {
		return fmt.Errorf("%w: rollout %s: %d bytes, want 1..%d", ErrInvalid, r.ID, len(r.Data), MaxRolloutData)
	}
	return checkTime("created_at", r.CreatedAt)
}

// RolloutDevice is one device's part of a rollout: opaque to the store,
// versioned by Rev for compare-and-swap.
type RolloutDevice struct {
	Rollout RolloutID
	Device  DeviceID
	Rev     uint64
	// Data is 1..MaxRolloutDeviceData bytes.
	Data []byte
}

// Validate checks the fields a caller sets.
func (d RolloutDevice) Validate() error {
	if err := d.Rollout.Validate(); err != nil {
		return err
	}
	if err := d.Device.Validate(); err != nil {
		return err
	}
	if len(d.Data) == 0 || len(d.Data) > MaxRolloutDeviceData {
		return fmt.Errorf("%w: rollout %s device %s: %d bytes, want 1..%d", ErrInvalid, d.Rollout, d.Device, len(d.Data), MaxRolloutDeviceData)
	}
	return nil
}

// ApproverKey binds an admin to the public key they sign director
// metadata with (a targets key of the director root). The admin proved
// possession of the private key when it was registered.
type ApproverKey struct {
	// KeyID is the key's TUF key ID: 64 lowercase hex digits.
	KeyID string
	// Admin is the admin's login name.
	Admin string
	// PublicKey is PKIX DER, at most MaxApproverKey bytes.
	PublicKey    []byte
	RegisteredAt time.Time
}

// Validate checks the fields.
func (k ApproverKey) Validate() error {
	if len(k.KeyID) != 64 {
		return fmt.Errorf("%w: key ID of %d bytes, want 64 hex digits", ErrInvalid, len(k.KeyID))
	}
	for i := 0; i < len(k.KeyID); i++ {
		if c := k.KeyID[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("%w: key ID %q: byte %d is not a lowercase hex digit", ErrInvalid, k.KeyID, i)
		}
	}
	if err := checkToken("admin", k.Admin, MaxNameLen, "@"); err != nil {
		return err
	}
	if len(k.PublicKey) == 0 || len(k.PublicKey) > MaxApproverKey {
		return fmt.Errorf("%w: public key of %d bytes, want 1..%d", ErrInvalid, len(k.PublicKey), MaxApproverKey)
	}
	return checkTime("registered_at", k.RegisteredAt)
}

// RolloutStore keeps rollouts, their devices and the admins' approval
// keys. boltstore and pgstore implement it beside Store and pass
// storetest.RunRollouts. Every method is safe for concurrent use, across
// replicas with pgstore; a method that returns an error changed nothing.
type RolloutStore interface {
	// CreateRollout stores a new rollout (Rev 1) with its devices (Rev 1
	// each, at most MaxRolloutDevices), in one transaction. An ID taken,
	// or an active rollout of the same group while r is active, is
	// ErrExists; a device twice is ErrInvalid.
	CreateRollout(ctx context.Context, r Rollout, devices []RolloutDevice) (Rollout, error)
	// GetRollout returns a rollout, or ErrNotFound.
	GetRollout(ctx context.Context, id RolloutID) (Rollout, error)
	// PutRollout writes r if the stored revision is prev and returns it
	// with Rev prev+1; another revision is ErrState. Group and CreatedAt
	// do not change. A rollout that is no longer active never becomes
	// active again (ErrState).
	PutRollout(ctx context.Context, r Rollout, prev uint64) (Rollout, error)
	// ListRollouts returns up to limit (1..MaxPageSize) rollouts created
	// before the cursor, newest first (the cursor is the ID of the last
	// one of the previous page; "" starts at the newest).
	ListRollouts(ctx context.Context, p PageRequest) (Page[Rollout], error)
	// ListActiveRollouts returns every active rollout (at most one per
	// group, at most MaxPageSize).
	ListActiveRollouts(ctx context.Context) ([]Rollout, error)
	// ActiveRolloutOf returns the group's active rollout, or ErrNotFound.
	ActiveRolloutOf(ctx context.Context, group string) (Rollout, error)

	// GetRolloutDevice returns a device's record in a rollout, or
	// ErrNotFound.
	GetRolloutDevice(ctx context.Context, id RolloutID, dev DeviceID) (RolloutDevice, error)
	// PutRolloutDevice writes d if its stored revision is prev (the record
	// must exist: ErrNotFound) and returns it with Rev prev+1; another
	// revision is ErrState.
	PutRolloutDevice(ctx context.Context, d RolloutDevice, prev uint64) (RolloutDevice, error)
	// ListRolloutDevices returns a page of a rollout's devices in device
	// ID order (ErrNotFound for no rollout).
	ListRolloutDevices(ctx context.Context, id RolloutID, p PageRequest) (Page[RolloutDevice], error)

	// PutApproverKey registers an admin's approval key: a key ID already
	// registered, or an admin who has one, is ErrExists.
	PutApproverKey(ctx context.Context, k ApproverKey) error
	// GetApproverKey returns a key by ID, or ErrNotFound.
	GetApproverKey(ctx context.Context, keyID string) (ApproverKey, error)
	// ListApproverKeys returns every registered key (at most
	// MaxPageSize), by key ID.
	ListApproverKeys(ctx context.Context) ([]ApproverKey, error)
	// DeleteApproverKey removes a key; ErrNotFound when none.
	DeleteApproverKey(ctx context.Context, keyID string) error
}
