package test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stopGrace is how long a stopped peer gets to exit on SIGTERM before its
// process group is killed.
const stopGrace = 5 * time.Second

// termNudge is how long a stopped peer gets before a second SIGTERM.
const termNudge = 500 * time.Millisecond

// process is a peer program started by a helper. Its stdout and stderr go to
// logPath; t.Cleanup stops it by PID.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	// done is closed once the process has been waited for; waitErr is set
	// before.
	done    chan struct{}
	waitErr error
	// nudge makes stop send a second SIGTERM after termNudge.
	nudge bool
	// stopSignal is what stop sends; SIGTERM when zero. PostgreSQL wants
	// SIGINT: on SIGTERM it waits for every client to disconnect.
	stopSignal syscall.Signal
}

// startProcess starts bin with args in its own process group, logging to
// logPath, and registers a cleanup that stops it.
func startProcess(t testing.TB, logPath, dir, bin string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	return startCmd(t, logPath, cmd)
}

// startProcessAs is startProcess running the program as another user (cred
// nil: as ourselves), for servers that refuse to run as root.
func startProcessAs(t testing.TB, cred *syscall.Credential, logPath, dir, bin string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	// Go sets the parent-death signal after switching user, so it survives
	// the switch.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	return startCmd(t, logPath, cmd)
}

// startCmd starts a prepared command (its Env, or SysProcAttr.Credential
// to drop to another user, already set) like startProcess does.
func startCmd(t testing.TB, logPath string, cmd *exec.Cmd) *process {
	t.Helper()
	bin, args := cmd.Path, cmd.Args[1:]
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// A group of its own lets cleanup kill the peer's children (Kamailio
	// forks workers) by the PID we started.
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s %s: %v", bin, strings.Join(args, " "), err)
	}
	p := &process{name: bin, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// pid is the process ID, which is also its process group ID.
func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended, and how.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// stop sends SIGTERM, or stopSignal (twice when nudge is set: baresip
// exits at once on the second, while on the first it waits for pending
// transactions), then after stopGrace kills the whole process group.
func (p *process) stop(t testing.TB) {
	pid := p.pid()
	sig := p.stopSignal
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	deadline := time.After(stopGrace)
	waits := []<-chan time.Time{deadline}
	if p.nudge {
		waits = []<-chan time.Time{time.After(termNudge), deadline}
	}
	for _, wait := range waits {
		if ok, _ := p.exited(); ok {
			break
		}
		// ESRCH only means it is already gone.
		_ = syscall.Kill(pid, sig)
		select {
		case <-p.done:
		case <-wait:
		}
	}
	if ok, _ := p.exited(); !ok {
		t.Logf("%s pid %d still running %v after %v; killing its process group:\n%s\n--- log tail ---\n%s",
			p.name, pid, stopGrace, sig, groupMembers(pid), p.logTail(3000))
	}
	// Children the leader left behind are still in its group.
	_ = syscall.Kill(-pid, syscall.SIGKILL) // ESRCH when the group is empty
	<-p.done
}

// logTail returns the last n bytes of the process log, for failure messages.
func (p *process) logTail(n int) string { return fileTail(p.logPath, n) }

func fileTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// permanentError stops waitFor polling: waiting longer cannot help.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }

// errExited is returned by a readiness probe whose process has died.
var errExited = errors.New("process exited")

// waitFor polls probe every 20 ms until it returns nil, the process exits or
// the timeout passes, and returns the last probe error.
func (p *process) waitFor(timeout time.Duration, probe func() error) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := probe()
		if err == nil {
			return nil
		}
		var perm permanentError
		if errors.As(err, &perm) {
			return perm.err
		}
		if ok, werr := p.exited(); ok {
			return fmt.Errorf("%w (%v) while waiting: %v", errExited, werr, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", timeout, err)
		}
		select {
		case <-tick.C:
		case <-p.done:
		}
	}
}

// freePort returns a port on ip where TCP and UDP ports port..port+n-1 are
// all free. Inside the private namespace only this test binds ports, so the
// check cannot race with strangers.
func freePort(t testing.TB, ip string, n int) int {
	t.Helper()
	for try := 0; try < 200; try++ {
		// Below the ephemeral range (32768+), so outgoing connections of the
		// peers never take it, and below 20000, which tests may hand out
		// to the code under test.
		port := 10000 + rand.IntN(10000)
		if portsFree(ip, port, n) {
			return port
		}
	}
	t.Fatalf("no %d free consecutive ports on %s", n, ip)
	return 0
}

func portsFree(ip string, port, n int) bool {
	var closers []interface{ Close() error }
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		addr := net.JoinHostPort(ip, strconv.Itoa(port+i))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		closers = append(closers, l)
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		closers = append(closers, u)
	}
	return true
}

// groupMembers lists "pid state comm" of the processes in process group
// pgid, from /proc, to tell which of a peer's processes hung.
func groupMembers(pgid int) string {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces.
		s := string(stat)
		end := strings.LastIndexByte(s, ')')
		if end < 0 {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 3 || f[2] != strconv.Itoa(pgid) {
			continue
		}
		wchan, _ := os.ReadFile("/proc/" + e.Name() + "/wchan") // best effort
		fmt.Fprintf(&b, "  %s %s %s wchan=%s\n", e.Name(), f[0], s[strings.IndexByte(s, '(')+1:end], wchan)
	}
	return b.String()
}

// Renice gives every thread of pid the nice level nice (negative: more
// CPU than the builds a shared test machine runs beside it). Audio tests
// give it to both ends of a call alike, so a scheduling stall of either
// does not pass for a property of the other, and threads the process
// starts later inherit it from the thread that starts them.
func Renice(t testing.TB, pid, nice int) {
	t.Helper()
	renice(t, pid, nice)
}
