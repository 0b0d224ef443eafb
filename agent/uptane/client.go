package uptane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Repository names: the sub-buckets of the state file and the names in
// Status and errors.
const (
	Image    = "image"
	Director = "director"
)

// RepoConfig is one repository the client follows.
type RepoConfig struct {
	// Root is the pinned root metadata (a root.json the firmware carries,
	// or one provisioning stored). It is used until the state file holds
	// a newer trusted root, and again if it is newer than that.
	Root []byte
	// Fetcher reaches the repository's files.
	Fetcher Fetcher
}

// Client follows the image repository and this device's director
// repository. Refresh and Resolve may be called from any goroutine;
// refreshes run one at a time.
type Client struct {
	db         *bolt.DB
	deviceID   string
	clock      func() time.Time
	log        *slog.Logger
	compatible string
	repos      []*repo // image, director

	refreshMu sync.Mutex // serialises Refresh; taken before mu

	mu    sync.Mutex       // guards views and last
	views map[string]*view // the committed trusted sets, parsed
	last  map[string]refreshOutcome
}

type refreshOutcome struct {
	at      time.Time
	err     error
	changed bool
	fetched int64
}

type options struct {
	log        *slog.Logger
	compatible string
}

// Option configures New.
type Option func(*options) error

// WithLogger sets the logger; the package adds component=uptane.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("uptane: nil logger")
		}
		o.log = l
		return nil
	}
}

// WithCompatible makes Resolve refuse firmware whose compatible is not c
// (the board's RAUC compatible).
func WithCompatible(c string) Option {
	return func(o *options) error {
		if c == "" {
			return errors.New("uptane: empty compatible")
		}
		o.compatible = c
		return nil
	}
}

// New makes a client for device deviceID over the state file db. clock is
// the time every expiry is checked against: the phone's time floor
// (crypto/timefloor's Floor.Now), which never runs behind the newest
// signed time seen. The trusted sets in db are verified now; one that
// does not verify is refused with ErrState.
func New(db *bolt.DB, deviceID string, clock func() time.Time, image, director RepoConfig, opts ...Option) (*Client, error) {
	o := options{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if db == nil || clock == nil {
		return nil, errors.New("uptane: nil state file or clock")
	}
	if err := checkDeviceID(deviceID); err != nil {
		return nil, fmt.Errorf("uptane: %w", err)
	}
	c := &Client{db: db, deviceID: deviceID, clock: clock, log: o.log.With("component", "uptane"), compatible: o.compatible,
		views: map[string]*view{}, last: map[string]refreshOutcome{}}
	for _, rc := range []struct {
		name   string
		cfg    RepoConfig
		device string
	}{{Image, image, ""}, {Director, director, deviceID}} {
		if rc.cfg.Fetcher == nil {
			return nil, fmt.Errorf("uptane: %s repository: nil fetcher", rc.name)
		}
		pinned, err := parseView(&stored{root: rc.cfg.Root})
		if err != nil {
			return nil, fmt.Errorf("uptane: %s repository: pinned root: %w", rc.name, err)
		}
		r := &repo{name: rc.name, pinned: rc.cfg.Root, fetcher: rc.cfg.Fetcher, device: rc.device}
		c.repos = append(c.repos, r)
		s, err := readStored(db, rc.name)
		if err != nil {
			return nil, fmt.Errorf("uptane: %w", err)
		}
		if s == nil {
			c.views[rc.name] = pinned
			continue
		}
		v, err := parseView(s)
		if err != nil {
			return nil, fmt.Errorf("uptane: %s repository: %w", rc.name, err)
		}
		if pinned.root.Signed.Version > v.root.Signed.Version {
			// A firmware update brought a newer pinned root: it wins. The
			// stored set is kept if it verifies under it; if not (its
			// timestamp, snapshot or targets keys were rotated) its bytes
			// stay only as the rollback reference of the next refresh.
			c.log.Info("pinned root newer than the stored one", "repository", rc.name,
				"pinned", pinned.root.Signed.Version, "stored", v.root.Signed.Version)
			cand := v.raw
			cand.root = rc.cfg.Root
			if nv, err := parseView(&cand); err == nil {
				v = nv
			} else {
				v = &view{raw: cand, root: pinned.root}
			}
			v.rootSwapped = true
		}
		c.views[rc.name] = v
	}
	return c, nil
}

func checkDeviceID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("device ID of %d bytes: want 1..64", len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return fmt.Errorf("device ID %q: byte %d (0x%02x) not allowed", id, i, c)
		}
	}
	return nil
}

// DeviceID is the device the client follows the director for.
func (c *Client) DeviceID() string { return c.deviceID }

