package board

import "errors"

// ErrUnknownBoard is returned by Lookup for a name no board file defines.
var ErrUnknownBoard = errors.New("unknown board")

// errInvalid marks a Board that fails Validate.
var errInvalid = errors.New("invalid board description")
