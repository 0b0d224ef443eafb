package console

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/console/approval"
	"github.com/hardphone/hardphone/fleet/store"
)

// WebPrefix is where the web console lives; consoleapi.Prefix the JSON
// API. Handler serves both and nothing else.
const WebPrefix = "/console/"

// Inventory is the fleet store as the console reads it (store.Store
// implements it). The console never writes the inventory.
type Inventory interface {
	ListDevices(ctx context.Context, p store.PageRequest) (store.Page[store.Device], error)
	GetDevice(ctx context.Context, id store.DeviceID) (store.Device, error)
	ListDeviceCerts(ctx context.Context, id store.DeviceID, limit int) ([]store.Cert, error)
	ReportHistory(ctx context.Context, id store.DeviceID, limit int) ([]store.Report, error)
}

// AdminDirectory lists admins and stores a new one with a password hash
// already made (an approved admin.create carries only the hash).
// boltauth.Store and pgauth.Store implement it.
type AdminDirectory interface {
	ListAdmins(ctx context.Context, limit int) ([]adminauth.Admin, error)
	AdminByID(ctx context.Context, id string) (adminauth.Admin, error)
	AdminByName(ctx context.Context, name string) (adminauth.Admin, error)
	CreateAdmin(ctx context.Context, a adminauth.Admin) error
}

// Config is what the console is built from. The console closes none of
// them.
type Config struct {
	// Auth authenticates admins; required. Configure it with
	// adminauth.WithWebAuthn for passkeys (RP ID: the console's DNS name;
	// origins: Origins).
	Auth *adminauth.Authenticator
	// Admins is the admins' store (the Authenticator's); required.
	Admins AdminDirectory
	// Audit is the audit log; required.
	Audit *audit.Log
	// Inventory is the fleet store; required.
	Inventory Inventory
	// Events lists devices' security events (hpfleet gives JournalEvents:
	// the journals phones exported); nil: ReportEvents over Inventory
	// (counters and lockdown drift from the check-in reports).
	Events EventSource
	// Findings lists the anomaly detector's findings (the fleet store);
	// nil: the events pages show none.
	Findings FindingLister
	// Rollouts is the rollout engine; nil: the rollouts page says this
	// server runs without one.
	Rollouts Rollouts
	// Approvals keeps proposed changes; required.
	Approvals approval.Store
	// Origins are the console's origins ("https://fleet.example.com:8443"),
	// the only ones whose state-changing requests are accepted; at least
	// one.
	Origins []string
	// AdminCAs issue the admins' client certificates, which the JSON API
	// requires (common name = admin login name); none: the JSON API
	// refuses every request.
	AdminCAs []*x509.Certificate
}

// Option adjusts a console.
type Option func(*options) error

type options struct {
	log          *slog.Logger
	now          func() time.Time
	hasher       *adminauth.Hasher
	lifetime     time.Duration
	auditRate    rate.Limit
	auditBurst   int
	minPassword  int
	adminsToList int
}

// WithLogger sets the logger (default: discard); the console adds
// component=console.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("nil logger")
		}
		o.log = l
		return nil
	}
}

// WithClock sets the clock of approvals and of audit entries' times (the
// Authenticator has its own).
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return errors.New("nil clock")
		}
		o.now = now
		return nil
	}
}

// WithHasher sets the hasher of proposed admins' passwords (default:
// adminauth.DefaultParams).
func WithHasher(h *adminauth.Hasher) Option {
	return func(o *options) error {
		if h == nil {
			return errors.New("nil hasher")
		}
		o.hasher = h
		return nil
	}
}

// WithApprovalLifetime sets how long a proposed change waits for its
// approval (default approval.DefaultLifetime).
func WithApprovalLifetime(d time.Duration) Option {
	return func(o *options) error {
		if d < time.Minute || d > 30*24*time.Hour {
			return fmt.Errorf("approval lifetime %v, want 1m..30d", d)
		}
		o.lifetime = d
		return nil
	}
}

// WithAuditRate bounds the audit entries of clients that are not logged-in
// admins (failed logins, refused anonymous requests): per second, and a
// burst (default 5/s, burst 50). Entries beyond it are counted and the
// count is recorded with the next entry that passes.
func WithAuditRate(perSecond float64, burst int) Option {
	return func(o *options) error {
		if perSecond <= 0 || perSecond > 1000 || burst < 1 || burst > 10000 {
			return fmt.Errorf("audit rate %v/s burst %d, want 0..1000/s and 1..10000", perSecond, burst)
		}
		o.auditRate, o.auditBurst = rate.Limit(perSecond), burst
		return nil
	}
}

