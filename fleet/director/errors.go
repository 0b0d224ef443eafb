package director

import "errors"

// ErrNotListed is returned when firmware is assigned that the image
// repository does not list.
var ErrNotListed = errors.New("director: the image repository does not list this target")

// ErrDevice is returned when a device cannot be published for: not
// enrolled, or it needs a sealing key it never proved.
var ErrDevice = errors.New("director: device cannot be provisioned")

// ErrConfig is returned for a configuration document that is refused
// (it wraps configdoc.ErrInvalid with the reason).
var ErrConfig = errors.New("director: configuration refused")

// ErrNotFound is returned for a file the device's repository does not
// have.
var ErrNotFound = errors.New("director: no such file")
