package tufrepo

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Lifetimes are how long each role's metadata stays valid after it is
// signed. Root and targets are signed with offline keys, so they live long;
// snapshot and timestamp are re-signed online and live short, which bounds
// how long a frozen or replayed repository goes unnoticed (TUF §1.5.2,
// freeze attacks).
type Lifetimes struct {
	Root, Targets, Snapshot, Timestamp time.Duration
}

// DefaultLifetimes: root a year, targets 90 days, snapshot a week,
// timestamp a day.
func DefaultLifetimes() Lifetimes {
	return Lifetimes{Root: 365 * 24 * time.Hour, Targets: 90 * 24 * time.Hour, Snapshot: 7 * 24 * time.Hour, Timestamp: 24 * time.Hour}
}

func (l Lifetimes) of(role string) time.Duration {
	switch role {
	case RoleRoot:
		return l.Root
	case RoleTargets:
		return l.Targets
	case RoleSnapshot:
		return l.Snapshot
	}
	return l.Timestamp
}

func (l Lifetimes) check() error {
	for _, r := range []string{RoleRoot, RoleTargets, RoleSnapshot, RoleTimestamp} {
		if d := l.of(r); d < time.Minute || d > 10*365*24*time.Hour {
			return fmt.Errorf("%s lifetime %v: want 1m..10y", r, d)
		}
	}
	return nil
}

// ParseLifetimes reads "root=8760h,targets=2160h,snapshot=168h,timestamp=24h"
// (any subset; the rest from base); "d" is accepted as 24h.
func ParseLifetimes(s string, base Lifetimes) (Lifetimes, error) {
	l := base
	if strings.TrimSpace(s) == "" {
		return l, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return l, fmt.Errorf("lifetime %q: want role=duration", kv)
		}
		d, err := parseDuration(v)
		if err != nil {
			return l, fmt.Errorf("lifetime of %s: %w", k, err)
		}
		switch k {
		case RoleRoot:
			l.Root = d
		case RoleTargets:
			l.Targets = d
		case RoleSnapshot:
			l.Snapshot = d
		case RoleTimestamp:
			l.Timestamp = d
		default:
			return l, fmt.Errorf("lifetime of %q: %w", k, errRole)
		}
	}
	return l, l.check()
}

func parseDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > 3660 {
			return 0, fmt.Errorf("%q: want a whole number of days", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// RoleKeys are a role's keys and how many of them must sign.
type RoleKeys struct {
	Keys      []*Key
	Threshold int
}

func (rk RoleKeys) check(role string) error {
	if len(rk.Keys) == 0 {
		return fmt.Errorf("role %s: no keys", role)
	}
	if rk.Threshold < 1 || rk.Threshold > len(rk.Keys) {
		return fmt.Errorf("role %s: threshold %d with %d key(s): want 1..%d", role, rk.Threshold, len(rk.Keys), len(rk.Keys))
	}
	seen := map[string]bool{}
	for _, k := range rk.Keys {
		if seen[k.ID()] {
			return fmt.Errorf("role %s: key %s listed twice", role, k.ID())
		}
		seen[k.ID()] = true
	}
	return nil
}

// settings is DIR/repo.json.
type settings struct {
	Format  int               `json:"format"`
	Expires map[string]string `json:"expires"`
}

const settingsFormat = 1

// Repo is an image (or director root) repository on disk.
type Repo struct {
	dir  string
	life Lifetimes
	now  func() time.Time
}

type options struct {
	now func() time.Time
}

// Option configures Init, Open and NewDirector.
type Option func(*options) error

// WithClock sets the clock expiry dates are computed from (default
// time.Now).
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return errors.New("WithClock: nil clock")
		}
		o.now = now
		return nil
	}
}

func applyOptions(opts []Option) (options, error) {
	o := options{now: time.Now}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	return o, nil
}

// InitParams are the keys of a new repository's roles and their lifetimes.
type InitParams struct {
	Root, Targets, Snapshot, Timestamp RoleKeys
	// Lifetimes; the zero value means DefaultLifetimes.
	Lifetimes Lifetimes
}

