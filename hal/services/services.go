package services

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// Kind is an init system.
type Kind string

// Init systems this package can drive.
const (
	Systemd Kind = "systemd"
	SysV    Kind = "sysvinit"
	BusyBox Kind = "busybox"
	// Unknown means no init system was recognised: nothing can be
	// controlled, and Status says so.
	Unknown Kind = "unknown"
)

// Manager finds and controls services under one root filesystem.
type Manager struct {
	root string // "/" on the device; a staged tree in tests
	kind Kind
	// live says the root is the running system's, so init commands
	// (systemctl, init scripts) reach the running services.
	live bool
	log  *slog.Logger
}

// Option configures a Manager.
type Option func(*Manager) error

// WithRoot works on a root filesystem other than "/": init scripts found
// there are still run to stop services, but systemctl is not (it would talk
// to the host's systemd).
func WithRoot(dir string) Option {
	return func(m *Manager) error {
		if dir == "" {
			return fmt.Errorf("services root: empty path")
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("services root %s: %w", dir, err)
		}
		m.root = abs
		return nil
	}
}

// WithKind skips detection and drives the given init system.
func WithKind(k Kind) Option {
	return func(m *Manager) error {
		switch k {
		case Systemd, SysV, BusyBox, Unknown:
			m.kind = k
			return nil
		}
		return fmt.Errorf("init system %q: want systemd, sysvinit, busybox or unknown", k)
	}
}

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option {
	return func(m *Manager) error {
		if l == nil {
			return fmt.Errorf("services logger: nil")
		}
		m.log = l
		return nil
	}
}

// New returns a Manager for "/" (or the root an option names), detecting
// the init system unless WithKind names one.
func New(opts ...Option) (*Manager, error) {
	m := &Manager{root: "/", log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		if err := o(m); err != nil {
			return nil, err
		}
	}
	m.live = m.root == "/"
	m.log = m.log.With("component", "services")
	if m.kind == "" {
		m.kind = detect(m.root)
	}
	return m, nil
}

// Kind is the init system the Manager drives.
func (m *Manager) Kind() Kind { return m.kind }

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func detect(root string) Kind {
	switch {
	case isDir(filepath.Join(root, "run/systemd/system")):
		// sd_booted(3): this directory exists only when systemd is PID 1.
		return Systemd
	case isDir(filepath.Join(root, "etc/rcS.d")) || isDir(filepath.Join(root, "etc/rc2.d")):
		return SysV
	case exists(filepath.Join(root, "etc/init.d/rcS")):
		return BusyBox
	}
	return Unknown
}

// ValidName checks a service name: it becomes a unit name, a script name and
// a path, so it is [A-Za-z0-9] followed by at most 63 of [A-Za-z0-9_.@-],
// with no "..".
func ValidName(name string) error {
	if len(name) == 0 || len(name) > 64 || strings.Contains(name, "..") {
		return fmt.Errorf("%w: %q", errBadName, name)
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if i > 0 {
			ok = ok || r == '_' || r == '.' || r == '@' || r == '-'
		}
		if !ok {
			return fmt.Errorf("%w: %q", errBadName, name)
		}
	}
	return nil
}

// Process is a running process.
type Process struct {
	PID  int    `json:"pid"`
	Comm string `json:"comm"`
}

// Status is what the Manager knows of one service.
type Status struct {
	Name string `json:"name"`
	// Installed says a unit or init script for it exists.
	Installed bool `json:"installed"`
	// Disabled says init will not start it at boot: masked, no start links,
	// or script renamed. A service that is not installed counts as
	// disabled.
	Disabled bool `json:"disabled"`
	// Running lists processes with one of the service's process names.
	Running []Process `json:"running,omitempty"`
	// Uncontrolled, when not empty, says why the Manager cannot disable or
	// stop it (for example: respawned from /etc/inittab).
	Uncontrolled string `json:"uncontrolled,omitempty"`
}

