package configdoc

import "errors"

// ErrInvalid is returned for a document that does not parse, does not
// compose, or does not validate as a phone config; the message says why.
var ErrInvalid = errors.New("configuration document refused")
