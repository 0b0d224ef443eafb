package update

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/update/bundle"
)

// Option configures an Updater.
type Option func(*Updater) error

// WithFloor sets the anti-rollback floor and the kind Status reports for it
// (FloorTPM for hal/tpm's NV counter). Without it the floor is a
// StateFloor in the updater's database, reported as FloorStateFile.
func WithFloor(f Floor, kind string) Option {
	return func(u *Updater) error {
		if f == nil {
			return errors.New("WithFloor: nil floor")
		}
		if kind == "" {
			return errors.New("WithFloor: empty kind")
		}
		u.floor, u.floorKind = f, kind
		return nil
	}
}

// WithLogger sets the logger; the updater adds component=update.
func WithLogger(l *slog.Logger) Option {
	return func(u *Updater) error {
		if l == nil {
			return errors.New("WithLogger: nil logger")
		}
		u.log = l
		return nil
	}
}

// WithClock sets the clock for certificate checks and records (default
// time.Now).
func WithClock(now func() time.Time) Option {
	return func(u *Updater) error {
		if now == nil {
			return errors.New("WithClock: nil clock")
		}
		u.now = now
		return nil
	}
}

// WithPurpose selects the signer certificate rule (default
// bundle.PurposeCodeSign, RAUC's check-purpose=codesign).
func WithPurpose(p bundle.Purpose) Option {
	return func(u *Updater) error {
		if p != bundle.PurposeCodeSign && p != bundle.PurposeSMIME {
			return fmt.Errorf("WithPurpose(%d): unknown purpose", int(p))
		}
		u.purpose = p
		return nil
	}
}

// Updater installs bundles into the inactive slot and tracks boots. Its
// methods are safe for concurrent use: Install, MarkGood and CheckBoot are
// serialised by mu; Status reads without it.
type Updater struct {
	cfg       Config
	db        *bbolt.DB       // owned by the caller; bucket "update" is ours
	env       BootEnv         // never nil
	keyring   *bundle.Keyring // never nil
	floor     Floor           // never nil
	floorKind string
	purpose   bundle.Purpose
	now       func() time.Time
	log       *slog.Logger // with component=update
	baseLog   *slog.Logger // as given, for the bundle reader's own component
	mu        sync.Mutex
}

// New returns an updater for the board described by cfg, keeping its
// records in db (which the caller opened and closes), switching boots
// through env and trusting bundles signed under keyring.
func New(cfg Config, db *bbolt.DB, env BootEnv, keyring *bundle.Keyring, opts ...Option) (*Updater, error) {
	cfg.Slots = append([]Slot(nil), cfg.Slots...)
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("update: %w", err)
	}
	if db == nil || env == nil || keyring == nil {
		return nil, fmt.Errorf("update: database, boot environment and keyring are required: %w", errConfig)
	}
	u := &Updater{cfg: cfg, db: db, env: env, keyring: keyring, purpose: bundle.PurposeCodeSign,
		now: time.Now, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		if err := o(u); err != nil {
			return nil, fmt.Errorf("update: %w", err)
		}
	}
	u.baseLog = u.log
	u.log = u.log.With("component", "update")
	if err := ensureBucket(db); err != nil {
		return nil, fmt.Errorf("update: %w", err)
	}
	if u.floor == nil {
		f, err := NewStateFloor(db)
		if err != nil {
			return nil, fmt.Errorf("update: %w", err)
		}
		u.floor, u.floorKind = f, FloorStateFile
	}
	return u, nil
}
