package watchdog

import "errors"

// ErrUnsupported is returned on platforms without the Linux watchdog API.
var ErrUnsupported = errors.New("watchdog: unsupported on this platform")
