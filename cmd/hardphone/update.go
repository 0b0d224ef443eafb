package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/hardphone/hardphone/agent"
	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/internal/cli"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"go.etcd.io/bbolt"
	"golang.org/x/term"

	"github.com/hardphone/hardphone/crypto/policy"
	"github.com/hardphone/hardphone/hal/ubootenv"
	"github.com/hardphone/hardphone/update"
	"github.com/hardphone/hardphone/update/bundle"
)

// cmdUpdate runs `hardphone update install|status|mark-good|check-boot`.
// Until the board package supplies the slot layout, it comes from --board
// (a small TOML file, see updateBoardFile) and/or flags, flags winning.
func cmdUpdate(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		updateUsage(stderr)
		return errors.New("update: want install, status, mark-good or check-boot")
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "install", "status", "mark-good", "check-boot":
	case "-h", "--help", "help":
		updateUsage(stdout)
		return nil
	default:
		updateUsage(stderr)
		return fmt.Errorf("update: unknown subcommand %q", sub)
	}
	fs := flag.NewFlagSet("update "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var uf updateFlags
	uf.register(fs)
	force := fs.Bool("force", false, "install: install an image that rolled back before, or while the booted slot is not yet marked good")
	asJSON := fs.Bool("json", false, "status: print JSON")
	caFile := fs.String("ca", "", "install: CA certificates (PEM) for an https URL (default: the system's)")
	cfgPath := fs.String("config", "", "agent config: use its [update] table, credential store and floor; ask the running agent over its control socket when it runs")
	pos, err := cli.ParseInterleaved(fs, rest)
	if err != nil {
		return err
	}
	log, err := uf.logger(stderr)
	if err != nil {
		return err
	}
	var u *update.Updater
	if *cfgPath != "" {
		handled, err := updateViaAgent(*cfgPath, sub, pos, *force, *asJSON, stdout)
		if handled || err != nil {
			return err
		}
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		ag, err := agent.New(cfg, log)
		if err != nil {
			return err
		}
		defer ag.Close()
		if u = ag.Updater(); u == nil {
			return fmt.Errorf("config %s has no [update] layout", *cfgPath)
		}
	} else {
		var closeDB func()
		u, closeDB, err = uf.open(log)
		if err != nil {
			return err
		}
		defer closeDB()
	}

	switch sub {
	case "status":
		if len(pos) != 0 {
			return errors.New("update status: takes no arguments")
		}
		st, err := u.Status()
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		}
		printUpdateStatus(stdout, st)
		return nil
	case "mark-good":
		if len(pos) != 0 {
			return errors.New("update mark-good: takes no arguments")
		}
		if err := u.MarkGood(); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "marked good")
		return nil
	case "check-boot":
		rb, err := u.CheckBoot()
		if err != nil {
			return err
		}
		if rb {
			fmt.Fprintln(stdout, "rollback: this boot fell back to the old slot")
		} else {
			fmt.Fprintln(stdout, "no rollback")
		}
		return nil
	}

	// install
	if len(pos) != 1 {
		return errors.New("update install: want one BUNDLE (file path or https URL)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	path := pos[0]
	if strings.Contains(path, "://") {
		dl, err := updateDownload(ctx, path, *caFile, uf.stateDir, log)
		if err != nil {
			return err
		}
		defer os.Remove(dl)
		path = dl
	}
	prog, done := updateProgress(stdout)
	res, err := u.Install(ctx, path, update.InstallOptions{Force: *force, Progress: prog})
	done()
	if err != nil {
		return err
	}
	if term.IsTerminal(int(os.Stdout.Fd())) && stdout == os.Stdout {
		fmt.Fprintf(stdout, "installed %s into slot %s (security version %d, %d bytes); reboot to try it\n",
			res.Version, res.Slot, res.SecurityVersion, res.Bytes)
		return nil
	}
	return json.NewEncoder(stdout).Encode(map[string]any{"event": "installed", "result": res})
}

// updateViaAgent sends the subcommand to the agent the config names when it
// is running (it owns the state file); handled is false when no agent
// answers, and the caller opens the updater itself.
func updateViaAgent(cfgPath, sub string, pos []string, force, asJSON bool, stdout io.Writer) (bool, error) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return true, err
	}
	if cfg.ControlSocket == "" {
		return false, nil
	}
	req := map[string]any{"command": "update-" + sub}
	switch sub {
	case "status", "mark-good":
	case "install":
		if len(pos) != 1 || strings.Contains(pos[0], "://") {
			return false, nil
		}
		abs, err := filepath.Abs(pos[0])
		if err != nil {
			return true, err
		}
		req["bundle"], req["force"] = abs, force
	default:
		return false, nil
	}
	raw, err := agent.Control(cfg.ControlSocket, req)
	if errors.Is(err, agent.ErrNoAgent) {
		return false, nil
	}
	if err != nil {
		return true, err
	}
	if sub == "status" && !asJSON {
		var st update.Status
		if err := json.Unmarshal(raw, &st); err != nil {
			return true, err
		}
		printUpdateStatus(stdout, &st)
		return true, nil
	}
	fmt.Fprintln(stdout, string(raw))
	return true, nil
}

