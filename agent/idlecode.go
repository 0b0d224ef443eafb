package agent

import (
	"time"

	"github.com/hardphone/hardphone/agent/control"
	"github.com/hardphone/hardphone/internal/resident"
)

// WithCodeRelease makes the agent give its executable's code pages back to
// the kernel when it has been quiet for a quiet period (resident.Releaser:
// no account event, call command or fleet check-in in the period, and
// pages faulted in since the last release), never while a call is up. Off
// unless given (a one-shot command exits instead).
func WithCodeRelease(quiet time.Duration) Option {
	return func(a *Agent) error {
		r, err := resident.NewReleaser(quiet, a.callsUp, a.log)
		if err != nil {
			return err
		}
		a.code = r
		return nil
	}
}

// active tells the code releaser that something ran.
func (a *Agent) active() {
	if a.code != nil {
		a.code.Active()
	}
}

// codeStatus is the releases so far, for the status (nil: off).
func (a *Agent) codeStatus() *control.CodeRelease {
	if a.code == nil {
		return nil
	}
	st := a.code.Status()
	s := &control.CodeRelease{QuietSeconds: int(st.Quiet / time.Second), Count: st.Count,
		BeforeKiB: st.Result.BeforeKiB, AfterKiB: st.Result.AfterKiB}
	if st.Count > 0 {
		s.Last = st.Last.UTC()
	}
	if st.Err != nil {
		s.Error = st.Err.Error()
	}
	return s
}
