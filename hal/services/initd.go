package services

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// scriptTimeout bounds one init script run; a script that hangs must not
// hang the lockdown.
const scriptTimeout = 30 * time.Second

// rcLinks returns the rc.d links of a sysvinit service (/etc/rc?.d/[SK]NNname).
func (m *Manager) rcLinks(name string, prefix byte) ([]string, error) {
	var out []string
	for _, lvl := range []string{"S", "0", "1", "2", "3", "4", "5", "6"} {
		dir := filepath.Join(m.root, "etc", "rc"+lvl+".d")
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			n := e.Name()
			if len(n) == 3+len(name) && n[0] == prefix && isDigit(n[1]) && isDigit(n[2]) && n[3:] == name {
				out = append(out, filepath.Join(dir, n))
			}
		}
	}
	return out, nil
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

func (m *Manager) sysvState(name string) (installed, disabled bool, err error) {
	installed = exists(filepath.Join(m.root, "etc/init.d", name))
	starts, err := m.rcLinks(name, 'S')
	if err != nil {
		return false, false, err
	}
	return installed || len(starts) > 0, len(starts) == 0, nil
}

// sysvDisable renames every start link SNNname to KNNname, as update-rc.d
// disable does, so no runlevel starts it.
func (m *Manager) sysvDisable(name string) (bool, error) {
	starts, err := m.rcLinks(name, 'S')
	if err != nil {
		return false, err
	}
	for i, s := range starts {
		k := filepath.Join(filepath.Dir(s), "K"+filepath.Base(s)[1:])
		if err := os.Rename(s, k); err != nil {
			return i > 0, fmt.Errorf("rename %s: %w", s, err)
		}
	}
	return len(starts) > 0, nil
}

// disabledPrefix is put before a BusyBox S??name script: rcS runs
// /etc/init.d/S??*, which the new name no longer matches.
const disabledPrefix = "disabled-"

// busyboxScripts returns the enabled (S??name) and disabled scripts.
func (m *Manager) busyboxScripts(name string) (enabled, disabled []string, err error) {
	dir := filepath.Join(m.root, "etc/init.d")
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("read %s: %w", dir, err)
	}
	for _, e := range ents {
		n := e.Name()
		off := strings.TrimPrefix(n, disabledPrefix)
		if len(off) != 3+len(name) || off[0] != 'S' || !isDigit(off[1]) || !isDigit(off[2]) || off[3:] != name {
			continue
		}
		if off == n {
			enabled = append(enabled, filepath.Join(dir, n))
		} else {
			disabled = append(disabled, filepath.Join(dir, n))
		}
	}
	return enabled, disabled, nil
}

func (m *Manager) busyboxState(name string) (installed, disabled bool, err error) {
	en, dis, err := m.busyboxScripts(name)
	if err != nil {
		return false, false, err
	}
	return len(en)+len(dis) > 0, len(en) == 0, nil
}

// busyboxScript returns the script to run "stop" with, enabled or not.
func (m *Manager) busyboxScript(name string) (string, error) {
	en, dis, err := m.busyboxScripts(name)
	if err != nil {
		return "", err
	}
	if all := append(en, dis...); len(all) > 0 {
		return all[0], nil
	}
	return "", nil
}

// busyboxDisable renames S??name to disabled-S??name and clears its execute
// bits, so neither rcS's glob nor a direct run starts it.
func (m *Manager) busyboxDisable(name string) (bool, error) {
	en, _, err := m.busyboxScripts(name)
	if err != nil {
		return false, err
	}
	for i, s := range en {
		d := filepath.Join(filepath.Dir(s), disabledPrefix+filepath.Base(s))
		if err := os.Rename(s, d); err != nil {
			return i > 0, fmt.Errorf("rename %s: %w", s, err)
		}
		if err := os.Chmod(d, 0o644); err != nil {
			return true, fmt.Errorf("chmod %s: %w", d, err)
		}
	}
	return len(en) > 0, nil
}

// runScript runs an init script with one argument, through /bin/sh so that
// a script whose execute bit was cleared still stops its daemon. A missing
// script is not an error: there is nothing to stop with.
func (m *Manager) runScript(script, arg string) error {
	if _, err := os.Stat(script); err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", script, arg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", script, arg, err, strings.TrimSpace(string(out)))
	}
	m.log.Info("service stopped", "script", script)
	return nil
}
