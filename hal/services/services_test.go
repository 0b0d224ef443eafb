//go:build linux

package services

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, root, rel, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func symlink(t *testing.T, root, rel, target string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// daemon starts a copy of sleep under a unique name, as a stand-in for a
// service's daemon, writes its PID to pidfile and stops it in cleanup.
func daemon(t *testing.T, pidfile string) (name string, cmd *exec.Cmd, done chan struct{}) {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatalf("no sleep program: %v", err)
	}
	name = fmt.Sprintf("hpsvc%d", rand.IntN(1e6))
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(bin, "300")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	done = make(chan struct{})
	go func() {
		// The exit status is the kill we sent.
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		// Already gone when the test's stop worked.
		_ = cmd.Process.Kill()
		<-done
	})
	if err := os.WriteFile(pidfile, []byte(fmt.Sprint(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	return name, cmd, done
}

// stopScript is an init script whose stop kills the PID in pidfile.
func stopScript(pidfile string) string {
	return fmt.Sprintf("#!/bin/sh\ncase \"$1\" in stop) kill $(cat %s) ;; esac\n", pidfile)
}

func waitGone(t *testing.T, done chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("daemon still running 10 s after stop")
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"dropbear", true}, {"ssh.service", true}, {"getty@tty1", true}, {"avahi-daemon", true},
		{"", false}, {"../etc/passwd", false}, {"a/b", false}, {"-rf", false}, {".hidden", false},
		{"a..b", false}, {"a b", false}, {strings.Repeat("a", 65), false},
	}
	for _, tt := range tests {
		if err := ValidName(tt.name); (err == nil) != tt.ok {
			t.Errorf("ValidName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name  string
		files []string
		want  Kind
	}{
		{"systemd", []string{"run/systemd/system/.keep", "etc/rc2.d/.keep"}, Systemd},
		{"sysv", []string{"etc/rc2.d/.keep", "etc/init.d/rcS"}, SysV},
		{"busybox", []string{"etc/init.d/rcS"}, BusyBox},
		{"none", nil, Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for _, f := range tt.files {
				write(t, root, f, "", 0o644)
			}
			m, err := New(WithRoot(root))
			if err != nil || m.Kind() != tt.want {
				t.Fatalf("New(WithRoot).Kind() = %v, %v, want %v", m.Kind(), err, tt.want)
			}
		})
	}
}

func TestSystemdMask(t *testing.T) {
	root := t.TempDir()
	write(t, root, "run/systemd/system/.keep", "", 0o644)
	write(t, root, "lib/systemd/system/telnetd.service", "[Service]\n", 0o644)
	write(t, root, "lib/systemd/system/telnetd.socket", "[Socket]\n", 0o644)
	write(t, root, "etc/systemd/system/custom.service", "[Service]\n", 0o644)
	m, err := New(WithRoot(root))
	if err != nil {
		t.Fatal(err)
	}
	st, err := m.Status("telnetd", nil)
	if err != nil || !st.Installed || st.Disabled {
		t.Fatalf("Status(telnetd) = %+v, %v, want installed and enabled", st, err)
	}
	if changed, err := m.Disable("telnetd"); err != nil || !changed {
		t.Fatalf("Disable(telnetd) = %v, %v, want true, nil", changed, err)
	}
	for _, u := range []string{"telnetd.service", "telnetd.socket"} {
		if dst, err := os.Readlink(filepath.Join(root, "etc/systemd/system", u)); err != nil || dst != "/dev/null" {
			t.Errorf("mask of %s = %q, %v, want a link to /dev/null", u, dst, err)
		}
	}
	if st, err := m.Status("telnetd", nil); err != nil || !st.Disabled {
		t.Errorf("Status(telnetd) after Disable = %+v, %v, want disabled", st, err)
	}
	if changed, err := m.Disable("telnetd"); err != nil || changed {
		t.Errorf("second Disable(telnetd) = %v, %v, want false, nil", changed, err)
	}
	if changed, err := m.Disable("absent"); err != nil || changed {
		t.Errorf("Disable(absent) = %v, %v, want false, nil", changed, err)
	}
	if _, err := m.Disable("custom"); err == nil {
		t.Errorf("Disable(custom) = nil, want an error: an admin's unit file in /etc is not masked over")
	}
	if err := m.Stop("telnetd"); err != nil {
		t.Errorf("Stop(telnetd) on a staged root = %v, want nil (no systemctl)", err)
	}
}

func TestSysVDisableAndStop(t *testing.T) {
	root := t.TempDir()
	write(t, root, "etc/rcS.d/.keep", "", 0o644)
	pidfile := filepath.Join(t.TempDir(), "pid")
	name, _, done := daemon(t, pidfile)
	write(t, root, "etc/init.d/"+name, stopScript(pidfile), 0o755)
	symlink(t, root, "etc/rc2.d/S01"+name, "../init.d/"+name)
	symlink(t, root, "etc/rc3.d/S01"+name, "../init.d/"+name)
	symlink(t, root, "etc/rc0.d/K01"+name, "../init.d/"+name)
	m, err := New(WithRoot(root))
	if err != nil || m.Kind() != SysV {
		t.Fatalf("New() = %v, %v, want sysvinit", m.Kind(), err)
	}
	st, err := m.Status(name, nil)
	if err != nil || !st.Installed || st.Disabled || len(st.Running) != 1 {
		t.Fatalf("Status() = %+v, %v, want installed, enabled, one process", st, err)
	}
	if changed, err := m.Disable(name); err != nil || !changed {
		t.Fatalf("Disable() = %v, %v, want true, nil", changed, err)
	}
	for _, l := range []string{"etc/rc2.d/K01" + name, "etc/rc3.d/K01" + name} {
		if !exists(filepath.Join(root, l)) {
			t.Errorf("Disable() left no %s", l)
		}
	}
	if err := m.Stop(name); err != nil {
		t.Fatalf("Stop() = %v", err)
	}
	waitGone(t, done)
	if st, err := m.Status(name, nil); err != nil || !st.Disabled || len(st.Running) != 0 {
		t.Errorf("Status() after stop = %+v, %v, want disabled, not running", st, err)
	}
	if changed, err := m.Disable(name); err != nil || changed {
		t.Errorf("second Disable() = %v, %v, want false, nil", changed, err)
	}
}

func TestBusyBoxDisableAndStop(t *testing.T) {
	root := t.TempDir()
	write(t, root, "etc/init.d/rcS", "#!/bin/sh\n", 0o755)
	pidfile := filepath.Join(t.TempDir(), "pid")
	name, _, done := daemon(t, pidfile)
	write(t, root, "etc/init.d/S50"+name, stopScript(pidfile), 0o755)
	m, err := New(WithRoot(root))
	if err != nil || m.Kind() != BusyBox {
		t.Fatalf("New() = %v, %v, want busybox", m.Kind(), err)
	}
	if changed, err := m.Disable(name); err != nil || !changed {
		t.Fatalf("Disable() = %v, %v, want true, nil", changed, err)
	}
	st, err := os.Stat(filepath.Join(root, "etc/init.d/disabled-S50"+name))
	if err != nil || st.Mode().Perm()&0o111 != 0 {
		t.Fatalf("disabled script = %v, %v, want it renamed and not executable", st, err)
	}
	// The renamed, non-executable script still stops the daemon.
	if err := m.Stop(name); err != nil {
		t.Fatalf("Stop() = %v", err)
	}
	waitGone(t, done)
	if st, err := m.Status(name, nil); err != nil || !st.Installed || !st.Disabled || len(st.Running) != 0 {
		t.Errorf("Status() = %+v, %v, want installed, disabled, not running", st, err)
	}
}

func TestInittabUncontrolled(t *testing.T) {
	root := t.TempDir()
	write(t, root, "etc/init.d/rcS", "#!/bin/sh\n", 0o755)
	write(t, root, "etc/inittab", "# comment\n::sysinit:/etc/init.d/rcS\nconsole::respawn:/usr/sbin/telnetd -F -l /bin/login\n::respawn:-/bin/sh\n", 0o644)
	m, err := New(WithRoot(root))
	if err != nil {
		t.Fatal(err)
	}
	st, err := m.Status("telnetd", nil)
	if err != nil || !strings.Contains(st.Uncontrolled, "line 3") || st.Disabled {
		t.Fatalf("Status(telnetd) = %+v, %v, want uncontrolled at inittab line 3", st, err)
	}
	if st, err := m.Status("sh", nil); err != nil || st.Uncontrolled == "" {
		t.Errorf("Status(sh) = %+v, %v, want the -/bin/sh entry found", st, err)
	}
	if st, err := m.Status("dropbear", nil); err != nil || st.Uncontrolled != "" {
		t.Errorf("Status(dropbear) = %+v, %v, want controllable", st, err)
	}
}

func TestUnknownInit(t *testing.T) {
	m, err := New(WithRoot(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if st, err := m.Status("telnetd", nil); err != nil || st.Uncontrolled == "" {
		t.Errorf("Status() = %+v, %v, want uncontrolled", st, err)
	}
	if _, err := m.Disable("telnetd"); err == nil {
		t.Errorf("Disable() = nil, want an error without an init system")
	}
	if _, err := m.Status("../x", nil); !errors.Is(err, errBadName) {
		t.Errorf("Status(../x) = %v, want errBadName", err)
	}
}
