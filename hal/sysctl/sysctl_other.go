//go:build !linux

package sysctl

// Get returns ErrUnsupported: /proc/sys is Linux only.
func (f *FS) Get(key string) (string, error) { return "", ErrUnsupported }

// Set returns ErrUnsupported: /proc/sys is Linux only.
func (f *FS) Set(key, value string) error { return ErrUnsupported }
