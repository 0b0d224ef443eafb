package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/agent/control"
	"github.com/hardphone/hardphone/internal/cli"
	"github.com/hardphone/hardphone/system"
)

// installTimeout bounds an install through the running agent.
const installTimeout = 30 * time.Minute

func updateUsage(w io.Writer) {
	fmt.Fprintln(w, `usage: hardphone update <subcommand> [flags] [args]

subcommands:
  install BUNDLE|URL  verify a RAUC bundle and install it into the inactive slot
  status [--json]     booted slot, each slot's bundle, counters, rollback, floor
  mark-good           mark the booted slot good (restores its boot counter)
  check-boot          record what this boot means for the last install

Which updater: with --config, the running agent's (asked over its control
socket), or when no agent runs, the one the config describes, with its
credential store's TPM floor. Without --config: --board NAME (or a test
rig's --layout FILE), --state-dir, --keyring, and --tpm SPEC (default: the
board's TPM). Every way applies the same anti-rollback floor: the TPM NV
counter whenever there is a TPM.`)
}

// cmdUpdate runs `hardphone update install|status|mark-good|check-boot`.
func cmdUpdate(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		updateUsage(stderr)
		return usagef("want install, status, mark-good or check-boot")
	}
	sub, rest := args[0], args[1:]
	minArgs, maxArgs := 0, 0
	switch sub {
	case "install":
		minArgs, maxArgs = 1, 1
	case "status", "mark-good", "check-boot":
	case "-h", "--help", "-help", "help":
		updateUsage(stdout)
		return nil
	default:
		updateUsage(stderr)
		return usagef("unknown subcommand %q", sub)
	}
	line := "hardphone update " + sub + " [--config FILE | --board NAME|--layout FILE --state-dir DIR --keyring FILE [--tpm SPEC]]"
	if sub == "install" {
		line = "hardphone update install BUNDLE|https://... [--force] " + line[len("hardphone update install "):]
	}
	fs := cli.NewFlagSet("update "+sub, line, stderr)
	var uf updateFlags
	uf.register(fs)
	force := fs.Bool("force", false, "install: install an image that rolled back before, or while the booted slot is not yet marked good")
	asJSON := fs.Bool("json", false, "status: print JSON")
	caFile := fs.String("ca", "", "install: CA certificates (PEM) for an https URL (default: the system's)")
	pos, err := parse(fs, rest, stdout, minArgs, maxArgs)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, uf.logFormat, uf.logLevel)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	bundle := ""
	if sub == "install" {
		bundle = pos[0]
		if strings.Contains(bundle, "://") {
			dl, err := system.DownloadBundle(ctx, uf.downloadSpec(bundle, *caFile), log)
			if err != nil {
				return err
			}
			defer os.Remove(dl)
			bundle = dl
		}
		if bundle, err = filepath.Abs(bundle); err != nil {
			return err
		}
	}
	var cfg *config.Config
	if uf.config != "" {
		if cfg, err = config.Load(uf.config); err != nil {
			return err
		}
		handled, err := updateViaAgent(ctx, cfg, sub, bundle, *force, *asJSON, stdout)
		if handled || err != nil {
			return err
		}
	}
	u, closeFn, err := uf.open(cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := closeFn(); err != nil {
			log.Warn("close", "error", err)
		}
	}()
	switch sub {
	case "status":
		st, err := u.Status()
		if err != nil {
			return err
		}
		return showUpdateStatus(stdout, st, *asJSON)
	case "mark-good":
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
	prog, done := updateProgress(stdout)
	res, err := u.Install(ctx, bundle, system.InstallOptions{Force: *force, Progress: prog})
	done()
	if err != nil {
		return err
	}
	return showInstalled(stdout, res)
}