// WithMinPasswordLength sets the shortest password a proposed admin may
// get (default 12 bytes).
func WithMinPasswordLength(n int) Option {
	return func(o *options) error {
		if n < 8 || n > adminauth.MaxPasswordLen {
			return fmt.Errorf("minimum password length %d, want 8..%d", n, adminauth.MaxPasswordLen)
		}
		o.minPassword = n
		return nil
	}
}

// Console is the admin console. It is safe for concurrent use; any number
// of them (replicas) may share the stores.
type Console struct {
	auth      *adminauth.Authenticator
	admins    AdminDirectory
	log       *audit.Log
	inv       Inventory
	events    EventSource
	findings  FindingLister
	approvals approval.Store
	rollouts  Rollouts // nil without the rollout engine
	origins   map[string]bool
	adminCAs  []*x509.Certificate
	o         options
	logger    *slog.Logger
	rec       *recorder
	pages     map[string]*template.Template
	handler   http.Handler
}

// New checks cfg and builds the console.
func New(cfg Config, opts ...Option) (*Console, error) {
	o := options{log: slog.New(slog.DiscardHandler), now: time.Now, lifetime: approval.DefaultLifetime,
		auditRate: 5, auditBurst: 50, minPassword: 12, adminsToList: adminauth.MaxListAdmins}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	switch {
	case cfg.Auth == nil:
		return nil, fmt.Errorf("%w: no authenticator", ErrConfig)
	case cfg.Admins == nil:
		return nil, fmt.Errorf("%w: no admin directory", ErrConfig)
	case cfg.Audit == nil:
		return nil, fmt.Errorf("%w: no audit log (every admin action must be recorded)", ErrConfig)
	case cfg.Inventory == nil:
		return nil, fmt.Errorf("%w: no inventory", ErrConfig)
	case cfg.Approvals == nil:
		return nil, fmt.Errorf("%w: no approval store", ErrConfig)
	case len(cfg.Origins) == 0:
		return nil, fmt.Errorf("%w: no origin (state-changing requests would all be refused)", ErrConfig)
	}
	origins := map[string]bool{}
	for _, s := range cfg.Origins {
		u, err := url.Parse(s)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil ||
			u.Fragment != "" || s != strings.ToLower(s) {
			return nil, fmt.Errorf("%w: origin %q: want https://host[:port], lowercase", ErrConfig, s)
		}
		origins[s] = true
	}
	for _, c := range cfg.AdminCAs {
		if c == nil {
			return nil, fmt.Errorf("%w: nil admin CA", ErrConfig)
		}
	}
	if o.hasher == nil {
		h, err := adminauth.NewHasher(adminauth.DefaultParams)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		o.hasher = h
	}
	pages, err := parsePages()
	if err != nil {
		return nil, fmt.Errorf("%w: templates: %w", ErrConfig, err)
	}
	logger := o.log.With("component", "console")
	c := &Console{auth: cfg.Auth, admins: cfg.Admins, log: cfg.Audit, inv: cfg.Inventory, events: cfg.Events, findings: cfg.Findings,
		approvals: cfg.Approvals, rollouts: cfg.Rollouts, origins: origins, adminCAs: append([]*x509.Certificate(nil), cfg.AdminCAs...),
		o: o, logger: logger, pages: pages}
	if c.events == nil {
		c.events = &ReportEvents{Reports: cfg.Inventory}
	}
	c.rec = newRecorder(cfg.Audit, logger, o.now, o.auditRate, o.auditBurst)
	c.handler = c.routes()
	return c, nil
}

// Handler serves the web console under WebPrefix and the JSON API under
// consoleapi.Prefix, over TLS: mount it for both prefixes on the server
// that also serves fleet/server's API, with a TLS configuration that
// verifies admin client certificates when given (crypto/policy's
// ServerConfig with the admin CAs among ClientCAs).
func (c *Console) Handler() http.Handler { return c.handler }

// Routes lists the console's routes with the permission each needs ("-"
// for the login flow and static files), for documentation and tests.
func (c *Console) Routes() []RouteInfo {
	var out []RouteInfo
	for _, rt := range c.table() {
		p := string(rt.perm)
		if rt.access != accessFull {
			p = "-"
		}
		out = append(out, RouteInfo{Method: rt.method, Path: rt.path, Permission: p, Also: string(rt.also), API: rt.api})
	}
	return out
}

// RouteInfo describes one route.
type RouteInfo struct {
	Method, Path string
	// Permission is the adminauth permission the route is authorized
	// with; "-" for the login flow and static files.
	Permission string
	// Also is a second permission that admits the route too ("" none);
	// the handler then checks the one the action needs (fleet/server's
	// rule for rollouts: policy.write or approval.security for a
	// security policy change).
	Also string
	// API: a JSON route of consoleapi (bearer token and client
	// certificate); otherwise a web route (cookie, Origin and CSRF).
	API bool
}
