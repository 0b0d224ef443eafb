package bundle

import (
	"errors"
	"fmt"
)

// ErrBadSignature is returned when the bundle is not proven to come from a
// signer the keyring trusts: the CMS does not verify, the signer chain does
// not reach a keyring anchor, a certificate is expired or not yet valid, or
// a certificate's purpose does not allow signing bundles.
var ErrBadSignature = errors.New("bundle signature not trusted")

// ErrCorrupt is returned when bytes of the bundle do not match what the
// signature binds: the payload digest, the verity tree or a payload block,
// an image's size or sha256; also for a truncated bundle or a trailer that
// does not describe the file.
var ErrCorrupt = errors.New("bundle corrupt")

// ErrUnsupported is returned for a valid bundle that uses something this
// reader does not do: crypt bundles, hooks, handlers, casync.
var ErrUnsupported = errors.New("bundle feature not supported")

// ManifestError names the manifest line and key that are wrong.
type ManifestError struct {
	Line  int    // 1-based; 0 when the error is not about one line
	Group string // may be empty
	Key   string // may be empty
	Err   error
}

func (e *ManifestError) Error() string {
	switch {
	case e.Line > 0 && e.Key != "":
		return fmt.Sprintf("manifest line %d [%s] %s: %v", e.Line, e.Group, e.Key, e.Err)
	case e.Line > 0:
		return fmt.Sprintf("manifest line %d: %v", e.Line, e.Err)
	case e.Key != "":
		return fmt.Sprintf("manifest [%s] %s: %v", e.Group, e.Key, e.Err)
	case e.Group != "":
		return fmt.Sprintf("manifest [%s]: %v", e.Group, e.Err)
	}
	return fmt.Sprintf("manifest: %v", e.Err)
}

func (e *ManifestError) Unwrap() error { return e.Err }

var (
	errSyntax      = errors.New("syntax error")
	errUnknown     = errors.New("unknown group or key")
	errDuplicate   = errors.New("given twice")
	errMissing     = errors.New("required but missing")
	errBadValue    = errors.New("invalid value")
	errTrailer     = errors.New("bad signature trailer")
	errNotSquashfs = errors.New("payload is not a squashfs image")
)