func updateUsage(w io.Writer) {
	fmt.Fprintln(w, `usage: hardphone update <subcommand> [flags]

subcommands:
  install BUNDLE|URL  verify a RAUC bundle and install it into the inactive slot
  status [--json]     booted slot, each slot's bundle, counters, rollback, floor
  mark-good           mark the booted slot good (restores its boot counter)
  check-boot          record what this boot means for the last install

board layout: --board FILE (TOML) and/or --compatible, --slot-a, --slot-b,
--env, --env-offset, --env-size, --env-redundant-offset; --booted overrides
rauc.slot= from /proc/cmdline.`)
}

type updateFlags struct {
	board, compatible, slotClass, slotA, slotB, booted string
	env, envOffset, envRedundantOffset, lockFile       string
	envSize                                            int
	stateDir, keyring, purpose, logFormat, logLevel    string
}

func (f *updateFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.board, "board", "", "board layout file (TOML)")
	fs.StringVar(&f.compatible, "compatible", "", "board compatible string")
	fs.StringVar(&f.slotClass, "slot-class", "", "image slot class (default rootfs)")
	fs.StringVar(&f.slotA, "slot-a", "", "slot A block device or file")
	fs.StringVar(&f.slotB, "slot-b", "", "slot B block device or file")
	fs.StringVar(&f.booted, "booted", "", "booted slot (default: rauc.slot= from /proc/cmdline)")
	fs.StringVar(&f.env, "env", "", "U-Boot environment device or file")
	fs.StringVar(&f.envOffset, "env-offset", "", "byte offset of the first environment copy (default 0)")
	fs.IntVar(&f.envSize, "env-size", 0, "size of one environment copy (default 0x4000)")
	fs.StringVar(&f.envRedundantOffset, "env-redundant-offset", "", "byte offset of the redundant copy (none: single copy)")
	fs.StringVar(&f.lockFile, "env-lock", "", "lock file shared with fw_setenv (e.g. /var/lock/fw_printenv.lock)")
	fs.StringVar(&f.stateDir, "state-dir", "/data/hardphone", "directory of the state database (state.db)")
	fs.StringVar(&f.keyring, "keyring", "/etc/hardphone/update-keyring.pem", "trusted bundle signing CAs (PEM)")
	fs.StringVar(&f.purpose, "check-purpose", "codesign", "signer certificate rule: codesign or smimesign (rauc's default)")
	fs.StringVar(&f.logFormat, "log-format", "", "log format: text or json (default: text on a terminal, json otherwise)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
}

func (f *updateFlags) logger(w io.Writer) (*slog.Logger, error) {
	return newLogger(w, f.logFormat, f.logLevel)
}

