//go:build !linux

package watchdog

func open(path string, secs int) (*Device, error) { return nil, ErrUnsupported }

func (d *Device) pet() error    { return ErrUnsupported }
func (d *Device) disarm() error { return ErrUnsupported }
