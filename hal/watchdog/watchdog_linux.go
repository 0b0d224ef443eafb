package watchdog

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

func open(path string, secs int) (*Device, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	fd := int(f.Fd())
	// Linux Documentation/watchdog/watchdog-api.rst: WDIOC_SETTIMEOUT takes
	// seconds and may round; WDIOC_GETTIMEOUT reads back the value in force.
	if err := unix.IoctlSetPointerInt(fd, unix.WDIOC_SETTIMEOUT, secs); err != nil {
		f.Close()
		return nil, fmt.Errorf("watchdog: set timeout %ds on %s: %w", secs, path, err)
	}
	got, err := unix.IoctlGetInt(fd, unix.WDIOC_GETTIMEOUT)
	if err != nil {
		got = secs
	}
	d := &Device{f: f, timeout: time.Duration(got) * time.Second}
	if err := d.pet(); err != nil {
		f.Close()
		return nil, err
	}
	return d, nil
}

func (d *Device) pet() error {
	if err := unix.IoctlWatchdogKeepalive(int(d.f.Fd())); err != nil {
		return fmt.Errorf("watchdog: keepalive: %w", err)
	}
	return nil
}

func (d *Device) disarm() error {
	if _, err := d.f.Write([]byte("V")); err != nil {
		d.f.Close()
		return fmt.Errorf("watchdog: magic close: %w", err)
	}
	return d.f.Close()
}