// layout merges the board file and the flags into the updater and
// environment configs.
func (f *updateFlags) layout() (update.Config, ubootenv.Config, error) {
	var b update.LayoutFile
	if f.board != "" {
		lf, err := update.ReadLayoutFile(f.board)
		if err != nil {
			return update.Config{}, ubootenv.Config{}, err
		}
		b = *lf
	}
	// Flags win over the file.
	pick := func(flagVal string, fileVal *string) {
		if flagVal != "" {
			*fileVal = flagVal
		}
	}
	pick(f.compatible, &b.Compatible)
	pick(f.slotClass, &b.SlotClass)
	pick(f.booted, &b.BootedSlot)
	if b.Slots == nil {
		b.Slots = map[string]string{}
	}
	for name, v := range map[string]string{"A": f.slotA, "B": f.slotB} {
		if v != "" {
			b.Slots[name] = v
		}
	}
	pick(f.env, &b.Env.Path)
	pick(f.lockFile, &b.Env.LockFile)
	if f.envSize != 0 {
		b.Env.Size = f.envSize
	}
	for _, o := range []struct {
		name, val string
		dst       **int64
	}{{"--env-offset", f.envOffset, &b.Env.Offset}, {"--env-redundant-offset", f.envRedundantOffset, &b.Env.RedundantOffset}} {
		if o.val == "" {
			continue
		}
		n, err := strconv.ParseInt(o.val, 0, 64)
		if err != nil || n < 0 {
			return update.Config{}, ubootenv.Config{}, fmt.Errorf("%s %q: want a byte offset (decimal or 0x hex)", o.name, o.val)
		}
		*o.dst = &n
	}
	ec, err := agent.EnvConfig(&b)
	if err != nil {
		return update.Config{}, ubootenv.Config{}, fmt.Errorf("%w (--env or [env] path)", err)
	}
	return b.Config(f.stateDir), ec, nil
}

// open builds the updater; the returned function closes the database.
func (f *updateFlags) open(log *slog.Logger) (*update.Updater, func(), error) {
	cfg, ec, err := f.layout()
	if err != nil {
		return nil, nil, err
	}
	env, err := ubootenv.Open(ec, ubootenv.WithLogger(log))
	if err != nil {
		return nil, nil, err
	}
	kr, err := bundle.LoadKeyring(f.keyring)
	if err != nil {
		return nil, nil, err
	}
	purpose, err := bundle.ParsePurpose(f.purpose)
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(f.stateDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("state dir: %w", err)
	}
	dbPath := filepath.Join(f.stateDir, "state.db")
	db, err := bbolt.Open(dbPath, 0o600, &bbolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, nil, fmt.Errorf("open %s (is the agent running? it holds the database): %w", dbPath, err)
	}
	// TODO(#4): take the TPM NV counter from the board once board/ exists;
	// until then the CLI uses the state-file floor, and status says so.
	u, err := update.New(cfg, db, env, kr, update.WithLogger(log), update.WithPurpose(purpose))
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return u, func() {
		if err := db.Close(); err != nil {
			log.Warn("close state database", "error", err)
		}
	}, nil
}

// updateProgress shows install progress: a bar with bytes, percent and
// rate on a terminal, one JSON event per phase change or percent otherwise.
func updateProgress(w io.Writer) (func(update.Progress), func()) {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		var bar *progressbar.ProgressBar
		phase := ""
		return func(p update.Progress) {
				if p.Phase == update.PhaseSwitch || p.Phase == update.PhaseDone {
					// Instant phases: no bar; the result line follows.
					if bar != nil {
						_ = bar.Finish() // only redraws the line
						bar = nil
					}
					phase = p.Phase
					return
				}
				if p.Phase != phase || bar == nil {
					if bar != nil {
						_ = bar.Finish() // only redraws the line
					}
					phase = p.Phase
					bar = progressbar.NewOptions64(max(p.Total, 1), progressbar.OptionSetWriter(w),
						progressbar.OptionShowBytes(true), progressbar.OptionSetDescription(p.Phase),
						progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionShowCount(),
						progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
				}
				_ = bar.Set64(p.Done) // a drawing error does not stop the install
			}, func() {
				if bar != nil {
					_ = bar.Finish() // as above
				}
			}
	}
	enc := json.NewEncoder(w)
	last := update.Progress{}
	return func(p update.Progress) {
		pct := func(q update.Progress) int64 {
			if q.Total <= 0 {
				return 0
			}
			return q.Done * 100 / q.Total
		}
		if p.Phase == last.Phase && pct(p) == pct(last) {
			return
		}
		last = p
		if err := enc.Encode(map[string]any{"event": "progress", "phase": p.Phase, "done": p.Done, "total": p.Total}); err != nil {
			return
		}
	}, func() {}
}

