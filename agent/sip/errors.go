package sip

import (
	"errors"
	"fmt"
)

// ErrNotRegistered is returned when a call is placed on an account without a
// live registration flow.
var ErrNotRegistered = errors.New("account not registered")

// ErrInsecureMedia is returned when a call could not be set up with SRTP.
var ErrInsecureMedia = errors.New("call refused: media not secure")

// ResponseError is a final non-2xx SIP response to one of our requests.
type ResponseError struct {
	Method string
	Code   int
	Reason string
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("%s answered %d %s", e.Method, e.Code, e.Reason)
}
