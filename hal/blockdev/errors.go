package blockdev

import "errors"

// ErrNoSpace is returned by Write when the data would run past the end of
// the slot.
var ErrNoSpace = errors.New("write past the end of the slot")

var (
	errNotSlot = errors.New("not a regular file or block device")
	errClosed  = errors.New("slot writer already finished")
)
