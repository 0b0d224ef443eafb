package watchdog

import (
	"fmt"
	"os"
	"time"
)

// Device is an armed watchdog. Its methods are not safe for concurrent
// use: one goroutine owns it.
type Device struct {
	f       *os.File
	timeout time.Duration // as the driver set it, whole seconds
}

// Open opens and thereby arms the watchdog at path and asks the driver for
// timeout (rounded up to whole seconds). The driver may pick another value;
// Timeout reports it.
func Open(path string, timeout time.Duration) (*Device, error) {
	if timeout < time.Second {
		return nil, fmt.Errorf("watchdog: timeout %v, want at least 1s", timeout)
	}
	secs := int((timeout + time.Second - 1) / time.Second)
	return open(path, secs)
}

// Timeout is the driver's timeout: the board resets this long after the
// last Pet.
func (d *Device) Timeout() time.Duration { return d.timeout }

// Pet restarts the timer.
func (d *Device) Pet() error { return d.pet() }

// Disarm stops the timer (the magic close: write 'V', then close) for an
// orderly shutdown. A driver built with nowayout keeps running regardless.
func (d *Device) Disarm() error { return d.disarm() }

// Close closes the device without disarming it: the board resets unless
// someone opens and pets it again before the timeout.
func (d *Device) Close() error { return d.f.Close() }
