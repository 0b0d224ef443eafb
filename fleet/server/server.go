package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hardphone/hardphone/crypto/policy"
	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/console/consoleapi"
	"github.com/hardphone/hardphone/fleet/director"
	"github.com/hardphone/hardphone/fleet/rollout"
	"github.com/hardphone/hardphone/fleet/store"
)

// Defaults of the options.
const (
	DefaultChallengeLifetime = 2 * time.Minute
	DefaultCheckInInterval   = 15 * time.Minute
	DefaultCRLPeriod         = 24 * time.Hour
	DefaultMaxInFlight       = 256
)

// HTTP timeouts: a slow client holds a connection at most this long.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 16 << 10
	// queueTimeout bounds the wait for a request slot before 503.
	queueTimeout = 5 * time.Second
	// shutdownTimeout bounds a graceful stop.
	shutdownTimeout = 10 * time.Second
	purgeInterval   = time.Minute
)

// Config is what a server needs.
type Config struct {
	// Store holds the fleet; required. The server does not close it.
	Store store.Store
	// DeviceCA issues device certificates and signs the CRL; required.
	DeviceCA *ca.CA
	// ManufacturerRoots are the TPM manufacturer CAs whose EK
	// certificates the fleet accepts; at least one.
	ManufacturerRoots []*x509.Certificate
	// ManufacturerIntermediates may sit between an EK certificate and a
	// root; optional.
	ManufacturerIntermediates []*x509.Certificate
	// AdminCAs issue the admins' client certificates; at least one, none
	// of them the device CA.
	AdminCAs []*x509.Certificate
	// Certificate is the server's TLS certificate (its chain and key),
	// for Serve; TLSConfig refuses without it.
	Certificate *tls.Certificate
	// Director serves each device's director repository and the admin
	// assignment endpoints; nil: they answer not_configured.
	Director *director.Service
	// Rollouts runs staged rollouts and their approvals (needs the
	// Director); nil: those endpoints answer not_configured.
	Rollouts *rollout.Engine
	// AdminAuth authorizes admins' sessions (adminauth: password and a
	// second factor, RBAC, step-up) for the rollout, approval and audit
	// endpoints; nil: they answer not_configured. With Audit too, every
	// admin endpoint needs a session and its permission (admin_rbac.go).
	AdminAuth AdminAuthorizer
	// Audit is the audit log the export serves and admin actions and
	// refusals, device security events and anomaly findings are appended
	// to; it needs AdminAuth. nil: no export, and the admin endpoints
	// other than the rollouts' take an admin certificate alone.
	Audit *audit.Log
	// FleetName is what approvers' proofs of possession name (the
	// server's DNS name).
	FleetName string
	// Console serves the admin console (fleet/console's Handler, or an
	// answer saying why it is off): mounted at ConsoleWebPrefix and
	// consoleapi.Prefix, behind the same request slots as the API; nil:
	// those paths answer not_found like any unknown path. The server
	// does not import the console: it only routes to it.
	Console http.Handler
}

// ConsoleWebPrefix is where Config.Console's web pages live (the
// console's WebPrefix); its JSON API is under consoleapi.Prefix.
const ConsoleWebPrefix = "/console/"

// Option adjusts a server.
type Option func(*options) error

type options struct {
	log               *slog.Logger
	now               func() time.Time
	certLifetime      time.Duration
	challengeLifetime time.Duration
	checkInInterval   time.Duration
	crlPeriod         time.Duration
	maxInFlight       int
	eventLimits       EventLimits    // events.go
	anomaly           *AnomalyConfig // anomaly.go; nil: off
}

// WithLogger sets the logger; the default discards. The server adds
// component=fleet.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("nil logger")
		}
		o.log = l
		return nil
	}
}

// WithClock sets the clock (tests: expiry without waiting).
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return errors.New("nil clock")
		}
		o.now = now
		return nil
	}
}

// WithCertLifetime sets the life of device certificates (default
// ca.DefaultDeviceLifetime, at most ca.MaxDeviceLifetime, at least an
// hour).
func WithCertLifetime(d time.Duration) Option {
	return func(o *options) error {
		if d < time.Hour || d > ca.MaxDeviceLifetime {
			return fmt.Errorf("certificate lifetime %v, want 1h..%v", d, ca.MaxDeviceLifetime)
		}
		o.certLifetime = d
		return nil
	}
}

