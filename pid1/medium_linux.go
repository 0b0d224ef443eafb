package pid1

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hardphone/hardphone/system"
)

// An update medium (a USB stick on a phone, a second virtio disk in QEMU)
// holding a bundle is installed once per distinct bundle file, and only by a
// boot that has been marked good: a slot on trial never overwrites the only
// other slot. The bundle is verified by the updater like any other; the
// medium is mounted read-only, nosuid, nodev, noexec.

// mediumDoneFile remembers the sha256 of the last bundle taken from a
// medium, so a stick left in does not install again on every boot.
const mediumDoneFile = "medium-installed"

// installOutcome is the end of one install from a medium.
type installOutcome struct {
	result *system.InstallResult // nil unless installed
	err    error                 // the updater's refusal or failure
	skip   string                // why nothing was tried
}

// maybeInstallFromMedium starts one install attempt per boot in the
// background when the board has a medium and it is present.
func (s *supervisor) maybeInstallFromMedium() {
	m := s.b.UpdateMedium
	if m == nil || s.mediumTried {
		return
	}
	s.mediumTried = true
	if system.WaitDevice(m.Device, mediumWait) != nil {
		return
	}
	s.installing = true
	go func() { s.installDone <- s.installFromMedium() }()
}

func (s *supervisor) installFromMedium() installOutcome {
	m := s.b.UpdateMedium
	if err := mount(m.Device, m.FSType, m.Mountpoint, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return installOutcome{skip: err.Error()}
	}
	defer func() {
		if err := unix.Unmount(m.Mountpoint, 0); err != nil {
			s.log.Warn("unmount update medium", "error", err)
		}
	}()
	return s.installBundle(filepath.Join(m.Mountpoint, m.Bundle))
}

// installBundle asks the agent to install the bundle at path unless a
// bundle with the same content was taken from a medium before.
func (s *supervisor) installBundle(path string) installOutcome {
	sum, err := fileSHA256(path)
	if err != nil {
		return installOutcome{skip: err.Error()}
	}
	done := filepath.Join(s.b.StateDir, mediumDoneFile)
	if b, err := os.ReadFile(done); err == nil && strings.TrimSpace(string(b)) == sum {
		return installOutcome{skip: "bundle " + sum[:16] + " already taken from a medium"}
	}
	s.mk.print("install-start", "bundle", path, "sha256", sum[:16])
	var res *system.InstallResult
	err = s.ask(installMax, func(ctx context.Context) (err error) {
		res, err = s.agent.UpdateInstall(ctx, path, false)
		return err
	})
	// Remember the bundle whatever the verdict: a refused bundle is refused
	// again next time, and an installed one must not be installed twice.
	if werr := writeSynced(done, sum+"\n"); werr != nil {
		s.log.Warn("record medium bundle", "error", werr)
	}
	if err != nil {
		return installOutcome{err: err}
	}
	return installOutcome{result: res}
}

// onInstalled prints the outcome and reports whether to reboot into the
// new slot.
func (s *supervisor) onInstalled(o installOutcome) bool {
	switch {
	case o.skip != "":
		s.mk.print("medium-skip", "reason", o.skip)
		return false
	case o.err != nil:
		s.mk.print("install-rejected", "error", o.err)
		var us *system.UpdateStatus
		if err := s.ask(controlTimeout, func(ctx context.Context) (err error) {
			us, err = s.agent.UpdateStatus(ctx)
			return err
		}); err == nil {
			s.printStatus(us)
		}
		return false
	}
	s.mk.print("installed", "slot", o.result.Slot, "version", o.result.Version, "security_version", o.result.SecurityVersion, "bytes", o.result.Bytes)
	return true
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func writeSynced(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(content)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	return errors.Join(err, f.Close())
}
