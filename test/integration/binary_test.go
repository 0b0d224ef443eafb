package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// hardphoneBinary builds the static binary once per test process (the go
// build cache makes that cheap), so a test never runs a stale bin/.
func hardphoneBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := filepath.Abs("../..")
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "hardphone-bin")
		if err != nil {
			buildErr = err
			return
		}
		buildBin = filepath.Join(dir, "hardphone")
		cmd := exec.Command("go", "build", "-o", buildBin, "./cmd/hardphone")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = err
			buildBin = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build hardphone: %v\n%s", buildErr, buildBin)
	}
	return buildBin
}

// agentProcess is a `hardphone run` started by a test and stopped by PID.
type agentProcess struct {
	cmd  *exec.Cmd
	done chan error
	log  string
}

var (
	hpctlOnce sync.Once
	hpctlBin  string
	hpctlErr  error
)

// hpctlBinary builds cmd/hpctl once per test process.
func hpctlBinary(t testing.TB) string {
	t.Helper()
	hpctlOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hpctl-bin")
		if err != nil {
			hpctlErr = err
			return
		}
		hpctlBin = filepath.Join(dir, "hpctl")
		cmd := exec.Command("go", "build", "-o", hpctlBin, "./cmd/hpctl")
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			hpctlErr, hpctlBin = err, string(out)
		}
	})
	if hpctlErr != nil {
		t.Fatalf("build hpctl: %v\n%s", hpctlErr, hpctlBin)
	}
	return hpctlBin
}

func startAgentProcess(t testing.TB, args ...string) *agentProcess {
	t.Helper()
	bin := hardphoneBinary(t)
	logPath := filepath.Join(t.TempDir(), "hardphone-run.log")
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"run", "--log-format", "json", "--log-level", "debug"}, args...)...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start hardphone run: %v", err)
	}
	p := &agentProcess{cmd: cmd, done: make(chan error, 1), log: logPath}
	go func() { p.done <- cmd.Wait(); lf.Close() }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop sends SIGTERM to the PID and waits; SIGKILL after 5 s.
func (p *agentProcess) stop(t testing.TB) error {
	if p.cmd.ProcessState != nil {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return nil // already gone
	}
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(5 * time.Second):
		t.Errorf("hardphone run (pid %d) ignored SIGTERM; killing", p.cmd.Process.Pid)
		if err := p.cmd.Process.Kill(); err != nil {
			t.Logf("kill: %v", err)
		}
		return <-p.done
	}
}

func readFile(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
