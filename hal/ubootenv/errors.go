package ubootenv

import "errors"

// ErrNoValidCopy is returned when no copy of the environment has a matching
// CRC: the block was never written, or every copy is damaged. The caller must
// not fill in values of its own; U-Boot would boot its built-in default.
var ErrNoValidCopy = errors.New("no environment copy with a valid CRC")

// ErrTooLarge is returned when the variables do not fit into the block.
var ErrTooLarge = errors.New("environment does not fit the block")

// ErrUnsupported is returned on platforms without the device access this
// package needs.
var ErrUnsupported = errors.New("ubootenv: unsupported on this platform")

var (
	errBadName      = errors.New("invalid variable name")
	errBadValue     = errors.New("invalid variable value")
	errUnterminated = errors.New("environment data is not terminated")
	errShortBlock   = errors.New("block too small")
	errBadConfig    = errors.New("invalid environment config")
)