// updateViaAgent sends the subcommand to the agent cfg names when it is
// running (it owns the state file); handled is false when no agent
// answers, and the caller opens the updater itself.
func updateViaAgent(ctx context.Context, cfg *config.Config, sub, bundle string, force, asJSON bool, stdout io.Writer) (bool, error) {
	if cfg.ControlSocket == "" || sub == "check-boot" {
		return false, nil
	}
	c := control.NewClient(cfg.ControlSocket)
	var (
		st  *system.UpdateStatus
		res *system.InstallResult
		err error
	)
	switch sub {
	case "status":
		st, err = c.UpdateStatus(ctx)
	case "mark-good":
		st, err = c.UpdateMarkGood(ctx)
	case "install":
		ictx, cancel := context.WithTimeout(ctx, installTimeout)
		defer cancel()
		res, err = c.UpdateInstall(ictx, bundle, force)
	}
	if errors.Is(err, control.ErrNoAgent) {
		return false, nil
	}
	if err != nil {
		return true, err
	}
	switch sub {
	case "status":
		return true, showUpdateStatus(stdout, st, asJSON)
	case "mark-good":
		fmt.Fprintln(stdout, "marked good")
		return true, nil
	}
	return true, showInstalled(stdout, res)
}

func showUpdateStatus(w io.Writer, st *system.UpdateStatus, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	printUpdateStatus(w, st)
	return nil
}

func showInstalled(w io.Writer, res *system.InstallResult) error {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(w, "installed %s into slot %s (security version %d, %d bytes); reboot to try it\n",
			res.Version, res.Slot, res.SecurityVersion, res.Bytes)
		return nil
	}
	return json.NewEncoder(w).Encode(map[string]any{"event": "installed", "result": res})
}

// updateFlags name the updater when no config does.
type updateFlags struct {
	config, board, layout, stateDir, tpm, keyring, purpose string
	logFormat, logLevel                                    string
}

func (f *updateFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "agent config: its running agent, or its [update], credential store and TPM floor")
	fs.StringVar(&f.board, "board", "", "board name (without --config)")
	fs.StringVar(&f.layout, "layout", "", "a test rig's layout file (TOML) instead of a board (without --config)")
	fs.StringVar(&f.stateDir, "state-dir", "/data/hardphone", "directory of the state database, state.db (without --config)")
	fs.StringVar(&f.tpm, "tpm", "", "credential store protector, for the floor (without --config; default: the board's TPM)")
	fs.StringVar(&f.keyring, "keyring", "/etc/hardphone/keyring.pem", "trusted bundle signing CAs, PEM (without --config)")
	fs.StringVar(&f.purpose, "check-purpose", "codesign", "signer certificate rule: codesign or smimesign, rauc's default (without --config)")
	fs.StringVar(&f.logFormat, "log-format", "", "log format: text or json (default: text on a terminal, json otherwise)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
}

// downloadSpec says where an https bundle goes (the state directory, on
// the data partition, which has room for a slot image) and how large it may
// be (what the board's slots can take).
func (f *updateFlags) downloadSpec(url, caFile string) system.DownloadSpec {
	spec := system.DownloadSpec{URL: url, CAFile: caFile, Dir: f.stateDir, Now: system.BuildTimeFloor()}
	if f.config != "" {
		if cfg, err := config.Load(f.config); err == nil {
			if cfg.StateDir != "" {
				spec.Dir = cfg.StateDir
			}
			if ph, err := system.Open(cfg, nil); err == nil {
				spec.MaxBytes = system.MaxBundleBytes(ph.Board())
			}
		}
		return spec
	}
	if b, err := system.BoardFor(f.board, f.layout); err == nil {
		spec.MaxBytes = system.MaxBundleBytes(b)
	}
	return spec
}

// open builds the updater without a running agent: from the config when
// there is one, else from the flags. Both go through system's one builder.
func (f *updateFlags) open(cfg *config.Config, log *slog.Logger) (*system.Updater, func() error, error) {
	if cfg != nil {
		ph, err := system.Open(cfg, log)
		if err != nil {
			return nil, nil, err
		}
		u, err := ph.Updater()
		if err != nil {
			return nil, nil, errors.Join(err, ph.Close())
		}
		return u, ph.Close, nil
	}
	return system.OpenUpdater(system.UpdaterSpec{Board: f.board, Layout: f.layout, StateDir: f.stateDir,
		Protector: f.tpm, Keyring: f.keyring, Purpose: f.purpose, Log: log})
}
