package services

import "errors"

// ErrUnsupported is returned off Linux, where there is no /proc to find
// processes in.
var ErrUnsupported = errors.New("services: unsupported on this system")

var errBadName = errors.New("invalid service name")
