package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hardphone/hardphone/crypto/policy"
	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/adminauth/boltauth"
	"github.com/hardphone/hardphone/fleet/adminauth/pgauth"
	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/audit/boltaudit"
	"github.com/hardphone/hardphone/fleet/audit/pgaudit"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/console"
	"github.com/hardphone/hardphone/fleet/director"
	"github.com/hardphone/hardphone/fleet/rollout"
	"github.com/hardphone/hardphone/fleet/store"
	"github.com/hardphone/hardphone/fleet/store/pgstore"
)

// AuditKeyFile is the audit log key's default name in the PKI directory
// (hpctl fleet audit keygen writes it).
const AuditKeyFile = "audit.key"

// mgmtFlags configure the management plane beside the fleet API: the
// admins' sessions (adminauth), the audit log and its syslog export, and
// staged rollouts.
type mgmtFlags struct {
	auditKey        string
	auditPrev       multiFlag
	auditSyslog     string
	auditSyslogCA   string
	auditSyslogName string
	auditSyslogCert string
	auditSyslogKey  string
	auditEvery      time.Duration
	rolloutEvery    time.Duration
	fleetName       string
	roleWindows     multiFlag
}

func (m *mgmtFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.auditKey, "audit-key", "", "audit log signing key (hpctl fleet audit keygen; mode 0600; default CA-DIR/audit.key when it exists): enables the audit log and staged rollouts")
	fs.Var(&m.auditPrev, "audit-previous-key", "public key (text form) of an earlier audit key whose checkpoints the log keeps (repeatable)")
	fs.StringVar(&m.auditSyslog, "audit-syslog", "", "syslog collector (HOST:PORT, RFC 5425 TLS) the audit checkpoints are sent to")
	fs.StringVar(&m.auditSyslogCA, "audit-syslog-ca", "", "CA of the syslog collector's certificate (PEM; required with --audit-syslog)")
	fs.StringVar(&m.auditSyslogName, "audit-syslog-server-name", "", "name the collector's certificate must carry (default: the host of --audit-syslog)")
	fs.StringVar(&m.auditSyslogCert, "audit-syslog-cert", "", "client certificate for the collector (PEM; default: the server's TLS certificate)")
	fs.StringVar(&m.auditSyslogKey, "audit-syslog-key", "", "its key (PEM, mode 0600)")
	fs.DurationVar(&m.auditEvery, "audit-checkpoint-interval", time.Minute, "how often the audit log signs a checkpoint and exports it")
	fs.DurationVar(&m.rolloutEvery, "rollout-interval", 30*time.Second, "how often rollouts are advanced (rings judged from reports, next rings started)")
	fs.Var(&m.roleWindows, "role-window", "ROLE=DAYS HH:MM-HH:MM ZONE: the role's admins act only inside this weekly window, e.g. \"operator=Mon-Fri 08:00-18:00 Europe/Berlin\" (repeatable; a role with several has any of them; roles without one act at any time)")
	fs.StringVar(&m.fleetName, "fleet-name", "", "the fleet's name approvers' key proofs bind to (default: the server certificate's first DNS name)")
}

// mgmt is the management plane as built.
type mgmt struct {
	auth    *adminauth.Authenticator
	admins  console.AdminDirectory // the Authenticator's store
	audit   *audit.Log
	rollout *rollout.Engine
	syslog  *audit.SyslogExporter
	name    string
	every   time.Duration
	closers []func()
}

func (m *mgmt) close() {
	for i := len(m.closers) - 1; i >= 0; i-- {
		m.closers[i]()
	}
}

// run starts the background work: checkpoints (exported when a collector
// is configured) and rollouts.
func (m *mgmt) run(ctx context.Context, f mgmtFlags, log *slog.Logger) {
	if m.audit != nil {
		if m.syslog != nil {
			go func() {
				if err := m.syslog.Run(ctx, m.audit, f.auditEvery); err != nil {
					log.Warn("audit syslog export stopped", "err", err)
				}
			}()
		} else {
			go checkpointLoop(ctx, m.audit, f.auditEvery, log)
		}
	}
	if m.rollout != nil {
		go m.rollout.Run(ctx, f.rolloutEvery)
	}
}

