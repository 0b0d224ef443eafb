package sip

import (
	"errors"
	"fmt"

	"github.com/hardphone/hardphone/agent/dialplan"
)

// ErrNotRegistered is returned when a call is placed on an account without a
// live registration flow.
var ErrNotRegistered = errors.New("account not registered")

// ErrInsecureMedia is returned when a call could not be set up with SRTP.
var ErrInsecureMedia = errors.New("call refused: media not secure")

// ErrChallengeRefused is wrapped by the refusal of a digest challenge that
// the account does not answer: another realm than the registrar's, no
// qop=auth, or one that did not arrive over the registrar's TLS flow. The
// request it challenged fails with it (Dial returns it).
var ErrChallengeRefused = errors.New("digest challenge refused")

// ErrCallLimit is returned by Dial when the account or the phone is at its
// concurrent-call cap.
var ErrCallLimit = errors.New("call limit reached")

// ErrDialRefused: the account's dialling policy refused an outbound call
// (a number not allowed, international or premium-rate, outside the
// allowed hours, or over a cap). It is dialplan.ErrRefused.
var ErrDialRefused = dialplan.ErrRefused

// ErrNoCall is returned by FindCall for a call that does not exist.
var ErrNoCall = errors.New("no such call")

// ErrAmbiguousCall is returned by FindCall for a Call-ID that two dialogs
// share (name the dialog), or a malformed dialog.
var ErrAmbiguousCall = errors.New("call reference is ambiguous or malformed")

// ResponseError is a final non-2xx SIP response to one of our requests.
type ResponseError struct {
	Method string
	Code   int
	Reason string
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("%s answered %d %s", e.Method, e.Code, e.Reason)
}
