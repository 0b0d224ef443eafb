package kmod

import "errors"

// ErrUnsupported is returned on platforms without finit_module(2).
var ErrUnsupported = errors.New("kmod: loading kernel modules is unsupported on this platform")
