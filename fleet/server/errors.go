package server

import "errors"

// ErrConfig is returned by New for a configuration that is missing a part
// or contradicts itself.
var ErrConfig = errors.New("fleet server configuration")
