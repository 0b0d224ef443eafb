package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hardphone/hardphone/system"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// updateProgress shows install progress: a bar with bytes, percent and
// rate on a terminal, one JSON event per phase change or percent otherwise.
func updateProgress(w io.Writer) (func(system.InstallProgress), func()) {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		var bar *progressbar.ProgressBar
		phase := ""
		return func(p system.InstallProgress) {
				if p.Phase == system.PhaseSwitch || p.Phase == system.PhaseDone {
					// Instant phases: no bar; the result line follows.
					if bar != nil {
						_ = bar.Finish() // only redraws the line
						bar = nil
					}
					phase = p.Phase
					return
				}
				if p.Phase != phase || bar == nil {
					if bar != nil {
						_ = bar.Finish() // only redraws the line
					}
					phase = p.Phase
					bar = progressbar.NewOptions64(max(p.Total, 1), progressbar.OptionSetWriter(w),
						progressbar.OptionShowBytes(true), progressbar.OptionSetDescription(p.Phase),
						progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionShowCount(),
						progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
				}
				_ = bar.Set64(p.Done) // a drawing error does not stop the install
			}, func() {
				if bar != nil {
					_ = bar.Finish() // as above
				}
			}
	}
	enc := json.NewEncoder(w)
	last := system.InstallProgress{}
	return func(p system.InstallProgress) {
		pct := func(q system.InstallProgress) int64 {
			if q.Total <= 0 {
				return 0
			}
			return q.Done * 100 / q.Total
		}
		if p.Phase == last.Phase && pct(p) == pct(last) {
			return
		}
		last = p
		if err := enc.Encode(map[string]any{"event": "progress", "phase": p.Phase, "done": p.Done, "total": p.Total}); err != nil {
			return
		}
	}, func() {}
}

func printUpdateStatus(w io.Writer, st *system.UpdateStatus) {
	fmt.Fprintf(w, "booted slot: %s   boot order: %s   next boot: %s\n", st.BootedSlot, strings.Join(st.BootOrder, " "), st.NextSlot)
	for _, s := range st.Slots {
		left := "unset"
		if s.AttemptsLeft != nil {
			left = fmt.Sprint(*s.AttemptsLeft)
		}
		mark := " "
		if s.Booted {
			mark = "*"
		}
		fmt.Fprintf(w, "%s slot %s (%s): %s, version %q, security version %d, attempts left %s", mark, s.Name, s.Device, s.State, s.Version, s.SecurityVersion, left)
		if s.Assumed {
			fmt.Fprint(w, " (security version assumed: the floor when first recorded)")
		}
		if s.BelowFloor {
			fmt.Fprint(w, ", below the anti-rollback floor")
		}
		if s.InstalledAt != nil {
			fmt.Fprintf(w, ", installed %s", s.InstalledAt.Format(time.RFC3339))
		}
		fmt.Fprintln(w)
	}
	if st.Rollback {
		fmt.Fprintf(w, "ROLLBACK: %s\n", st.RollbackDetail)
	}
	if st.BelowFloor {
		fmt.Fprintf(w, "ROLLBACK ATTACK: %s\n", st.BelowFloorDetail)
	}
	switch {
	case st.BootMarkedGood:
		fmt.Fprintln(w, "this boot: marked good")
	case st.BootConfirmed:
		fmt.Fprintln(w, "this boot: confirmed (runs; not proven until every account registers)")
	}
	if st.PendingReboot {
		fmt.Fprintln(w, "an installed update waits for a reboot")
	}
	if l := st.LastInstall; l != nil {
		fmt.Fprintf(w, "last install: %s into slot %s, %s\n", l.Version, l.Target, l.Outcome)
	}
	weak := ""
	if st.Floor.Weaker {
		weak = " (weaker: no TPM)"
	}
	fmt.Fprintf(w, "anti-rollback floor: %d, kept in %s%s\n", st.Floor.Value, st.Floor.Kind, weak)
}
