package sysctl

import "errors"

var (
	// ErrUnsupported is returned off Linux.
	ErrUnsupported = errors.New("sysctl: unsupported on this system")
	// ErrNotFound means this kernel has no such parameter.
	ErrNotFound = errors.New("sysctl: no such parameter")
	// ErrReadOnly means the parameter cannot be written here: read-only
	// /proc/sys (a container, a board that forbids it) or no permission.
	ErrReadOnly = errors.New("sysctl: parameter not writable")

	errBadKey   = errors.New("invalid sysctl key")
	errBadValue = errors.New("invalid sysctl value")
)
