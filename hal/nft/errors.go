package nft

import "errors"

// ErrUnsupported is returned on systems without nftables (anything but
// Linux).
var ErrUnsupported = errors.New("nftables: unsupported on this system")

// ErrNoTable is returned by pinhole operations when the hardphone table (or
// its pinhole sets) is not there: Apply a Ruleset with RTP ports first.
var ErrNoTable = errors.New("nftables: hardphone table or pinhole set missing")

var (
	errBadRuleset = errors.New("invalid ruleset")
	errBadPinhole = errors.New("invalid pinhole")
)
