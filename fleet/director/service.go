package director

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/hardphone/hardphone/fleet/configdoc"
	"github.com/hardphone/hardphone/fleet/registrar"
	"github.com/hardphone/hardphone/fleet/sealed"
	"github.com/hardphone/hardphone/fleet/store"
	"github.com/hardphone/hardphone/fleet/tufrepo"
)

// Registrar is where the director writes the accounts it manages
// (fleet/registrar.Subscribers).
type Registrar interface {
	Algorithm() string
	Set(ctx context.Context, user, domain string, h registrar.Hashes, keepPrevious bool) error
	DropPrevious(ctx context.Context, user, domain string) error
	Remove(ctx context.Context, user, domain string) error
}

// Notifier asks the registrar to tell a phone to poll now
// (fleet/registrar.RPC).
type Notifier interface {
	CheckSync(ctx context.Context, user, domain string) (int, error)
}

// ImageTargets lists the image repository's firmware (ImageRepo).
type ImageTargets interface {
	Targets(ctx context.Context, refresh bool) (map[string]tufrepo.Firmware, error)
}

// Config is what a director needs.
type Config struct {
	// Store holds the assignments and each device's state; required.
	Store store.Store
	// Director signs with the online keys; required.
	Director *tufrepo.Director
	// Image lists the firmware that may be assigned; nil refuses every
	// firmware assignment.
	Image ImageTargets
	// Registrar and Domains: accounts whose domain is one of Domains, and
	// that name a password_cred, get generated passwords written there;
	// nil manages none.
	Registrar Registrar
	Domains   []string
	// Notifier sends check-sync after a change; nil: phones poll.
	Notifier Notifier
	// Overrides lets a staged rollout change what a device gets before
	// its group's assignment changes (fleet/rollout.Engine); nil: none.
	Overrides Overrider
}

// Option adjusts a director.
type Option func(*options) error

type options struct {
	log      *slog.Logger
	now      func() time.Time
	rotation time.Duration
	rotated  func(ctx context.Context, id store.DeviceID, account string, at time.Time) // nil: nobody
}

// WithRotationHook has f called after a device's password for an account
// was replaced (a rotation, scheduled or asked for, or a new credential
// name) and the new one stored: the anomaly detector counts credential
// changes. The first password of an account is not a change.
func WithRotationHook(f func(ctx context.Context, id store.DeviceID, account string, at time.Time)) Option {
	return func(o *options) error {
		if f == nil {
			return errors.New("nil rotation hook")
		}
		o.rotated = f
		return nil
	}
}

// WithLogger sets the logger; the package adds component=director.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("nil logger")
		}
		o.log = l
		return nil
	}
}

// WithClock sets the clock (tests: expiry and rotation without waiting).
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return errors.New("nil clock")
		}
		o.now = now
		return nil
	}
}

// WithRotation sets how long a generated password is used before a new
// one replaces it (default DefaultRotation; 0 never rotates).
func WithRotation(d time.Duration) Option {
	return func(o *options) error {
		if d != 0 && d < time.Minute {
			return fmt.Errorf("rotation interval %v, want 0 or at least 1m", d)
		}
		o.rotation = d
		return nil
	}
}

// DefaultRotation is how often passwords rotate by default.
const DefaultRotation = 30 * 24 * time.Hour

// casAttempts bounds the retries of an operation that lost a race to
// another replica.
const casAttempts = 8

// notifyParallel bounds check-sync requests in flight.
const notifyParallel = 16

// Service is the director. Safe for concurrent use; replicas share the
// store.
type Service struct {
	st    store.Store
	dir   *tufrepo.Director
	image ImageTargets
	reg   Registrar
	doms  []string
	notif Notifier
	ovr   Overrider // nil: no rollouts
	o     options
	log   *slog.Logger
	life  tufrepo.Lifetimes

	locks    [64]sync.Mutex // per-device serialization within a replica
	notifies chan struct{}  // check-sync slots

	mu      sync.Mutex // guards counters
	counter map[string]uint64
}