// checkpointLoop signs a checkpoint every interval when no collector
// takes them (they are still kept, for hpctl fleet audit verify).
func checkpointLoop(ctx context.Context, l *audit.Log, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := l.Checkpoint(ctx); err != nil && !errors.Is(err, audit.ErrEmpty) {
				log.Error("audit checkpoint", "err", err)
			}
		}
	}
}

// build opens adminauth's store and the audit log beside the fleet store
// (bbolt: files of their own in the data directory; PostgreSQL: the same
// pool), checks the log against its latest checkpoint, and makes the
// rollout engine over the director. Without an audit key there is no
// audit log, and no rollouts (every rollout transition must be recorded).
func (m mgmtFlags) build(sf serveFlags, st store.Store, dir *director.Service, cert *tls.Certificate, log *slog.Logger) (*mgmt, error) {
	out := &mgmt{every: m.auditEvery}
	fail := func(err error) (*mgmt, error) {
		out.close()
		return nil, err
	}
	if m.auditEvery < time.Second || m.rolloutEvery < time.Second {
		return nil, usagef("serve: --audit-checkpoint-interval and --rollout-interval: want at least 1s")
	}
	out.name = m.fleetName
	if out.name == "" && cert != nil && len(cert.Certificate) > 0 {
		if leaf, err := x509.ParseCertificate(cert.Certificate[0]); err == nil && len(leaf.DNSNames) > 0 {
			out.name = leaf.DNSNames[0]
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var authStore adminauth.Store
	var auditStore audit.Storage
	switch s := st.(type) {
	case *pgstore.Store:
		as, err := pgauth.New(ctx, s.Pool())
		if err != nil {
			return fail(err)
		}
		authStore, out.admins = as, as
		aus, err := pgaudit.New(ctx, s.Pool())
		if err != nil {
			return fail(err)
		}
		auditStore = aus
	default:
		as, err := boltauth.Open(filepath.Join(sf.data, "adminauth"))
		if err != nil {
			return fail(err)
		}
		out.closers = append(out.closers, func() { as.Close() })
		authStore, out.admins = as, as
		if m.auditKey != "" || exists(filepath.Join(sf.caDir, AuditKeyFile)) {
			aus, err := boltaudit.Open(filepath.Join(sf.data, "audit"))
			if err != nil {
				return fail(err)
			}
			out.closers = append(out.closers, func() { aus.Close() })
			auditStore = aus
		}
	}
	authOpts, err := consoleWebAuthn(sf, cert, log)
	if err != nil {
		return fail(err)
	}
	rbac, err := m.rbac()
	if err != nil {
		return fail(err)
	}
	auth, err := adminauth.New(authStore, append(authOpts, adminauth.WithLogger(log), adminauth.WithRBAC(rbac))...)
	if err != nil {
		return fail(err)
	}
	out.auth = auth
	keyFile := m.auditKey
	if keyFile == "" && exists(filepath.Join(sf.caDir, AuditKeyFile)) {
		keyFile = filepath.Join(sf.caDir, AuditKeyFile)
	}
	if keyFile == "" {
		if m.auditSyslog != "" {
			return fail(usagef("serve: --audit-syslog needs an audit key (--audit-key)"))
		}
		log.Warn("no audit key: the audit log, staged rollouts and the admin console are off (hpctl fleet audit keygen)")
		// The cert-only mode of the fleet's first admin API: no session,
		// no role, no record of who did what.
		log.Warn("CERT-ONLY ADMIN MODE: without an audit key the admin endpoints (devices, allow-list, revoke, settings, config, firmware) " +
			"take an admin client certificate alone: no session, no second factor, no RBAC, no audit trail; give an audit key to require them")
		return out, nil
	}
	key, err := audit.LoadKey(keyFile)
	if err != nil {
		return fail(err)
	}
	aopts := []audit.Option{audit.WithLogger(log)}
	if len(m.auditPrev) > 0 {
		aopts = append(aopts, audit.WithPreviousKeys(m.auditPrev...))
	}
	l, err := audit.New(auditStore, key, aopts...)
	if err != nil {
		return fail(err)
	}
	switch cp, err := l.Check(ctx); {
	case errors.Is(err, audit.ErrEmpty), errors.Is(err, audit.ErrNotFound):
		// No checkpoint signed yet (a new log, or one cut short before
		// its first): the first checkpoint will commit to what is there.
		n, serr := l.Size(ctx)
		if serr != nil {
			return fail(serr)
		}
		log.Info("audit log has no checkpoint yet", "size", n, "origin", l.Origin())
	case err != nil:
		// An edited or truncated log: refuse to write more on top of it.
		return fail(fmt.Errorf("audit log does not match its latest checkpoint: %w", err))
	default:
		log.Info("audit log checked", "size", cp.Size, "origin", l.Origin())
	}
	out.audit = l
	if m.auditSyslog != "" {
		if m.auditSyslogCA == "" {
			return fail(usagef("serve: --audit-syslog needs --audit-syslog-ca"))
		}
		b, err := os.ReadFile(m.auditSyslogCA)
		if err != nil {
			return fail(fmt.Errorf("audit syslog CA: %w", err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return fail(fmt.Errorf("audit syslog CA %s: no certificate", m.auditSyslogCA))
		}
		host, err := os.Hostname()
		if err != nil {
			host = out.name
		}
		clientCert := cert
		if m.auditSyslogCert != "" || m.auditSyslogKey != "" {
			if _, err := ca.LoadKey(m.auditSyslogKey); err != nil {
				return fail(fmt.Errorf("audit syslog %w", err))
			}
			c, err := tls.LoadX509KeyPair(m.auditSyslogCert, m.auditSyslogKey)
			if err != nil {
				return fail(fmt.Errorf("audit syslog certificate: %w", err))
			}
			clientCert = &c
		}
		exp, err := audit.NewSyslogExporter(audit.SyslogConfig{Addr: m.auditSyslog, Hostname: host,
			TLS: policy.ClientTLS{Roots: pool, ServerName: m.auditSyslogName, Certificate: clientCert}}, audit.WithSyslogLogger(log))
		if err != nil {
			return fail(err)
		}
		out.syslog = exp
	}
	if dir != nil {
		eng, err := rollout.New(rollout.Config{Store: rolloutStore(st), Director: dir, Audit: l}, rollout.WithLogger(log))
		if err != nil {
			return fail(err)
		}
		dir.SetOverrides(eng)
		out.rollout = eng
	}
	log.Info("management plane configured", "audit_origin", l.Origin(), "audit_syslog", m.auditSyslog, "rollouts", out.rollout != nil,
		"admin_signatures", dirSignatures(dir), "fleet_name", out.name)
	return out, nil
}

// rolloutStore is the fleet store as the rollout engine needs it (both
// backends implement store.RolloutStore).
func rolloutStore(st store.Store) rollout.Store {
	rs, _ := st.(rollout.Store) // boltstore and pgstore both are
	return rs
}

func dirSignatures(d *director.Service) int {
	if d == nil {
		return 0
	}
	return d.AdminSignaturesNeeded()
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// rbac is the permission table with the roles' time windows of
// --role-window.
func (m mgmtFlags) rbac() (*adminauth.RBAC, error) {
	windows := map[adminauth.Role][]adminauth.Window{}
	for _, v := range m.roleWindows {
		role, text, ok := strings.Cut(v, "=")
		r := adminauth.Role(strings.TrimSpace(role))
		if !ok || !r.Valid() {
			return nil, usagef("serve: --role-window %q: want ROLE=DAYS HH:MM-HH:MM ZONE, ROLE one of %v", v, adminauth.Roles())
		}
		w, err := adminauth.ParseWindow(text)
		if err != nil {
			return nil, usagef("serve: --role-window %q: %v", v, err)
		}
		windows[r] = append(windows[r], w)
	}
	r, err := adminauth.NewRBAC(windows)
	if err != nil {
		return nil, usagef("serve: --role-window: %v", err)
	}
	return r, nil
}
