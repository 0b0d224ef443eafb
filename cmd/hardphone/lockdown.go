package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/hardphone/hardphone/internal/cli"
	"github.com/hardphone/hardphone/system"
)

// defaultPolicyFile is where the board installs its lockdown policy.
const defaultPolicyFile = "/etc/hardphone/lockdown.toml"

// cmdLockdown runs `hardphone lockdown plan|apply|check`.
//
// Exit status: the error returned for drift found by `check` is a
// lockdown drift error (errors.Is(err, system.ErrLockdownDrift)), which has an
// ExitCode method returning 3; main maps it with
//
//	var ec interface{ ExitCode() int }
//	if errors.As(err, &ec) { return ec.ExitCode() }
//
// Every other error (bad flags, a policy refused with its line, a failed
// apply, a check that could not run) is exit status 1.
func cmdLockdown(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		lockdownUsage(stderr)
		return usagef("want plan, apply or check")
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "plan", "apply", "check":
	case "-h", "--help", "-help", "help":
		lockdownUsage(stdout)
		return nil
	default:
		lockdownUsage(stderr)
		return usagef("unknown subcommand %q", sub)
	}
	fs := cli.NewFlagSet("lockdown "+sub, "hardphone lockdown "+sub+" [--policy FILE] [--json] [--modprobe-file FILE] [--init-root DIR]", stderr)
	policyPath := fs.String("policy", defaultPolicyFile, "lockdown policy file (TOML)")
	asJSON := fs.Bool("json", false, "print JSON")
	modprobe := fs.String("modprobe-file", system.DefaultModprobeFile, "modprobe.d file for module blocks; empty when the board has no writable modprobe.d")
	initRoot := fs.String("init-root", "/", "root filesystem whose services are managed")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if _, err := parse(fs, rest, stdout, 0, 0); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))

	// Verify, then commit: the policy is parsed and validated before
	// anything on the system is touched.
	ld, err := system.OpenLockdown(system.LockdownSpec{Policy: *policyPath, InitRoot: *initRoot, ModprobeFile: *modprobe, Log: log})
	if err != nil {
		return err
	}
	defer ld.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	switch sub {
	case "plan", "apply":
		var pl *system.LockdownPlan
		if sub == "plan" {
			pl, err = ld.Plan(ctx)
		} else {
			pl, err = ld.Apply(ctx)
		}
		if pl != nil {
			if perr := printResult(stdout, *asJSON, pl, pl.String()); perr != nil && err == nil {
				err = perr
			}
		}
		return err
	default: // check
		r, err := ld.Check(ctx)
		if err != nil {
			return err
		}
		text := "ok: the system matches the policy\n"
		if !r.OK {
			text = ""
			for _, f := range r.Drift {
				text += "drift: " + f.String() + "\n"
			}
		}
		for _, n := range r.Notes {
			text += "note: " + n + "\n"
		}
		if err := printResult(stdout, *asJSON, r, text); err != nil {
			return err
		}
		return r.Err()
	}
}

func printResult(w io.Writer, asJSON bool, v any, text string) error {
	if !asJSON {
		_, err := io.WriteString(w, text)
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

func lockdownUsage(w io.Writer) {
	fmt.Fprintln(w, `usage: hardphone lockdown plan|apply|check [flags]

  plan    print what apply would change, and what it cannot fix
  apply   enforce the policy: firewall, services, modules, sysctls
  check   compare the running system with the policy; exit status 3 on drift

flags:
  --policy FILE         lockdown policy (default `+defaultPolicyFile+`)
  --json                print JSON
  --modprobe-file FILE  modprobe.d file for module blocks ("" when not writable)
  --init-root DIR       root filesystem whose services are managed (default /)
  --log-level LEVEL     debug, info, warn, error`)
}