// WithChallengeLifetime sets how long a credential-activation round may
// take (default DefaultChallengeLifetime, at most
// store.MaxChallengeLifetime).
func WithChallengeLifetime(d time.Duration) Option {
	return func(o *options) error {
		if d < time.Second || d > store.MaxChallengeLifetime {
			return fmt.Errorf("challenge lifetime %v, want 1s..%v", d, store.MaxChallengeLifetime)
		}
		o.challengeLifetime = d
		return nil
	}
}

// WithCheckInInterval sets the polling interval told to phones (default
// DefaultCheckInInterval).
func WithCheckInInterval(d time.Duration) Option {
	return func(o *options) error {
		if d < time.Second || d > 24*time.Hour {
			return fmt.Errorf("check-in interval %v, want 1s..24h", d)
		}
		o.checkInInterval = d
		return nil
	}
}

// WithCRLPeriod sets the CRL's validity (nextUpdate - thisUpdate; default
// DefaultCRLPeriod). A CRL is reissued after half of it, and at once after
// a revocation.
func WithCRLPeriod(d time.Duration) Option {
	return func(o *options) error {
		if d < time.Minute || d > 30*24*time.Hour {
			return fmt.Errorf("CRL period %v, want 1m..30d", d)
		}
		o.crlPeriod = d
		return nil
	}
}

// WithMaxInFlight bounds the requests handled at once (default
// DefaultMaxInFlight); more wait up to a few seconds, then get 503.
func WithMaxInFlight(n int) Option {
	return func(o *options) error {
		if n < 1 || n > 100000 {
			return fmt.Errorf("max in flight %d, want 1..100000", n)
		}
		o.maxInFlight = n
		return nil
	}
}

// Server is the fleet API. It is safe for concurrent use; any number of
// them may share one store (replicas).
type Server struct {
	st       store.Store
	deviceCA *ca.CA
	mfgRoots *x509.CertPool
	mfgInter []*x509.Certificate
	adminCAs []*x509.Certificate
	cert     *tls.Certificate // nil: no TLS (Handler only)
	o        options
	log      *slog.Logger
	refusals *rateLog
	metrics  *metrics
	crl      crlCache
	slots    chan struct{} // request slots; cap is maxInFlight
	handler  http.Handler
	dir      *director.Service // nil without a director
	rollouts *rollout.Engine   // nil without rollouts
	auth     AdminAuthorizer   // nil without admin sessions
	auditLog *audit.Log        // nil without an audit log
	// fleetName is what approvers' proofs name.
	fleetName string
	evLimit   *limiter       // per-device event export limits
	anom      *anomalyRunner // nil without the anomaly detector
	console   http.Handler   // nil without the console
	// strangers bounds the audit entries of refused admin calls without
	// an admin certificate.
	strangers strangerLimit
}