// New builds a director.
func New(cfg Config, opts ...Option) (*Service, error) {
	o := options{log: slog.New(slog.DiscardHandler), now: time.Now, rotation: DefaultRotation}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("director: %w", err)
		}
	}
	if cfg.Store == nil || cfg.Director == nil {
		return nil, errors.New("director: a store and a director are required")
	}
	for _, d := range cfg.Domains {
		if err := registrar.CheckAccount("x", d); err != nil {
			return nil, fmt.Errorf("director: registrar domain: %w", err)
		}
	}
	if cfg.Registrar != nil && len(cfg.Domains) == 0 {
		return nil, errors.New("director: a registrar needs the domains it serves")
	}
	return &Service{st: cfg.Store, dir: cfg.Director, image: cfg.Image, reg: cfg.Registrar, doms: slices.Clone(cfg.Domains),
		notif: cfg.Notifier, ovr: cfg.Overrides, o: o, log: o.log.With("component", "director"), life: cfg.Director.Lifetimes(),
		notifies: make(chan struct{}, notifyParallel), counter: map[string]uint64{}}, nil
}

func (s *Service) count(name string) {
	s.mu.Lock()
	s.counter[name]++
	s.mu.Unlock()
}

// Counters returns the director's counters (published, refreshed,
// rotated, check_sync_sent, ...).
func (s *Service) Counters() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]uint64, len(s.counter))
	for k, v := range s.counter {
		out[k] = v
	}
	return out
}

func (s *Service) lock(id store.DeviceID) func() {
	h := fnv.New32a()
	h.Write([]byte(id))
	m := &s.locks[h.Sum32()%uint32(len(s.locks))]
	m.Lock()
	return m.Unlock
}