// Status reports on service name; processes are the process names that show
// it runs (name itself when empty).
func (m *Manager) Status(name string, processes []string) (Status, error) {
	if err := ValidName(name); err != nil {
		return Status{}, err
	}
	if len(processes) == 0 {
		processes = []string{name}
	}
	st := Status{Name: name}
	var err error
	switch m.kind {
	case Systemd:
		st.Installed, st.Disabled, err = m.systemdState(name)
	case SysV:
		st.Installed, st.Disabled, err = m.sysvState(name)
	case BusyBox:
		st.Installed, st.Disabled, err = m.busyboxState(name)
	default:
		st.Disabled = true
		st.Uncontrolled = "no init system recognised under " + m.root
	}
	if err != nil {
		return st, fmt.Errorf("service %s: %w", name, err)
	}
	if line, ok := m.inittabEntry(name, processes); ok {
		st.Installed = true
		st.Disabled = false
		st.Uncontrolled = fmt.Sprintf("started from %s line %d; only a new image can remove it", filepath.Join(m.root, "etc/inittab"), line)
	}
	st.Running, err = FindProcesses(processes)
	if err != nil {
		return st, fmt.Errorf("service %s: %w", name, err)
	}
	return st, nil
}

// Disable keeps init from starting name at boot and reports whether it
// changed anything. Disabling a service that is not installed changes
// nothing.
func (m *Manager) Disable(name string) (bool, error) {
	if err := ValidName(name); err != nil {
		return false, err
	}
	var changed bool
	var err error
	switch m.kind {
	case Systemd:
		changed, err = m.systemdDisable(name)
	case SysV:
		changed, err = m.sysvDisable(name)
	case BusyBox:
		changed, err = m.busyboxDisable(name)
	default:
		return false, fmt.Errorf("disable %s: no init system recognised under %s", name, m.root)
	}
	if err != nil {
		return changed, fmt.Errorf("disable %s: %w", name, err)
	}
	if changed {
		m.log.Info("service disabled", "service", name, "init", string(m.kind))
	}
	return changed, nil
}

// Stop asks init to stop name now. It returns nil when the init system has
// no way to stop it (nothing installed); Status tells whether processes
// remain.
func (m *Manager) Stop(name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	var err error
	switch m.kind {
	case Systemd:
		err = m.systemdStop(name)
	case SysV:
		err = m.runScript(filepath.Join(m.root, "etc/init.d", name), "stop")
	case BusyBox:
		var script string
		script, err = m.busyboxScript(name)
		if err == nil && script != "" {
			err = m.runScript(script, "stop")
		}
	default:
		return fmt.Errorf("stop %s: no init system recognised under %s", name, m.root)
	}
	if err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	return nil
}

// inittabEntry finds a line of /etc/inittab (id:runlevels:action:process)
// whose process runs one of the names, and returns its line number.
func (m *Manager) inittabEntry(name string, processes []string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(m.root, "etc/inittab"))
	if err != nil {
		return 0, false
	}
	names := append([]string{name}, processes...)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.SplitN(line, ":", 4)
		if len(f) != 4 {
			continue
		}
		switch f[2] {
		case "respawn", "once", "wait", "boot", "bootwait", "sysinit", "askfirst":
		default:
			continue
		}
		if prog := inittabProgram(f[3]); prog != "" {
			for _, want := range names {
				if filepath.Base(prog) == want {
					return n, true
				}
			}
		}
	}
	return 0, false
}

// inittabProgram returns the program an inittab process field runs,
// skipping "exec" and environment assignments; "-/bin/sh" is BusyBox's
// login-shell marker.
func inittabProgram(field string) string {
	for _, w := range strings.Fields(field) {
		w = strings.TrimPrefix(w, "-")
		if w == "exec" || strings.Contains(w, "=") {
			continue
		}
		return w
	}
	return ""
}