// New checks cfg and builds a server.
func New(cfg Config, opts ...Option) (*Server, error) {
	o := options{
		log:               slog.New(slog.DiscardHandler),
		now:               time.Now,
		certLifetime:      ca.DefaultDeviceLifetime,
		challengeLifetime: DefaultChallengeLifetime,
		checkInInterval:   DefaultCheckInInterval,
		crlPeriod:         DefaultCRLPeriod,
		maxInFlight:       DefaultMaxInFlight,
		eventLimits: EventLimits{BatchRate: defaultEventBatchRate, BatchBurst: defaultEventBatchBurst,
			RecordRate: defaultEventRecordRate, RecordBurst: defaultEventRecordBurst},
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	switch {
	case cfg.Store == nil:
		return nil, fmt.Errorf("%w: no store", ErrConfig)
	case cfg.DeviceCA == nil:
		return nil, fmt.Errorf("%w: no device CA", ErrConfig)
	case len(cfg.ManufacturerRoots) == 0:
		return nil, fmt.Errorf("%w: no manufacturer roots (the fleet would accept no TPM)", ErrConfig)
	case len(cfg.AdminCAs) == 0:
		return nil, fmt.Errorf("%w: no admin CA", ErrConfig)
	}
	dev := cfg.DeviceCA.Certificate()
	mfg := x509.NewCertPool()
	for _, c := range cfg.ManufacturerRoots {
		if c == nil {
			return nil, fmt.Errorf("%w: nil manufacturer root", ErrConfig)
		}
		mfg.AddCert(c)
	}
	for _, c := range cfg.AdminCAs {
		if c == nil || bytes.Equal(c.Raw, dev.Raw) || bytes.Equal(c.RawSubjectPublicKeyInfo, dev.RawSubjectPublicKeyInfo) {
			// One CA for both would make every phone an admin.
			return nil, fmt.Errorf("%w: an admin CA is nil or the device CA", ErrConfig)
		}
	}
	log := o.log.With("component", "fleet")
	s := &Server{
		st:        cfg.Store,
		deviceCA:  cfg.DeviceCA,
		mfgRoots:  mfg,
		mfgInter:  append([]*x509.Certificate(nil), cfg.ManufacturerIntermediates...),
		adminCAs:  append([]*x509.Certificate(nil), cfg.AdminCAs...),
		cert:      cfg.Certificate,
		o:         o,
		log:       log,
		refusals:  newRateLog(log, 20, time.Second),
		metrics:   newMetrics(),
		slots:     make(chan struct{}, o.maxInFlight),
		dir:       cfg.Director,
		rollouts:  cfg.Rollouts,
		auth:      cfg.AdminAuth,
		auditLog:  cfg.Audit,
		fleetName: cfg.FleetName,
		evLimit:   newLimiter(o.eventLimits),
		console:   cfg.Console,
	}
	if o.anomaly != nil {
		s.anom = newAnomalyRunner(s, *o.anomaly)
	}
	if s.auditLog != nil && s.auth == nil {
		// Admin actions would be recorded with certificate names only.
		return nil, fmt.Errorf("%w: an audit log needs admin sessions (AdminAuth)", ErrConfig)
	}
	if s.rollouts != nil && s.dir == nil {
		return nil, fmt.Errorf("%w: rollouts need the director", ErrConfig)
	}
	s.handler = s.routes()
	return s, nil
}

// routes builds the request multiplexer.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern, name string, h func(http.ResponseWriter, *http.Request) error) {
		mux.Handle(pattern, s.endpoint(name, h))
	}
	handle("POST "+api.PathEnrolStart, "enrol_start", s.enrolStart)
	handle("POST "+api.PathEnrolFinish, "enrol_finish", s.enrolFinish)
	handle("POST "+api.PathRenew, "renew", s.renew)
	handle("POST "+api.PathCheckIn, "checkin", s.checkIn)
	handle("GET "+api.PathCRL, "crl", s.getCRL)
	handle("GET "+api.PathHealth, "health", s.health)
	// Admin endpoints: the permission of adminauth's table each needs with
	// sessions, and the audit action of those that change state.
	inv, ev, pol := adminauth.PermInventoryRead, adminauth.PermEventsRead, adminauth.PermPolicyRead
	handle("POST "+api.PathAdminAllowList, "admin_import", s.guarded(s.importAllowList, adminauth.PermDeviceAdmit, audit.ActionDeviceAdmit))
	handle("GET "+api.PathAdminAllowList, "admin_allowlist", s.guarded(s.listAllowList, inv, ""))
	handle("GET "+api.PathAdminDevices, "admin_devices", s.guarded(s.listDevices, inv, ""))
	handle("GET "+api.PathAdminDevice, "admin_device", s.guarded(s.showDevice, inv, ""))
	handle("POST "+api.PathAdminRevoke, "admin_revoke", s.guarded(s.revokeDevice, adminauth.PermDeviceRevoke, audit.ActionDeviceRevoke))
	handle("POST "+api.PathAdminRetire, "admin_retire", s.guarded(s.retireDevice, adminauth.PermDeviceRevoke, audit.ActionDeviceRetire))
	handle("GET "+api.PathAdminSetting, "admin_setting_get", s.guarded(s.getSetting, pol, ""))
	handle("PUT "+api.PathAdminSetting, "admin_setting_put", s.guarded(s.putSetting, adminauth.PermPolicyWrite, audit.ActionSettingChange))
	handle("DELETE "+api.PathAdminSetting, "admin_setting_delete", s.guarded(s.deleteSetting, adminauth.PermPolicyWrite, audit.ActionSettingChange))
	handle("GET "+api.PathAdminMetrics, "admin_metrics", s.guarded(s.getMetrics, inv, ""))
	handle("GET "+api.PathDirector, "director", s.directorFile)
	handle("GET "+api.PathAdminConfig, "admin_config_get", s.guarded(s.getAssignment, pol, ""))
	handle("PUT "+api.PathAdminConfig, "admin_config_put", s.guarded(s.putConfig, adminauth.PermBundleRegister, audit.ActionConfigChange))
	handle("DELETE "+api.PathAdminConfig, "admin_config_delete", s.guarded(s.deleteConfig, adminauth.PermBundleRegister, audit.ActionConfigChange))
	handle("GET "+api.PathAdminFirmware, "admin_firmware_get", s.guarded(s.getAssignment, pol, ""))
	handle("PUT "+api.PathAdminFirmware, "admin_firmware_put", s.guarded(s.putFirmware, adminauth.PermBundleRegister, audit.ActionFirmwareChange))
	handle("DELETE "+api.PathAdminFirmware, "admin_firmware_delete", s.guarded(s.deleteFirmware, adminauth.PermBundleRegister, audit.ActionFirmwareChange))
	handle("GET "+api.PathAdminProvision, "admin_provision", s.guarded(s.getProvision, inv, ""))
	handle("POST "+api.PathAdminRotate, "admin_rotate", s.guarded(s.rotate, adminauth.PermKeyManage, audit.ActionDeviceRotate))
	s.rolloutRoutes(handle)
	handle("POST "+api.PathEvents, "events", s.postEvents)
	handle("GET "+api.PathEvents, "events_cursor", s.getEvents)
	handle("GET "+api.PathAdminFindings, "admin_findings", s.guarded(s.listFindings, ev, ""))
	handle("GET "+api.PathAdminDeviceEvents, "admin_device_events", s.guarded(s.deviceEvents, ev, ""))
	handle("POST "+api.PathAdminLift, "admin_lift", s.guarded(s.lift, adminauth.PermDeviceAdmit, audit.ActionAnomalyLift))
	if s.console != nil {
		// The console answers in its own shapes (HTML pages, its
		// JSON errors); the server only bounds the requests in flight.
		mux.Handle(ConsoleWebPrefix, s.mounted("console_web", s.console))
		mux.Handle(consoleapi.Prefix, s.mounted("console_api", s.console))
	}
	// Everything else: 404 in the API's error shape.
	mux.Handle("/", s.endpoint("unknown", func(http.ResponseWriter, *http.Request) error {
		return refuse(api.CodeNotFound, "no such endpoint")
	}))
	return mux
}

