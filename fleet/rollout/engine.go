package rollout

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/director"
	"github.com/hardphone/hardphone/fleet/store"
	"github.com/hardphone/hardphone/fleet/tufrepo"
)

// Store is where the engine keeps rollouts and reads the fleet
// (boltstore.Store and pgstore.Store).
type Store interface {
	store.Store
	store.RolloutStore
}

// Director is the fleet's director as the engine uses it
// (director.Service).
type Director interface {
	Publish(ctx context.Context, id store.DeviceID) (director.Result, error)
	Stage(ctx context.Context, id store.DeviceID, ov *director.Override) (*director.Staged, error)
	Firmware(ctx context.Context, name string) (store.FirmwareTarget, error)
	Assignment(ctx context.Context, sc store.Scope) (store.Assignment, error)
	SetConfig(ctx context.Context, sc store.Scope, doc []byte, admin string) (director.Change, error)
	AssignFirmware(ctx context.Context, sc store.Scope, name, admin string) (director.Change, error)
	AdminSignaturesNeeded() int
	Director() *tufrepo.Director
}

// Auditor appends to the audit log (audit.Log).
type Auditor interface {
	Append(ctx context.Context, e audit.Entry) (int64, error)
}

// Config is what an engine needs.
type Config struct {
	Store    Store
	Director Director
	// Audit records every transition; required.
	Audit Auditor
}

// Option adjusts an engine.
type Option func(*options) error

type options struct {
	log     *slog.Logger
	now     func() time.Time
	replica string
	lease   time.Duration
}

// WithLogger sets the logger; the engine adds component=rollout.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("nil logger")
		}
		o.log = l
		return nil
	}
}

// WithClock sets the clock (tests: deadlines without waiting).
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return errors.New("nil clock")
		}
		o.now = now
		return nil
	}
}

// WithLease sets how long a replica holds a rollout while it advances it
// (default DefaultLease).
func WithLease(d time.Duration) Option {
	return func(o *options) error {
		if d < time.Second || d > time.Hour {
			return fmt.Errorf("lease %v, want 1s..1h", d)
		}
		o.lease = d
		return nil
	}
}

// DefaultLease is how long a replica holds a rollout it advances.
const DefaultLease = time.Minute

// casAttempts bounds the retries of a write that lost a race.
const casAttempts = 8

// Engine runs rollouts. Safe for concurrent use; replicas share the store.
type Engine struct {
	st      Store
	dir     Director
	audit   Auditor
	o       options
	log     *slog.Logger
	replica string

	flushMu sync.Mutex // serialises audit flushes within the replica
}

// New builds an engine.
func New(cfg Config, opts ...Option) (*Engine, error) {
	o := options{log: slog.New(slog.DiscardHandler), now: time.Now, lease: DefaultLease}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("rollout: %w", err)
		}
	}
	if cfg.Store == nil || cfg.Director == nil || cfg.Audit == nil {
		return nil, errors.New("rollout: a store, a director and an audit log are required")
	}
	var b [8]byte
	// crypto/rand.Read never returns an error.
	_, _ = rand.Read(b[:])
	return &Engine{st: cfg.Store, dir: cfg.Director, audit: cfg.Audit, o: o, log: o.log.With("component", "rollout"),
		replica: hex.EncodeToString(b[:])}, nil
}

// SignaturesNeeded is how many admins' signatures each device's targets
// needs (0: the director signs alone).
func (e *Engine) SignaturesNeeded() int { return e.dir.AdminSignaturesNeeded() }

func (e *Engine) now() time.Time { return store.NormTime(e.o.now()) }

// load reads a rollout's record.
func (e *Engine) load(ctx context.Context, id store.RolloutID) (*record, store.Rollout, error) {
	r, err := e.st.GetRollout(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, r, fmt.Errorf("%w: rollout %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, r, err
	}
	rec, err := decodeRecord(r.Data)
	if err != nil {
		return nil, r, err
	}
	return rec, r, nil
}

// save writes rec over revision r.Rev.
func (e *Engine) save(ctx context.Context, r store.Rollout, rec *record) (store.Rollout, error) {
	b, err := rec.encode()
	if err != nil {
		return r, err
	}
	r.Data = b
	r.Active = !rec.State.Final()
	return e.st.PutRollout(ctx, r, r.Rev)
}

// update applies fn to the rollout by compare-and-swap, retrying when
// another replica wrote first; then flushes the audit entries.
func (e *Engine) update(ctx context.Context, id store.RolloutID, fn func(*record) error) (*record, error) {
	for attempt := 0; ; attempt++ {
		rec, r, err := e.load(ctx, id)
		if err != nil {
			return nil, err
		}
		if err := fn(rec); err != nil {
			return nil, err
		}
		r, err = e.save(ctx, r, rec)
		if errors.Is(err, store.ErrState) && attempt < casAttempts {
			continue
		}
		if err != nil {
			return nil, err
		}
		e.flush(ctx, id)
		return rec, nil
	}
}

// deviceIDsOf lists a ring's devices.
func (r *record) allDevices() []store.DeviceID {
	var out []store.DeviceID
	for _, rg := range r.Rings {
		out = append(out, rg.Devices...)
	}
	return out
}

// loadDevice reads a device's record in a rollout.
func (e *Engine) loadDevice(ctx context.Context, id store.RolloutID, dev store.DeviceID) (*deviceRecord, store.RolloutDevice, error) {
	rd, err := e.st.GetRolloutDevice(ctx, id, dev)
	if err != nil {
		return nil, rd, err
	}
	d, err := decodeDevice(rd.Data)
	return d, rd, err
}

// updateDevice applies fn to a device's record by compare-and-swap.
func (e *Engine) updateDevice(ctx context.Context, id store.RolloutID, dev store.DeviceID, fn func(*deviceRecord) error) (*deviceRecord, error) {
	for attempt := 0; ; attempt++ {
		d, rd, err := e.loadDevice(ctx, id, dev)
		if err != nil {
			return nil, err
		}
		if err := fn(d); err != nil {
			return nil, err
		}
		b, err := d.encode()
		if err != nil {
			return nil, err
		}
		rd.Data = b
		_, err = e.st.PutRolloutDevice(ctx, rd, rd.Rev)
		if errors.Is(err, store.ErrState) && attempt < casAttempts {
			continue
		}
		if err != nil {
			return nil, err
		}
		return d, nil
	}
}

// Override implements director.Overrider: what a device's group gives it
// now, while its group has an active rollout that includes it.
func (e *Engine) Override(ctx context.Context, d store.Device) (*director.Override, error) {
	r, err := e.st.ActiveRolloutOf(ctx, d.Group)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	dr, _, err := e.loadDevice(ctx, r.ID, d.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	rec, err := decodeRecord(r.Data)
	if err != nil {
		return nil, err
	}
	ov := rec.override()
	ov.Apply = dr.Released && !dr.Reverted && rec.State != StateAborting && rec.State != StateAborted && rec.State != StatePending &&
		rec.State != StateRefused
	if s := dr.Staged; s != nil && !s.Unchanged {
		ov.Signed = []director.Signed{s.Forward, s.Revert}
	}
	return ov, nil
}

// override is the rollout's change as the director applies it.
func (r *record) override() *director.Override {
	ov := &director.Override{Rollout: r.ID, DeviceScope: r.Spec.Device != ""}
	switch r.Spec.Kind {
	case KindFirmware:
		ov.SetFirmware, ov.Firmware = true, r.Target
	case KindConfig:
		ov.SetConfig, ov.GroupConfig = true, r.Spec.Config
	}
	return ov
}

func configHash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
