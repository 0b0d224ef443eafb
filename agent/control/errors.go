package control

import (
	"errors"
	"fmt"
)

// Code classifies an error answer so a client can branch on it.
type Code string

// Error codes.
const (
	CodeBadRequest     Code = "bad_request"     // malformed, oversized or incomplete request
	CodeVersion        Code = "version"         // protocol version not spoken here
	CodeUnknownCommand Code = "unknown_command" // no such command
	CodeNotFound       Code = "not_found"       // no such account or call
	CodeUnavailable    Code = "unavailable"     // the agent runs without that part (no updater)
	CodeForbidden      Code = "forbidden"       // refused by policy
	CodeFailed         Code = "failed"          // the command ran and failed
)

// Sentinels a handler returns (wrapped) to choose the code, and a client
// tests with errors.Is.
var (
	ErrBadRequest  = errors.New("bad request")
	ErrNotFound    = errors.New("not found")
	ErrUnavailable = errors.New("not available in this agent")
	ErrForbidden   = errors.New("forbidden")
	// ErrNoAgent: nothing listens on the socket (no agent running).
	ErrNoAgent = errors.New("no agent is running on the control socket")
	// ErrUnsupported: control sockets need Linux (SO_PEERCRED).
	ErrUnsupported = errors.New("control socket not supported on this platform")
)

// Error is an error answer.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%s (%s)", e.Message, e.Code) }

// Is maps a code back to its sentinel, so errors.Is(err, ErrNotFound)
// works on the client side too.
func (e *Error) Is(target error) bool {
	switch e.Code {
	case CodeBadRequest, CodeVersion, CodeUnknownCommand:
		return target == ErrBadRequest
	case CodeNotFound:
		return target == ErrNotFound
	case CodeUnavailable:
		return target == ErrUnavailable
	case CodeForbidden:
		return target == ErrForbidden
	}
	return false
}

// codeOf classifies a handler's error.
func codeOf(err error) Code {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Code
	case errors.Is(err, ErrBadRequest):
		return CodeBadRequest
	case errors.Is(err, ErrNotFound):
		return CodeNotFound
	case errors.Is(err, ErrUnavailable):
		return CodeUnavailable
	case errors.Is(err, ErrForbidden):
		return CodeForbidden
	}
	return CodeFailed
}