// Refresh brings both repositories up to date. Each is verified entirely
// in memory; then every repository whose new set verified is written in
// one state-file transaction. A repository that fails (refused, expired,
// unreachable) keeps its previous trusted set; its error is in the
// returned error (errors.Join of both) and in Status. The returned Status
// is the one after the commit.
func (c *Client) Refresh(ctx context.Context) (Status, error) {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	now := c.clock()
	pending := map[string]*stored{}
	outcomes := map[string]refreshOutcome{}
	var errs []error
	for _, r := range c.repos {
		c.mu.Lock()
		cur := c.views[r.name]
		c.mu.Unlock()
		res, err := r.refresh(ctx, cur, now)
		out := refreshOutcome{at: now, err: err, fetched: res.fetched}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s repository: %w", r.name, err))
			c.log.Warn("refresh refused", "repository", r.name, "err", err)
		} else if res.next != nil {
			pending[r.name] = res.next
			out.changed = true
		}
		outcomes[r.name] = out
	}
	views := map[string]*view{}
	for name, s := range pending {
		v, err := parseView(s)
		if err != nil {
			// Cannot happen for a set refresh verified; refuse it rather
			// than store what would not load.
			errs = append(errs, fmt.Errorf("%s repository: %w", name, err))
			delete(pending, name)
			o := outcomes[name]
			o.err, o.changed = err, false
			outcomes[name] = o
			continue
		}
		views[name] = v
	}
	if err := commit(c.db, pending); err != nil {
		err = fmt.Errorf("uptane: store trusted metadata: %w", err)
		for name := range pending {
			o := outcomes[name]
			o.err, o.changed = err, false
			outcomes[name] = o
		}
		errs = append(errs, err)
		views = nil
	}
	c.mu.Lock()
	for name, v := range views {
		c.views[name] = v
		c.log.Info("trusted metadata updated", "repository", name, "root", v.root.Signed.Version,
			"timestamp", v.timestamp.Signed.Version, "snapshot", v.snapshot.Signed.Version, "targets", v.targets.Signed.Version)
	}
	for name, o := range outcomes {
		c.last[name] = o
	}
	c.mu.Unlock()
	return c.status(now), errors.Join(errs...)
}

// RepoStatus describes one repository's trusted set.
type RepoStatus struct {
	Name string
	// Versions of the trusted roles; 0 before the first refresh.
	Root, Timestamp, Snapshot, Targets int64
	// Expires is the earliest expiry of the trusted roles.
	Expires time.Time
	// Stale is true when the trusted set cannot be used: a role expired
	// (ExpiredRole names the first: root, timestamp, snapshot, targets)
	// or no refresh has succeeded yet.
	Stale       bool
	ExpiredRole string
	// SignedTime is the trusted timestamp's signed time; zero when none.
	SignedTime time.Time
	// LastRefresh, LastError, LastChanged and LastFetched describe the
	// last refresh (kept in memory only).
	LastRefresh time.Time
	LastError   string
	LastChanged bool
	LastFetched int64
}

// Status is the state of both repositories.
type Status struct {
	Image, Director RepoStatus
	// Stale is true when either repository is.
	Stale bool
}

// Status reports the trusted sets at the client's clock.
func (c *Client) Status() Status { return c.status(c.clock()) }

func (c *Client) status(now time.Time) Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Status{Image: c.repoStatus(Image, now), Director: c.repoStatus(Director, now)}
	s.Stale = s.Image.Stale || s.Director.Stale
	return s
}

func (c *Client) repoStatus(name string, now time.Time) RepoStatus {
	v := c.views[name]
	rs := RepoStatus{Name: name, Root: v.root.Signed.Version, Expires: v.root.Signed.Expires}
	if v.timestamp != nil {
		rs.Timestamp, rs.Snapshot, rs.Targets = v.timestamp.Signed.Version, v.snapshot.Signed.Version, v.targets.Signed.Version
		for _, e := range []time.Time{v.timestamp.Signed.Expires, v.snapshot.Signed.Expires, v.targets.Signed.Expires} {
			if e.Before(rs.Expires) {
				rs.Expires = e
			}
		}
		if t, ok, err := parseSignedTime(v.timestamp.Signed.UnrecognizedFields); err == nil && ok {
			rs.SignedTime = t
		}
	}
	rs.ExpiredRole = v.expiredRole(now)
	rs.Stale = rs.ExpiredRole != ""
	if o, ok := c.last[name]; ok {
		rs.LastRefresh, rs.LastChanged, rs.LastFetched = o.at, o.changed, o.fetched
		if o.err != nil {
			rs.LastError = o.err.Error()
		}
	}
	return rs
}

// SignedTime is the director's trusted timestamp's signed time, for the
// phone's time floor (Floor.Advance(t, "director timestamp")); false
// before the first refresh.
func (c *Client) SignedTime() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.views[Director]
	if v.timestamp == nil {
		return time.Time{}, false
	}
	t, ok, err := parseSignedTime(v.timestamp.Signed.UnrecognizedFields)
	return t, ok && err == nil
}

// fresh returns a repository's view if it is usable at now.
func (c *Client) fresh(name string, now time.Time) (*view, error) {
	v := c.views[name]
	if v.timestamp == nil {
		return nil, fmt.Errorf("%s repository: %w", name, ErrNoMetadata)
	}
	if role := v.expiredRole(now); role != "" {
		return nil, &ExpiredError{Repository: name, Role: role}
	}
	return v, nil
}

// consistent reports whether the view's root asks for consistent
// snapshot file names.
func (v *view) consistent() bool { return v.root.Signed.ConsistentSnapshot }