// load reads a device's state; a device without one gets an empty state
// (rev 0).
func (s *Service) load(ctx context.Context, id store.DeviceID) (*state, uint64, error) {
	p, err := s.st.GetProvision(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return &state{Format: stateFormat}, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	st, err := decodeState(p.Data)
	if err != nil {
		return nil, 0, err
	}
	return st, p.Rev, nil
}

// save writes a device's state if it is still at rev.
func (s *Service) save(ctx context.Context, id store.DeviceID, st *state, rev uint64) (uint64, error) {
	b, err := st.encode()
	if err != nil {
		return 0, err
	}
	p, err := s.st.PutProvision(ctx, store.Provision{DeviceID: id, DueAt: s.dueAt(st), Data: b}, rev)
	if err != nil {
		return 0, err
	}
	return p.Rev, nil
}

// farFuture is the due time of a device with nothing to do.
func (s *Service) farFuture() time.Time { return s.o.now().Add(100 * 365 * 24 * time.Hour) }

// dueAt is when the worker must look at the device again: half-way
// through the timestamp's life, a quarter before the targets expire, when
// a password is to rotate.
func (s *Service) dueAt(st *state) time.Time {
	due := s.farFuture()
	if st.Retired {
		return due
	}
	if st.Repo != nil {
		due = minTime(due, st.Repo.TimestampExpires.Add(-s.life.Timestamp/2))
		due = minTime(due, st.Repo.TargetsExpires.Add(-s.life.Targets/4))
	}
	for _, a := range st.Accounts {
		if a.Pending != nil {
			due = s.o.now()
		} else if t, ok := s.rotationDue(a); ok {
			due = minTime(due, t)
		}
	}
	return due
}

// rotationDue is when an account's password is to rotate; false when it
// cannot now (rotation off, or the last one not yet confirmed).
func (s *Service) rotationDue(a *account) (time.Time, bool) {
	if s.o.rotation == 0 || a.PreviousValid || a.Sealed == "" {
		return time.Time{}, false
	}
	return a.RotatedAt.Add(s.o.rotation), true
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// Result is what a publication did.
type Result struct {
	DeviceID string
	// Changed is false when the device's repository already said all of
	// it (nothing was signed).
	Changed        bool
	ConfigVersion  uint64
	TargetsVersion int64
}

// Publish brings a device's director repository in line with its
// assignments (and renews what is due), signing new metadata when what
// it says changed, and asks the registrar to tell the phone.
func (s *Service) Publish(ctx context.Context, id store.DeviceID) (Result, error) {
	return s.publish(ctx, id, publishOpts{})
}

type publishOpts struct {
	force  bool // sign new targets even when nothing changed
	rotate bool // rotate every account's password now
}

func (s *Service) publish(ctx context.Context, id store.DeviceID, po publishOpts) (Result, error) {
	defer s.lock(id)()
	var lastErr error
	for attempt := 0; attempt < casAttempts; attempt++ {
		res, err := s.publishOnce(ctx, id, po)
		if !errors.Is(err, store.ErrState) {
			return res, err
		}
		lastErr = err
		s.count("cas_retries")
	}
	return Result{}, fmt.Errorf("publish %s: %d attempts lost to other replicas: %w", id, casAttempts, lastErr)
}

// inputs is everything a device's targets are made of.
type inputs struct {
	doc      *configdoc.Doc // nil: no document
	accounts []configdoc.Account
	firmware *store.FirmwareTarget
}

// gather reads a device's assignments, applies a rollout's override
// when the device's ring has started, and composes its document.
func (s *Service) gather(ctx context.Context, d store.Device) (*inputs, *Override, error) {
	groupA, devA, err := s.assignmentsOf(ctx, d)
	if err != nil {
		return nil, nil, err
	}
	ov, err := s.override(ctx, d)
	if err != nil {
		return nil, nil, err
	}
	groupA, devA = ov.apply(d, groupA, devA)
	in, err := s.compose(d, groupA, devA)
	return in, ov, err
}

func (s *Service) compose(d store.Device, groupA, devA *store.Assignment) (*inputs, error) {
	in := &inputs{}
	var g, dv *configdoc.Doc
	var err error
	if groupA != nil && groupA.Config != nil {
		if g, err = configdoc.Parse(groupA.Config); err != nil {
			return nil, fmt.Errorf("%w: group %s: %w", ErrConfig, d.Group, err)
		}
	}
	if devA != nil && devA.Config != nil {
		if dv, err = configdoc.Parse(devA.Config); err != nil {
			return nil, fmt.Errorf("%w: device %s: %w", ErrConfig, d.ID, err)
		}
	}
	if g != nil || dv != nil {
		doc, err := configdoc.Compose(g, dv)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		if err := doc.Validate(); err != nil {
			return nil, fmt.Errorf("%w: device %s: %w", ErrConfig, d.ID, err)
		}
		accts, err := doc.Accounts()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		in.doc, in.accounts = doc, accts
	}
	switch {
	case devA != nil && devA.Firmware != nil:
		in.firmware = devA.Firmware
	case groupA != nil && groupA.Firmware != nil:
		in.firmware = groupA.Firmware
	}
	return in, nil
}

// managed reports whether the fleet generates the account's password.
func (s *Service) managed(a configdoc.Account) bool {
	return s.reg != nil && a.Credential != "" && slices.Contains(s.doms, a.Domain)
}

func (s *Service) publishOnce(ctx context.Context, id store.DeviceID, po publishOpts) (Result, error) {
	res := Result{DeviceID: string(id)}
	d, err := s.st.GetDevice(ctx, id)
	if err != nil {
		return res, fmt.Errorf("publish %s: %w", id, err)
	}
	if d.State != store.StateEnrolled {
		return res, fmt.Errorf("publish %s: %w: device is %s", id, ErrDevice, d.State)
	}
	st, rev, err := s.load(ctx, id)
	if err != nil {
		return res, fmt.Errorf("publish %s: %w", id, err)
	}
	in, ov, err := s.gather(ctx, d)
	var notReady error
	if errors.Is(err, ErrConfig) && st.Repo == nil {
		// Never published and no valid document yet (a group document
		// waiting for the device's overrides): publish the rest, so the
		// phone gets its director metadata and signed time now.
		notReady = err
		groupA, devA, aerr := s.assignmentsOf(ctx, d)
		if aerr != nil {
			return res, fmt.Errorf("publish %s: %w", id, aerr)
		}
		in = &inputs{}
		groupA, devA = ov.apply(d, groupA, devA)
		if groupA != nil {
			groupA.Config = nil
		}
		if devA != nil {
			devA.Config = nil
		}
		if in, err = s.compose(d, groupA, devA); err != nil {
			return res, fmt.Errorf("publish %s: %w", id, err)
		}
	} else if err != nil {
		return res, fmt.Errorf("publish %s: %w", id, err)
	}
	now := s.o.now()
	// The version a new document would get; a new password is sealed
	// for it (the phone accepts a value sealed for its document's
	// version or an earlier one).
	next := st.ConfigVersion + 1
	var manage []configdoc.Account
	for _, a := range in.accounts {
		if s.managed(a) {
			if err := registrar.CheckAccount(a.User, a.Domain); err != nil {
				return res, fmt.Errorf("publish %s: %w: account %s: %w", id, ErrConfig, a.Name, err)
			}
			manage = append(manage, a)
		}
	}
	var sealTo *ecdh.PublicKey
	if len(manage) > 0 {
		if d.SealingPublicKey == nil {
			return res, fmt.Errorf("publish %s: %w: it manages %d account(s) but proved no sealing key at enrolment (enrol it again)", id, ErrDevice, len(manage))
		}
		if sealTo, err = sealed.ParsePublicKey(d.SealingPublicKey); err != nil {
			return res, fmt.Errorf("publish %s: %w", id, err)
		}
	}
	// 1. Make the passwords that are needed, and store them pending
	//    (sealed and hashed) before the registrar sees them.
	old := st.Accounts
	accts, made, err := s.planAccounts(id, st, manage, sealTo, next, po.rotate, now)
	if err != nil {
		return res, fmt.Errorf("publish %s: %w", id, err)
	}
	var removed []*account
	for _, a := range old {
		if !slices.ContainsFunc(accts, func(b *account) bool { return b.User == a.User && b.Domain == a.Domain }) {
			removed = append(removed, a)
		}
	}
	st.Accounts = accts
	if made {
		if rev, err = s.save(ctx, id, st, rev); err != nil {
			return res, fmt.Errorf("publish %s: store new passwords: %w", id, err)
		}
	}
	// 2. The registrar: pending passwords in (idempotent), accounts the
	//    document dropped out.
	for _, a := range accts {
		if a.Pending == nil {
			continue
		}
		if err := s.reg.Set(ctx, a.User, a.Domain, registrar.Hashes{HA1: a.Pending.HA1, HA1b: a.Pending.HA1b}, a.Pending.KeepPrevious); err != nil {
			return res, fmt.Errorf("publish %s: %w", id, err)
		}
	}
	for _, a := range removed {
		if s.reg == nil {
			break
		}
		if err := s.reg.Remove(ctx, a.User, a.Domain); err != nil {
			return res, fmt.Errorf("publish %s: %w", id, err)
		}
	}
	keep := accts
	// 3. The document with the sealed values, the firmware, and the
	//    signature if what the targets say changed.
	docBytes, fw, inputsHash, err := s.render(id, in, manage, keep)
	if err != nil {
		return res, fmt.Errorf("publish %s: %w", id, err)
	}
	changed := st.Repo == nil || st.Inputs != inputsHash || po.force
	if !changed && len(removed) == 0 && !hasPending(keep) {
		res.ConfigVersion = st.ConfigVersion
		res.TargetsVersion = st.Repo.TargetsVersion
		return res, nil
	}
	version := st.ConfigVersion
	var prevDoc []byte
	if st.Repo != nil {
		prevDoc = st.Repo.Config
	}
	if docBytes != nil && !bytes.Equal(docBytes, prevDoc) {
		version = next
	}
	a := tufrepo.Assignment{}
	if fw != nil {
		tf := tufrepo.Firmware{Name: fw.Name, Length: fw.Length, Compatible: fw.Compatible, Version: fw.Version, SecurityVersion: fw.SecurityVersion}
		copy(tf.SHA256[:], fw.SHA256)
		a.Firmware = &tf
	}
	if docBytes != nil {
		a.Config = &tufrepo.ConfigDoc{Version: version, Data: docBytes}
	}
	if changed {
		var repo *tufrepo.DeviceRepo
		if s.dir.AdminSignaturesNeeded() > 0 {
			// The online keys alone cannot sign: publish what admins
			// signed for exactly these inputs, if anything.
			repo, version, err = s.publishSigned(st, id, ov, inputsHash)
		} else {
			repo, err = s.dir.Publish(st.Repo.deviceRepo(string(id)), string(id), a)
		}
		if err != nil {
			return res, fmt.Errorf("publish %s: %w", id, err)
		}
		files, err := filesOf(repo)
		if err != nil {
			return res, fmt.Errorf("publish %s: %w", id, err)
		}
		st.Prev, st.Repo = st.Repo, files
		st.ConfigVersion, st.Inputs, st.Firmware = version, inputsHash, fw
	}
	var rotated []string
	for _, a := range keep {
		if p := a.Pending; p != nil {
			if a.Sealed != "" {
				rotated = append(rotated, a.Name)
			}
			a.Sealed, a.SealedVersion, a.PreviousValid = p.Sealed, p.SealedVersion, p.KeepPrevious
			a.Pending = nil
		}
	}
	if _, err := s.save(ctx, id, st, rev); err != nil {
		return res, fmt.Errorf("publish %s: %w", id, err)
	}
	if s.o.rotated != nil {
		for _, name := range rotated {
			s.o.rotated(ctx, id, name, now)
		}
	}
	res.Changed, res.ConfigVersion, res.TargetsVersion = changed, st.ConfigVersion, st.Repo.TargetsVersion
	if changed {
		s.count("published")
		s.log.Info("director metadata published", "device", string(id), "config_version", st.ConfigVersion,
			"targets_version", st.Repo.TargetsVersion, "firmware", fwName(fw))
		s.checkSync(id, keep)
	}
	if notReady != nil {
		return res, fmt.Errorf("publish %s: published without a configuration document: %w", id, notReady)
	}
	return res, nil
}

func hasPending(accts []*account) bool {
	return slices.ContainsFunc(accts, func(a *account) bool { return a.Pending != nil })
}

func fwName(f *firmware) string {
	if f == nil {
		return ""
	}
	return f.Name
}

func toFirmware(f *store.FirmwareTarget) *firmware {
	if f == nil {
		return nil
	}
	return &firmware{Name: f.Name, Length: f.Length, SHA256: f.SHA256[:], Compatible: f.Compatible, Version: f.Version, SecurityVersion: f.SecurityVersion}
}

// planAccounts decides each managed account's next password: kept, or a
// new one (new account, another credential name, a rotation) sealed for
// document version next and hashed for the registrar. made is true when a
// new password was made (the state must be stored before the registrar
// is written).
func (s *Service) planAccounts(id store.DeviceID, st *state, manage []configdoc.Account, sealTo *ecdh.PublicKey,
	next uint64, rotate bool, now time.Time) ([]*account, bool, error) {
	var out []*account
	made := false
	for _, m := range manage {
		var cur *account
		for _, a := range st.Accounts {
			if a.User == m.User && a.Domain == m.Domain {
				cur = a
			}
		}
		if cur == nil {
			cur = &account{User: m.User, Domain: m.Domain}
		}
		cur.Name = m.Name
		if cur.Pending != nil {
			out = append(out, cur)
			continue
		}
		due, ok := s.rotationDue(cur)
		need := cur.Sealed == "" || cur.Credential != m.Credential ||
			(ok && !now.Before(due)) || (rotate && !cur.PreviousValid)
		if !need {
			out = append(out, cur)
			continue
		}
		p, err := s.newPassword(id, m, sealTo, next)
		if err != nil {
			return nil, false, err
		}
		// A password the phone holds (current, same credential) stays
		// valid until the phone confirms the new one.
		p.KeepPrevious = cur.Sealed != "" && cur.Credential == m.Credential
		cur.Credential, cur.Pending = m.Credential, p
		cur.Generation++
		cur.RotatedAt = now
		made = true
		if cur.Sealed != "" {
			s.count("rotated")
		}
		out = append(out, cur)
	}
	return out, made, nil
}

// passwordBytes is the entropy of a generated password (192 bits, 32
// base64url characters).
const passwordBytes = 24

// newPassword makes a password, seals it to the phone and hashes it for
// the registrar; the plaintext is zeroed before it returns.
func (s *Service) newPassword(id store.DeviceID, a configdoc.Account, sealTo *ecdh.PublicKey, version uint64) (*pending, error) {
	raw := make([]byte, passwordBytes)
	// crypto/rand.Read never returns an error.
	_, _ = rand.Read(raw)
	pw := make([]byte, base64.RawURLEncoding.EncodedLen(len(raw)))
	base64.RawURLEncoding.Encode(pw, raw)
	defer clear(pw)
	defer clear(raw)
	v, err := sealed.Seal(sealTo, sealed.Context{DeviceID: string(id), Version: version, Name: a.Credential}, pw)
	if err != nil {
		return nil, err
	}
	h, err := registrar.ComputeHashes(s.reg.Algorithm(), a.User, a.Domain, pw)
	if err != nil {
		return nil, err
	}
	return &pending{Sealed: v, SealedVersion: version, HA1: h.HA1, HA1b: h.HA1b}, nil
}

// checkSync asks the registrar to tell the phone, in the background.
func (s *Service) checkSync(id store.DeviceID, accts []*account) {
	if s.notif == nil || len(accts) == 0 {
		return
	}
	select {
	case s.notifies <- struct{}{}:
	default:
		s.count("check_sync_dropped")
		return
	}
	a := accts[0]
	go func() {
		defer func() { <-s.notifies }()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n, err := s.notif.CheckSync(ctx, a.User, a.Domain)
		switch {
		case errors.Is(err, registrar.ErrNotRegistered):
			s.count("check_sync_not_registered")
		case err != nil:
			s.count("check_sync_failed")
			s.log.Warn("check-sync", "device", string(id), "err", err)
		default:
			s.count("check_sync_sent")
			s.log.Debug("check-sync sent", "device", string(id), "contacts", n)
		}
	}()
}
