package services

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// unitDirs are searched in systemd's order of precedence (systemd.unit(5)).
var unitDirs = []string{"etc/systemd/system", "run/systemd/system", "usr/local/lib/systemd/system", "lib/systemd/system", "usr/lib/systemd/system"}

// units returns the unit names for a service: name itself when it has a
// unit suffix, else name.service and, when installed, name.socket, since a
// socket unit would start the service again on the first connection.
func units(name string) []string {
	for _, suf := range []string{".service", ".socket", ".target", ".timer", ".path"} {
		if strings.HasSuffix(name, suf) {
			return []string{name}
		}
	}
	return []string{name + ".service", name + ".socket"}
}

func isMask(p string) bool {
	dst, err := os.Readlink(p)
	return err == nil && dst == "/dev/null"
}

// unitState reports whether unit is installed (a unit file that is not a
// mask exists) and whether it is masked in /etc or /run.
func (m *Manager) unitState(unit string) (installed, masked bool) {
	for _, d := range unitDirs {
		p := filepath.Join(m.root, d, unit)
		if isMask(p) {
			if d == "etc/systemd/system" || d == "run/systemd/system" {
				masked = true
			}
			continue
		}
		if exists(p) {
			installed = true
		}
	}
	return installed, masked
}

func (m *Manager) systemdState(name string) (installed, disabled bool, err error) {
	disabled = true
	for _, u := range units(name) {
		in, masked := m.unitState(u)
		if in {
			installed = true
			if !masked {
				disabled = false
			}
		}
	}
	return installed, disabled, nil
}

// systemdDisable masks every installed unit of name: a symlink to /dev/null
// in /etc/systemd/system, or in /run/systemd/system (until reboot) when /etc
// is read-only. A unit file of the admin's own in /etc cannot be masked.
func (m *Manager) systemdDisable(name string) (bool, error) {
	changed := false
	for _, u := range units(name) {
		in, masked := m.unitState(u)
		if !in || masked {
			continue
		}
		etc := filepath.Join(m.root, "etc/systemd/system", u)
		if exists(etc) {
			return changed, fmt.Errorf("unit %s is a file in /etc/systemd/system, not masking it over", u)
		}
		err := maskAt(etc)
		if errors.Is(err, syscall.EROFS) || errors.Is(err, fs.ErrPermission) {
			m.log.Warn("etc read-only, masking until reboot", "unit", u)
			err = maskAt(filepath.Join(m.root, "run/systemd/system", u))
		}
		if err != nil {
			return changed, fmt.Errorf("mask %s: %w", u, err)
		}
		changed = true
	}
	if changed && m.live {
		if err := systemctl("daemon-reload"); err != nil {
			return changed, err
		}
	}
	return changed, nil
}

func maskAt(p string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.Symlink("/dev/null", p)
}

func (m *Manager) systemdStop(name string) error {
	if !m.live {
		// systemctl would talk to the host's systemd, not the staged root's.
		return nil
	}
	var us []string
	for _, u := range units(name) {
		if in, _ := m.unitState(u); in || isMask(filepath.Join(m.root, "etc/systemd/system", u)) {
			us = append(us, u)
		}
	}
	if len(us) == 0 {
		return nil
	}
	return systemctl(append([]string{"stop"}, us...)...)
}

func systemctl(args ...string) error {
	bin, err := exec.LookPath("systemctl")
	if err != nil {
		return fmt.Errorf("systemctl %s: %w", strings.Join(args, " "), err)
	}
	cmd := exec.Command(bin, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("systemctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
