package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/director"
	"github.com/hardphone/hardphone/fleet/server"
	"github.com/hardphone/hardphone/fleet/store"
	"github.com/hardphone/hardphone/fleet/store/boltstore"
	"github.com/hardphone/hardphone/fleet/store/pgstore"
	"github.com/hardphone/hardphone/internal/cli"
)

// Stamped by the Makefile with -ldflags -X.
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprintln(w, `usage: hpfleet <command> [flags]

commands:
  serve     run the fleet server (HTTPS API and admin console)
  admin bootstrap  create one of the first two security admins (initial password printed once)
  version   print version, commit and platform

"hpfleet serve --help" shows the server's flags.`)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "version":
		fmt.Fprintf(stdout, "hpfleet %s commit %s %s/%s %s\n", version, commit, runtime.GOOS, runtime.GOARCH, runtime.Version())
		return 0
	case "serve", "admin":
		cmd := serve
		if args[0] == "admin" {
			cmd = adminCmd
		}
		err := cmd(args[1:], stdout, stderr)
		if errors.Is(err, cli.ErrHelp) {
			return 0
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "hpfleet: %v\n", err)
			return 2
		}
		if err != nil {
			fmt.Fprintf(stderr, "hpfleet: %v\n", err)
			return 1
		}
		return 0
	case "-h", "--help", "-help", "help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "hpfleet: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

// usageError is a mistake on the command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// multiFlag collects a repeated string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

type serveFlags struct {
	data, postgres, listen, caDir, tlsCert, tlsKey string
	mfgCAs, mfgInter, adminCAs                     multiFlag
	certLife, checkIn, crlPeriod                   time.Duration
	maxInFlight, pgConns                           int
	logLevel                                       string
	dir                                            directorFlags
	mgmt                                           mgmtFlags
	anom                                           anomalyFlags
	console                                        consoleFlags
}

