package console

import (
	"errors"
	"fmt"
	"time"

	"github.com/hardphone/hardphone/fleet/console/consoleapi"
)

// ErrConfig: New was given an incomplete or contradictory configuration.
var ErrConfig = errors.New("console configuration")

// refusal is a request the console answers with an error. msg goes to the
// client; reason (snake_case) to the audit log; cause only to the log.
type refusal struct {
	code   consoleapi.Code
	msg    string
	reason string
	retry  time.Duration
	cause  error
	// audited: the handler recorded this refusal in the audit log
	// itself (a failed login is admin.login, not access.denied).
	audited bool
}

func (r *refusal) Error() string {
	if r.cause != nil {
		return fmt.Sprintf("%s: %s: %v", r.code, r.msg, r.cause)
	}
	return fmt.Sprintf("%s: %s", r.code, r.msg)
}

func (r *refusal) Unwrap() error { return r.cause }

func refuse(code consoleapi.Code, reason, format string, args ...any) *refusal {
	return &refusal{code: code, reason: reason, msg: fmt.Sprintf(format, args...)}
}

// internal is a refusal for a failure of ours: the client learns nothing.
func internal(what string, err error) *refusal {
	return &refusal{code: consoleapi.CodeInternal, reason: "internal", msg: what + ": internal error", cause: err}
}

// unavailable: a store or the audit log did not answer; nothing changed.
func unavailable(what string, err error) *refusal {
	return &refusal{code: consoleapi.CodeUnavailable, reason: "unavailable", msg: what + ": try again later", cause: err}
}