// Handler returns the API as an http.Handler. It expects requests over
// TLS with the server's TLSConfig: device and admin endpoints read the
// verified client certificate from the request.
func (s *Server) Handler() http.Handler { return s.handler }

// TLSConfig returns the server's TLS configuration: the crypto policy's,
// with client certificates from the device CA or an admin CA verified
// when sent (enrolment sends none).
func (s *Server) TLSConfig() (*tls.Config, error) {
	if s.cert == nil {
		return nil, fmt.Errorf("%w: no server certificate", ErrConfig)
	}
	clients := x509.NewCertPool()
	clients.AddCert(s.deviceCA.Certificate())
	for _, c := range s.adminCAs {
		clients.AddCert(c)
	}
	return policy.ServerConfig(policy.ServerTLS{Certificate: s.cert, ClientCAs: clients})
}

// Serve serves HTTPS on ln until ctx ends, then stops gracefully (requests
// under way finish, for a few seconds at most). It also purges expired
// challenges once a minute.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	cfg, err := s.TLSConfig()
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           s.handler,
		TLSConfig:         cfg,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		// Handshake failures of scanners and strangers: debug only.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.purgeLoop(done)
	}()
	if s.anom != nil {
		actx, cancel := context.WithCancel(context.Background())
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.anom.run(actx)
		}()
		go func() {
			<-done
			cancel()
		}()
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(tls.NewListener(ln, cfg)) }()
	s.log.Info("serving", "addr", ln.Addr().String())
	select {
	case err = <-errc:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		err = hs.Shutdown(sctx)
		cancel()
		if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
			err = e
		}
	}
	close(done)
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func (s *Server) purgeLoop(done <-chan struct{}) {
	t := time.NewTicker(purgeInterval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			n, err := s.st.PurgeChallenges(ctx, s.o.now())
			cancel()
			if err != nil {
				s.log.Warn("purge expired challenges", "err", err)
			} else if n > 0 {
				s.log.Info("expired challenges purged", "count", n)
			}
		}
	}
}

// health answers "ok" while the store answers.
func (s *Server) health(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.st.Setting(r.Context(), store.SettingMinSecurityVersion); err != nil && !errors.Is(err, store.ErrNotFound) {
		return storeError("health", err)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err := w.Write([]byte("ok\n"))
	return err
}
