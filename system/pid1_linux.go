package system

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hardphone/hardphone/board"
	"github.com/hardphone/hardphone/hal/kmod"
	"github.com/hardphone/hardphone/hal/netif"
	"github.com/hardphone/hardphone/hal/watchdog"
)

// LoadModule loads NAME.ko (or a compressed NAME.ko.*) of m from dir, where
// the image builder put the board's modules. finit_module does not resolve
// dependencies: the board lists modules in load order.
func LoadModule(dir string, m board.Module) error {
	files, err := filepath.Glob(filepath.Join(dir, m.Name+".ko*"))
	if err != nil || len(files) != 1 {
		return fmt.Errorf("module %s: want one file %s/%s.ko*, found %d", m.Name, dir, m.Name, len(files))
	}
	return kmod.Load(files[0], m.Params)
}

// Network brings up loopback and the board's interface with its static
// address and default route, waiting up to wait for the NIC to register.
func Network(n *board.Network, wait time.Duration) error {
	if err := netif.Up("lo"); err != nil {
		return err
	}
	// The NIC's driver registers the interface while its module loads; a
	// short wait covers a late probe.
	deadline := time.Now().Add(wait)
	for {
		err := netif.Up(n.Interface)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := netif.AddAddress(n.Interface, n.Address); err != nil {
		return err
	}
	return netif.AddDefaultRoute(n.Interface, n.Gateway)
}

// WaitDevice waits for a device node devtmpfs creates once its driver has
// probed.
func WaitDevice(path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := os.Stat(path)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("device %s did not appear within %v: %w", path, timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// OpenWatchdog arms the board's watchdog, waiting up to wait for its
// device; nil when the board has none.
func OpenWatchdog(b *board.Board, wait time.Duration) (*watchdog.Device, error) {
	if b == nil || b.Watchdog == nil {
		return nil, nil
	}
	if err := WaitDevice(b.Watchdog.Device, wait); err != nil {
		return nil, err
	}
	return watchdog.Open(b.Watchdog.Device, b.Watchdog.Timeout)
}