// updateDownload fetches an https bundle into a private file in dir, with
// the crypto policy's TLS settings and certificate verification.
func updateDownload(ctx context.Context, raw, caFile, dir string, log *slog.Logger) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("bundle URL: %w", err)
	}
	if u.Scheme != "https" {
		return "", fmt.Errorf("bundle URL scheme %q: only https is allowed", u.Scheme)
	}
	roots, err := x509.SystemCertPool()
	if err != nil || caFile != "" {
		roots = x509.NewCertPool()
	}
	if caFile != "" {
		pemData, err := os.ReadFile(caFile)
		if err != nil {
			return "", fmt.Errorf("--ca: %w", err)
		}
		if !roots.AppendCertsFromPEM(pemData) {
			return "", fmt.Errorf("--ca %s: no certificates", caFile)
		}
	}
	tlsCfg, err := policy.ClientConfig(policy.ClientTLS{Roots: roots, ServerName: u.Hostname()})
	if err != nil {
		return "", err
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: http.ProxyFromEnvironment},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Scheme != "https" || req.URL.Hostname() != u.Hostname() || len(via) > 5 {
				return fmt.Errorf("redirect to %s refused: only https on %s", req.URL.Redacted(), u.Hostname())
			}
			return nil
		}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("download bundle: %w", err)
	}
	defer resp.Body.Close()
	if resp.TLS == nil {
		return "", errors.New("download bundle: not a TLS connection")
	}
	if err := policy.CheckTLSState(*resp.TLS); err != nil {
		return "", fmt.Errorf("download bundle: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("download bundle: %s", resp.Status)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, "download-*.raucb")
	if err != nil {
		return "", err
	}
	n, err := io.Copy(f, resp.Body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("download bundle: %w", err)
	}
	log.Info("bundle downloaded", "component", "update", "url", u.Redacted(), "bytes", n)
	return f.Name(), nil
}

func printUpdateStatus(w io.Writer, st *update.Status) {
	fmt.Fprintf(w, "booted slot: %s   boot order: %s   next boot: %s\n", st.BootedSlot, strings.Join(st.BootOrder, " "), st.NextSlot)
	for _, s := range st.Slots {
		left := "unset"
		if s.AttemptsLeft != nil {
			left = fmt.Sprint(*s.AttemptsLeft)
		}
		mark := " "
		if s.Booted {
			mark = "*"
		}
		fmt.Fprintf(w, "%s slot %s (%s): %s, version %q, security version %d, attempts left %s", mark, s.Name, s.Device, s.State, s.Version, s.SecurityVersion, left)
		if s.InstalledAt != nil {
			fmt.Fprintf(w, ", installed %s", s.InstalledAt.Format(time.RFC3339))
		}
		fmt.Fprintln(w)
	}
	if st.Rollback {
		fmt.Fprintf(w, "ROLLBACK: %s\n", st.RollbackDetail)
	}
	if st.PendingReboot {
		fmt.Fprintln(w, "an installed update waits for a reboot")
	}
	if l := st.LastInstall; l != nil {
		fmt.Fprintf(w, "last install: %s into slot %s, %s\n", l.Version, l.Target, l.Outcome)
	}
	weak := ""
	if st.Floor.Weaker {
		weak = " (weaker: no TPM)"
	}
	fmt.Fprintf(w, "anti-rollback floor: %d, kept in %s%s\n", st.Floor.Value, st.Floor.Kind, weak)
}