// Init makes a new repository in dir (created 0755; an existing non-empty
// directory is refused with ErrExists): root version 1 listing the keys,
// signed by every private root key given, and an empty targets version 1
// signed by every private targets key given, both staged. Publish then
// makes them public once each has its threshold.
func Init(dir string, p InitParams, opts ...Option) (*Repo, error) {
	o, err := applyOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	if p.Lifetimes == (Lifetimes{}) {
		p.Lifetimes = DefaultLifetimes()
	}
	if err := p.Lifetimes.check(); err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	roles := map[string]RoleKeys{RoleRoot: p.Root, RoleTargets: p.Targets, RoleSnapshot: p.Snapshot, RoleTimestamp: p.Timestamp}
	for name, rk := range roles {
		if err := rk.check(name); err != nil {
			return nil, fmt.Errorf("init repository: %w", err)
		}
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("init repository %s: %w (directory not empty)", dir, ErrExists)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	r := &Repo{dir: dir, life: p.Lifetimes, now: o.now}
	for _, d := range []string{dir, r.public(), filepath.Join(r.public(), "targets")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("init repository: %w", err)
		}
	}
	if err := os.MkdirAll(r.staged(), 0o700); err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	now := r.now()
	root := metadata.Root(expiry(now, r.life.Root))
	root.Signed.ConsistentSnapshot = true
	setRoles(root, roles)
	if err := signWith(root, p.Root.Keys); err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	targets := metadata.Targets(expiry(now, r.life.Targets))
	if err := signWith(targets, p.Targets.Keys); err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	if err := r.writeSettings(); err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	if err := writeStaged(r, RoleRoot, root); err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	if err := writeStaged(r, RoleTargets, targets); err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	return r, nil
}

// setRoles replaces the keys of the roles in roles (others stay) and drops
// keys no role lists any more.
func setRoles(root *metadata.Metadata[metadata.RootType], roles map[string]RoleKeys) {
	for name, rk := range roles {
		ids := make([]string, 0, len(rk.Keys))
		for _, k := range rk.Keys {
			ids = append(ids, k.ID())
			root.Signed.Keys[k.ID()] = k.tufKey()
		}
		root.Signed.Roles[name] = &metadata.Role{KeyIDs: ids, Threshold: rk.Threshold}
	}
	for id := range root.Signed.Keys {
		used := false
		for _, r := range root.Signed.Roles {
			used = used || slices.Contains(r.KeyIDs, id)
		}
		if !used {
			delete(root.Signed.Keys, id)
		}
	}
}

// Open opens a repository made by Init.
func Open(dir string, opts ...Option) (*Repo, error) {
	o, err := applyOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("open repository: %w", err)
	}
	r := &Repo{dir: dir, now: o.now}
	b, err := readBounded(r.settingsPath(), 64<<10)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open repository %s: %w (no repo.json)", dir, ErrNoRepository)
	}
	if err != nil {
		return nil, fmt.Errorf("open repository: %w", err)
	}
	var s settings
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("open repository %s: repo.json: %w", dir, err)
	}
	if s.Format != settingsFormat {
		return nil, fmt.Errorf("open repository %s: repo.json format %d, want %d: %w", dir, s.Format, settingsFormat, ErrNoRepository)
	}
	life := DefaultLifetimes()
	for role, v := range s.Expires {
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("open repository %s: lifetime of %s: %w", dir, role, err)
		}
		switch role {
		case RoleRoot:
			life.Root = d
		case RoleTargets:
			life.Targets = d
		case RoleSnapshot:
			life.Snapshot = d
		case RoleTimestamp:
			life.Timestamp = d
		}
	}
	if err := life.check(); err != nil {
		return nil, fmt.Errorf("open repository %s: %w", dir, err)
	}
	r.life = life
	return r, nil
}

// Dir is the repository directory; PublicDir is the document root to serve.
func (r *Repo) Dir() string       { return r.dir }
func (r *Repo) PublicDir() string { return r.public() }

// Lifetimes returns the repository's role lifetimes.
func (r *Repo) Lifetimes() Lifetimes { return r.life }

// SetLifetimes changes the lifetimes used from the next signature on.
func (r *Repo) SetLifetimes(l Lifetimes) error {
	if err := l.check(); err != nil {
		return fmt.Errorf("set lifetimes: %w", err)
	}
	r.life = l
	return r.writeSettings()
}

func (r *Repo) public() string       { return filepath.Join(r.dir, "public") }
func (r *Repo) staged() string       { return filepath.Join(r.dir, "staged") }
func (r *Repo) settingsPath() string { return filepath.Join(r.dir, "repo.json") }

func (r *Repo) writeSettings() error {
	s := settings{Format: settingsFormat, Expires: map[string]string{}}
	for _, role := range []string{RoleRoot, RoleTargets, RoleSnapshot, RoleTimestamp} {
		s.Expires[role] = r.life.of(role).String()
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(r.settingsPath(), append(b, '\n'), 0o644)
}

func writeStaged[T metadata.Roles](r *Repo, role string, m *metadata.Metadata[T]) error {
	b, err := encode(m)
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(r.staged(), role+".json"), b, 0o600)
}
