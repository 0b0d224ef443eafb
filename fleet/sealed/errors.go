package sealed

import "errors"

// ErrFormat is returned by Parse for a value that is not a sealed value
// of this format (prefix, encoding, length, version byte, curve point).
var ErrFormat = errors.New("sealed: malformed sealed value")

// ErrOpen is returned when a sealed value does not open: sealed to another
// key (another phone's TPM), for another device, document version or
// name, or altered. Nothing about the plaintext is revealed.
var ErrOpen = errors.New("sealed: value does not open (another key, device, version or name, or altered)")

var errContext = errors.New("sealed: bad context")
