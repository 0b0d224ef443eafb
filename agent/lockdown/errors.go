package lockdown

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidPolicy matches every *PolicyError.
	ErrInvalidPolicy = errors.New("invalid lockdown policy")
	// ErrDrift is returned (wrapped in a *DriftError) when the running
	// system does not match the policy.
	ErrDrift = errors.New("system drifted from the lockdown policy")
	// ErrUnsupported is returned off Linux.
	ErrUnsupported = errors.New("lockdown: unsupported on this system")
	// ErrPinholeRefused is returned by OpenPinhole for a peer or port the
	// policy does not allow media with.
	ErrPinholeRefused = errors.New("pinhole refused by policy")
	// ErrListenRefused is returned by the ListenConfig control when a socket
	// would listen where the policy allows none.
	ErrListenRefused = errors.New("listener not allowed by lockdown policy")
)

var (
	errNoRTP  = errors.New("policy has no RTP range")
	errMPTCP  = errors.New("socket is multipath TCP")
	errClosed = errors.New("lockdown closed")
)

// PolicyError is a policy the parser refused, with the line and key that are
// wrong. For a contradiction, OtherLine and OtherKey name the entry it
// contradicts.
type PolicyError struct {
	Line int    // 1-based; 0 when the error is not about one place
	Key  string // dotted key path, e.g. listener[1].port; "" for syntax errors
	Err  error
	// OtherLine and OtherKey name the conflicting entry; zero when none.
	OtherLine int
	OtherKey  string
}

func (e *PolicyError) Error() string {
	msg := e.Err.Error()
	if e.Key != "" {
		msg = e.Key + ": " + msg
	}
	if e.OtherKey != "" {
		if e.OtherLine > 0 {
			msg += fmt.Sprintf(" (see %s, line %d)", e.OtherKey, e.OtherLine)
		} else {
			msg += fmt.Sprintf(" (see %s)", e.OtherKey)
		}
	}
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, msg)
	}
	return msg
}

func (e *PolicyError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrInvalidPolicy) true.
func (e *PolicyError) Is(target error) bool { return target == ErrInvalidPolicy }

// DriftError is the result of a check that found drift. Its Report says
// what; ExitCode gives the command-line exit status for drift, 3.
type DriftError struct {
	Report *Report
}

func (e *DriftError) Error() string {
	if e.Report == nil || len(e.Report.Drift) == 0 {
		return ErrDrift.Error()
	}
	return fmt.Sprintf("%v: %d finding(s), first: %s", ErrDrift, len(e.Report.Drift), e.Report.Drift[0])
}

func (e *DriftError) Unwrap() error { return ErrDrift }

// ExitCode is the exit status `hardphone lockdown check` ends with on drift.
func (e *DriftError) ExitCode() int { return 3 }
