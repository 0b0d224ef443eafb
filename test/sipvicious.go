package test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sipviciousTimeout bounds one SIPVicious run that should end by itself.
const sipviciousTimeout = 2 * time.Minute

// SIPViciousResult is the outcome of one run of a SIPVicious tool.
type SIPViciousResult struct {
	// Tool is the program run: svmap, svwar or svcrack.
	Tool string
	// Output is its stdout and stderr.
	Output string
	// ExitCode is its exit status; -1 when it was stopped.
	ExitCode int
	// Stopped is true when the run was interrupted at its time limit.
	Stopped  bool
	Duration time.Duration
}

// RunSVMap runs SIPVicious's svmap (Debian package sipvicious), the SIP
// scanner: it sends one request (OPTIONS by default) with User-Agent
// "friendly-scanner" to each host and port of its targets and lists who
// answered. args are svmap's own ("-p5092", "-m", "INVITE", ...), the
// targets last.
func RunSVMap(t testing.TB, args ...string) SIPViciousResult {
	t.Helper()
	return runSIPVicious(t, "svmap", 0, args...)
}

// RunSVWar runs svwar, the extension enumerator (REGISTER, OPTIONS or
// INVITE per extension of a range or dictionary). Against a device that
// answers every extension alike it stops after its sanity check unless
// given --force.
func RunSVWar(t testing.TB, args ...string) SIPViciousResult {
	t.Helper()
	return runSIPVicious(t, "svwar", 0, args...)
}

// RunSVCrack runs svcrack, the digest password guesser, for at most
// within, then interrupts it as a user's ^C would (SIGINT). It sends
// REGISTERs for one user and answers each 401/407 challenge with the next
// password of a range or dictionary; against a device that refuses
// without a challenge it asks again after every refusal and never ends by
// itself, so the limit is part of the run, not a failure.
func RunSVCrack(t testing.TB, within time.Duration, args ...string) SIPViciousResult {
	t.Helper()
	if within <= 0 {
		t.Fatalf("RunSVCrack: limit %v, want > 0", within)
	}
	return runSIPVicious(t, "svcrack", within, args...)
}

// runSIPVicious runs tool with args in a fresh working and home directory
// (the tools keep their sessions under $HOME/.sipvicious), inside the
// test's network namespace. With a limit, the tool is interrupted by PID
// (SIGINT, then SIGKILL after stopGrace) once it has run that long; with
// none it must end by itself (svmap and svwar stop once nothing answers
// for their --maximumtime) and is killed after sipviciousTimeout.
func runSIPVicious(t testing.TB, tool string, limit time.Duration, args ...string) SIPViciousResult {
	t.Helper()
	requireNetns(t)
	bin := requireBinary(t, tool)
	dir := t.TempDir()
	timeout := sipviciousTimeout
	if limit > 0 {
		timeout = limit
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.Dir = dir
	cmd.Env = []string{"HOME=" + dir, "PATH=/usr/bin:/bin", "LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = stopGrace
	res := SIPViciousResult{Tool: tool}
	start := time.Now()
	err := cmd.Run()
	res.Duration = time.Since(start)
	res.Output = out.String()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil && limit > 0:
		res.ExitCode, res.Stopped = -1, true
	case ctx.Err() != nil:
		res.ExitCode = -1
		t.Errorf("%s %s: did not end within %v; stopped", tool, strings.Join(args, " "), sipviciousTimeout)
	case err == nil:
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitCode()
	default:
		t.Fatalf("%s %s: %v", tool, strings.Join(args, " "), err)
	}
	// An interrupted tool prints Python's KeyboardInterrupt trace; any
	// other trace is a crash.
	if strings.Contains(res.Output, "Traceback (most recent call last)") && !(res.Stopped && strings.Contains(res.Output, "KeyboardInterrupt")) {
		t.Fatalf("%s %s crashed:\n%s", tool, strings.Join(args, " "), res.Output)
	}
	return res
}
