package alert

import "errors"

// ErrRefused is returned when the receiver answered but did not take the
// finding (a webhook's non-2xx status, a collector that closed the
// connection).
var ErrRefused = errors.New("alert refused by the receiver")