func serve(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("serve", "hpfleet serve (--data DIR | --postgres DSN) --ca-dir DIR --manufacturer-ca FILE... [flags]", stderr)
	var f serveFlags
	fs.StringVar(&f.data, "data", "", "data directory of the embedded store (bbolt, one process)")
	fs.StringVar(&f.postgres, "postgres", "", "PostgreSQL DSN, or @FILE to read it from a file (keeps the password out of the process list); replicas share it")
	fs.StringVar(&f.listen, "listen", ":8443", "address to serve HTTPS on")
	fs.StringVar(&f.caDir, "ca-dir", "", "fleet PKI directory (hpctl fleet init): device-ca.crt and device-ca.key (mode 0600), and the defaults below")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "server certificate chain (PEM; default CA-DIR/server.crt)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "server key (PEM, mode 0600; default CA-DIR/server.key)")
	fs.Var(&f.mfgCAs, "manufacturer-ca", "TPM manufacturer root CA whose EK certificates the fleet accepts (PEM; repeatable; required)")
	fs.Var(&f.mfgInter, "manufacturer-intermediate", "manufacturer intermediate CA certificates (PEM; repeatable)")
	fs.Var(&f.adminCAs, "admin-ca", "CA of the admins' client certificates (PEM; repeatable; default CA-DIR/admin-ca.crt)")
	fs.DurationVar(&f.certLife, "cert-lifetime", ca.DefaultDeviceLifetime, "device certificate lifetime")
	fs.DurationVar(&f.checkIn, "checkin-interval", server.DefaultCheckInInterval, "check-in interval told to phones")
	fs.DurationVar(&f.crlPeriod, "crl-period", server.DefaultCRLPeriod, "CRL validity (reissued after half of it, and at each revocation)")
	fs.IntVar(&f.maxInFlight, "max-in-flight", server.DefaultMaxInFlight, "requests handled at once")
	fs.IntVar(&f.pgConns, "postgres-max-conns", 0, "PostgreSQL connections of this replica (0: pgx's default)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	f.dir.register(fs)
	f.mgmt.register(fs)
	f.anom.register(fs)
	f.console.register(fs)
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("serve: unexpected arguments %q", pos)
	}
	switch {
	case (f.data == "") == (f.postgres == ""):
		return usagef("serve: give exactly one of --data and --postgres")
	case f.caDir == "":
		return usagef("serve: --ca-dir is required")
	case len(f.mfgCAs) == 0:
		return usagef("serve: --manufacturer-ca is required: without one the fleet would accept no TPM")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return usagef("serve: --log-level %q: %v", f.logLevel, err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	srv, st, dir, m, closeDir, err := build(f, log)
	if err != nil {
		return err
	}
	defer st.Close()
	defer closeDir()
	defer m.close()
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if dir != nil {
		go dir.Run(ctx, f.dir.interval)
	}
	m.run(ctx, f.mgmt, log)
	err = srv.Serve(ctx, ln)
	log.Info("stopped", "err", err)
	return err
}

// build loads the PKI, opens the store and sets up the director (when
// its flags are given). closeDir releases the director's connections.
func build(f serveFlags, log *slog.Logger) (srv *server.Server, st store.Store, dir *director.Service, m *mgmt, closeDir func(), err error) {
	or := func(v, def string) string {
		if v != "" {
			return v
		}
		return filepath.Join(f.caDir, def)
	}
	deviceCA, err := ca.Load(filepath.Join(f.caDir, ca.DeviceCACertFile), filepath.Join(f.caDir, ca.DeviceCAKeyFile))
	if err != nil {
		return nil, nil, nil, nil, nil, err
	}
	certFile, keyFile := or(f.tlsCert, ca.ServerCertFile), or(f.tlsKey, ca.ServerKeyFile)
	if _, err := ca.LoadKey(keyFile); err != nil {
		// The same owner-only rule as the CA key, before crypto/tls reads it.
		return nil, nil, nil, nil, nil, fmt.Errorf("server %w", err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, nil, nil, nil, fmt.Errorf("server certificate: %w", err)
	}
	load := func(files []string) ([]*x509.Certificate, error) {
		var out []*x509.Certificate
		for _, file := range files {
			c, err := ca.LoadCertificates(file)
			if err != nil {
				return nil, err
			}
			out = append(out, c...)
		}
		return out, nil
	}
	mfg, err := load(f.mfgCAs)
	if err != nil {
		return nil, nil, nil, nil, nil, fmt.Errorf("manufacturer CA: %w", err)
	}
	inter, err := load(f.mfgInter)
	if err != nil {
		return nil, nil, nil, nil, nil, fmt.Errorf("manufacturer intermediate: %w", err)
	}
	adminFiles := []string(f.adminCAs)
	if len(adminFiles) == 0 {
		adminFiles = []string{filepath.Join(f.caDir, ca.AdminCACertFile)}
	}
	admins, err := load(adminFiles)
	if err != nil {
		return nil, nil, nil, nil, nil, fmt.Errorf("admin CA: %w", err)
	}
	anomOpt, closeAlerts, err := f.anom.build(log)
	if err != nil {
		return nil, nil, nil, nil, nil, err
	}
	st, err = openStore(f, log)
	if err != nil {
		closeAlerts()
		return nil, nil, nil, nil, nil, err
	}
	// The director reports password rotations to the server, built
	// after it; the hook runs only once serving started.
	var rotated func(ctx context.Context, id store.DeviceID, account string, at time.Time)
	hook := director.WithRotationHook(func(ctx context.Context, id store.DeviceID, account string, at time.Time) {
		if rotated != nil {
			rotated(ctx, id, account, at)
		}
	})
	dir, closeDir, err = f.dir.build(st, log, hook)
	if err != nil {
		closeAlerts()
		st.Close()
		return nil, nil, nil, nil, nil, err
	}
	m, err = f.mgmt.build(f, st, dir, &cert, log)
	if err != nil {
		closeDir()
		closeAlerts()
		st.Close()
		return nil, nil, nil, nil, nil, err
	}
	consoleHandler, err := m.buildConsole(f, st, admins, &cert, log)
	if err != nil {
		m.close()
		closeDir()
		closeAlerts()
		st.Close()
		return nil, nil, nil, nil, nil, err
	}
	cfg := server.Config{Console: consoleHandler, Store: st, DeviceCA: deviceCA, ManufacturerRoots: mfg, ManufacturerIntermediates: inter, AdminCAs: admins,
		Certificate: &cert, Director: dir, AdminAuth: m.auth, FleetName: m.name}
	if m.audit != nil {
		cfg.Audit = m.audit
	}
	if m.rollout != nil {
		cfg.Rollouts = m.rollout
	}
	opts := []server.Option{server.WithLogger(log), server.WithCertLifetime(f.certLife), server.WithCheckInInterval(f.checkIn),
		server.WithCRLPeriod(f.crlPeriod), server.WithMaxInFlight(f.maxInFlight), f.anom.eventLimits()}
	if anomOpt != nil {
		opts = append(opts, anomOpt)
	}
	srv, err = server.New(cfg, opts...)
	if err != nil {
		m.close()
		closeDir()
		closeAlerts()
		st.Close()
		return nil, nil, nil, nil, nil, err
	}
	rotated = func(ctx context.Context, id store.DeviceID, account string, at time.Time) {
		srv.CredentialChanged(ctx, id, "sip_password", "director", at)
	}
	prevClose := closeDir
	closeDir = func() { prevClose(); closeAlerts() }
	log.Info("fleet server configured", "device_ca", deviceCA, "manufacturer_roots", len(mfg), "admin_cas", len(admins),
		"store", storeKind(f), "cert_lifetime", f.certLife.String(), "director", dir != nil)
	return srv, st, dir, m, closeDir, nil
}

func storeKind(f serveFlags) string {
	if f.data != "" {
		return "bbolt"
	}
	return "postgres"
}

func openStore(f serveFlags, log *slog.Logger) (store.Store, error) {
	if f.data != "" {
		return boltstore.Open(f.data, boltstore.WithLogger(log))
	}
	dsn := f.postgres
	if rest, ok := strings.CutPrefix(dsn, "@"); ok {
		b, err := os.ReadFile(rest)
		if err != nil {
			return nil, fmt.Errorf("--postgres: %w", err)
		}
		dsn = strings.TrimSpace(string(b))
	}
	opts := []pgstore.Option{pgstore.WithLogger(log)}
	if f.pgConns > 0 {
		opts = append(opts, pgstore.WithMaxConns(f.pgConns))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return pgstore.Open(ctx, dsn, opts...)
}
