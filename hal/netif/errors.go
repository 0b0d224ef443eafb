package netif

import "errors"

// ErrUnsupported is returned on platforms without rtnetlink.
var ErrUnsupported = errors.New("netif: rtnetlink is unsupported on this platform")

var errShortReply = errors.New("netif: short netlink reply")
