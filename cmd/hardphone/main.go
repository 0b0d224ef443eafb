package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"

	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/internal/cli"
	"github.com/hardphone/hardphone/pid1"
	"github.com/hardphone/hardphone/system"
)

// Stamped by the Makefile with -ldflags -X.
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	pid1.RunIfPID1() // PID 1 on a phone: never returns
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprintln(w, `usage: hardphone <command> [flags] [args]

commands:
  run       run the agent: register every account, answer calls
  phone     the terminal phone: attach to the running agent (or run one)
  call      register, place one call, print a JSON summary
  status    show registrations, calls and counters
  version   print version, commit and platform
  creds     manage TPM-sealed credentials: set, list, rm, wipe, status
  identity  the device identity key in the TPM: create, csr, import-cert, show
  update    A/B updates: install, status, mark-good, check-boot
  lockdown  plan, apply and check the lockdown policy (exit 3 on drift)
  events    the security-event journal: list it, or --verify it
  history   the call history of the running agent
  contacts  the contacts: list, or import a vCard file
  audio     the sound devices: PulseAudio sinks and sources, ALSA cards

Flags may come before or after arguments; "hardphone COMMAND --help" shows a
command's flags.`)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "version":
		fmt.Fprintf(stdout, "hardphone %s commit %s %s/%s %s\n", version, commit, runtime.GOOS, runtime.GOARCH, runtime.Version())
		return 0
	case "run":
		err = cmdRun(rest, stdout, stderr)
	case "call":
		return cmdCall(rest, stdout, stderr)
	case "phone":
		err = cmdPhone(rest, stdout, stderr)
	case "status":
		err = cmdStatus(rest, stdout, stderr)
	case "creds":
		err = cmdCreds(rest, stdout, stderr)
	case "identity":
		err = cmdIdentity(rest, stdout, stderr)
	case "update":
		err = cmdUpdate(rest, stdout, stderr)
	case "lockdown":
		err = cmdLockdown(rest, stdout, stderr)
	case "events":
		err = cmdEvents(rest, stdout, stderr)
	case "history":
		err = cmdHistory(rest, stdout, stderr)
	case "contacts":
		err = cmdContacts(rest, stdout, stderr)
	case "audio":
		err = cmdAudio(rest, stdout, stderr)
	case "-h", "--help", "-help", "help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "hardphone: unknown command %q\n", cmd)
		usage(stderr)
		return 2
	}
	return exitCode(cmd, err, stderr)
}

// exitCode reports err and maps it to the exit status: 0 for help, 2 for a
// usage mistake, an error's own ExitCode (lockdown drift: 3), else 1.
func exitCode(cmd string, err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, cli.ErrHelp) {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "hardphone %s: %v\n", cmd, err)
		return 2
	}
	if isFlagError(err) {
		// The flag package already printed the mistake and the usage.
		return 2
	}
	fmt.Fprintf(stderr, "hardphone %s: %v\n", cmd, err)
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return 1
}

// usageError is a mistake on the command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// flagError marks an error the flag package reported itself.
type flagError struct{ err error }

func (e flagError) Error() string { return e.err.Error() }
func (e flagError) Unwrap() error { return e.err }

func isFlagError(err error) bool {
	var fe flagError
	return errors.As(err, &fe)
}

// parse parses a subcommand's flags (before or after its arguments) and
// checks the number of arguments: between minArgs and maxArgs (-1: any).
func parse(fs *flag.FlagSet, args []string, stdout io.Writer, minArgs, maxArgs int) ([]string, error) {
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		if errors.Is(err, cli.ErrHelp) {
			return nil, err
		}
		return nil, flagError{err}
	}
	if len(pos) < minArgs || (maxArgs >= 0 && len(pos) > maxArgs) {
		fs.Usage()
		switch {
		case maxArgs == 0:
			return nil, usagef("%s takes no arguments, got %q", fs.Name(), pos)
		case minArgs == maxArgs:
			return nil, usagef("%s takes %d argument(s), got %d", fs.Name(), minArgs, len(pos))
		}
		return nil, usagef("%s takes %d to %d arguments, got %d", fs.Name(), minArgs, maxArgs, len(pos))
	}
	return pos, nil
}

// commonFlags are the flags of the commands that load a config.
type commonFlags struct {
	config    string
	logFormat string
	logLevel  string
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", "", "config file (TOML)")
	fs.StringVar(&c.logFormat, "log-format", "", "log format: text or json (default: text on a terminal, json otherwise)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
}

func (c *commonFlags) logger(w io.Writer) (*slog.Logger, error) {
	return newLogger(w, c.logFormat, c.logLevel)
}

// newLogger is every subcommand's slog logger: text on a terminal, JSON
// otherwise unless format says; the SIP library's own logging goes through
// it too.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	var log *slog.Logger
	switch format {
	case "text":
		log = slog.New(slog.NewTextHandler(w, opts))
	case "json":
		log = slog.New(slog.NewJSONHandler(w, opts))
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
	system.SetLibraryLogger(log)
	return log, nil
}

func (c *commonFlags) load() (*config.Config, error) {
	if c.config == "" {
		return nil, errors.New("--config is required")
	}
	return config.Load(c.config)
}
