package test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sippTimeout bounds a RunSIPp call.
const sippTimeout = 30 * time.Second

// SIPpResult is the outcome of one sipp run.
type SIPpResult struct {
	// Output is sipp's stdout and stderr.
	Output string
	// ExitCode is sipp's: 0 when every call succeeded, 1 when some failed,
	// 97 on an internal command exit, 99 when no call was processed, 255 on
	// a fatal error; -1 when it was killed at the timeout.
	ExitCode int
	// Dir is sipp's working directory, where its -trace_* files land.
	Dir      string
	Duration time.Duration
}

// RunSIPp runs sipp with args (plus -nostdin) in a temporary working dir and
// returns its output and exit code; it kills sipp by PID after 30 s. Pass
// sipp's own -timeout and -m so that it ends by itself first.
func RunSIPp(t testing.TB, args ...string) SIPpResult {
	t.Helper()
	return RunSIPpTimeout(t, sippTimeout, args...)
}

// RunSIPpTimeout is RunSIPp with a chosen timeout.
func RunSIPpTimeout(t testing.TB, timeout time.Duration, args ...string) SIPpResult {
	t.Helper()
	requireNetns(t)
	bin := requireBinary(t, "sipp")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	res := SIPpResult{Dir: t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append([]string{"-nostdin"}, args...)...)
	cmd.Dir = res.Dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = stopGrace
	start := time.Now()
	err := cmd.Run()
	res.Duration = time.Since(start)
	res.Output = out.String()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		res.ExitCode = -1
		t.Logf("sipp %s: killed after %v", strings.Join(args, " "), timeout)
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitCode()
	default:
		t.Fatalf("RunSIPp %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// WriteScenario writes a SIPp XML scenario to a temporary file and returns
// its path, for sipp -sf.
func WriteScenario(t testing.TB, name, xml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), fileSafe(name)+".xml")
	if err := os.WriteFile(path, []byte(xml), 0o644); err != nil {
		t.Fatalf("WriteScenario: %v", err)
	}
	return path
}
