// Package weekly is a weekly time window in a time zone, written
// "DAYS HH:MM-HH:MM ZONE" ("Mon-Fri 08:00-18:00 Europe/Berlin"): the
// maintenance windows of rollouts (fleet/rollout) and the hours an admin
// role may act in (fleet/adminauth, set with hpfleet's --role-window) are
// read and checked by this one code. It imports nothing of ours; imported
// by fleet/rollout and fleet/adminauth.
package weekly

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid is wrapped by every error of Parse and Validate.
var ErrInvalid = errors.New("invalid time window")

// MaxLen bounds a window's text.
const MaxLen = 128

// Window opens on Days at minute Start of the day and closes at minute End
// (0..1440, in Location); End < Start spans midnight (22:00-06:00), the
// day being the day it opens.
type Window struct {
	Days       []time.Weekday
	Start, End int
	Location   *time.Location
}

var dayNames = []string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

func parseDay(s string) (time.Weekday, bool) {
	i := slices.Index(dayNames, s)
	return time.Weekday(i), i >= 0
}

func parseClock(s string) (int, bool) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, false
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || mm > 59 || hh > 24 || hh == 24 && mm != 0 || hh < 0 || mm < 0 {
		return 0, false
	}
	return hh*60 + mm, true
}

// Parse reads "DAYS HH:MM-HH:MM ZONE": DAYS is a day ("Mon"), a range
// ("Mon-Fri", "Fri-Mon") or a comma list of either ("Sat,Sun"); ZONE an
// IANA time zone name ("Europe/Berlin", "UTC"; not "Local").
func Parse(s string) (Window, error) {
	var w Window
	f := strings.Fields(s)
	if len(s) > MaxLen || len(f) != 3 {
		return w, fmt.Errorf("window %.128q: want \"DAYS HH:MM-HH:MM ZONE\": %w", s, ErrInvalid)
	}
	for _, part := range strings.Split(f[0], ",") {
		a, b, isRange := strings.Cut(part, "-")
		from, ok1 := parseDay(a)
		to, ok2 := from, true
		if isRange {
			to, ok2 = parseDay(b)
		}
		if !ok1 || !ok2 {
			return w, fmt.Errorf("window %q: day %q, want Sun..Sat: %w", s, part, ErrInvalid)
		}
		for d := from; ; d = (d + 1) % 7 {
			if !slices.Contains(w.Days, d) {
				w.Days = append(w.Days, d)
			}
			if d == to {
				break
			}
		}
	}
	a, b, ok := strings.Cut(f[1], "-")
	start, ok1 := parseClock(a)
	end, ok2 := parseClock(b)
	if !ok || !ok1 || !ok2 || start == end || start == 1440 {
		return w, fmt.Errorf("window %q: hours %q, want HH:MM-HH:MM, start != end: %w", s, f[1], ErrInvalid)
	}
	w.Start, w.End = start, end
	loc, err := time.LoadLocation(f[2])
	if err != nil || f[2] == "Local" || f[2] == "" {
		return w, fmt.Errorf("window %q: time zone %q unknown: %w", s, f[2], ErrInvalid)
	}
	w.Location = loc
	return w, nil
}

// Validate checks a window built in code: days, 0 <= Start != End <=
// 1440, a location.
func (w Window) Validate() error {
	if len(w.Days) == 0 || w.Start < 0 || w.Start >= 1440 || w.End < 0 || w.End > 1440 || w.Start == w.End || w.Location == nil ||
		slices.ContainsFunc(w.Days, func(d time.Weekday) bool { return d < time.Sunday || d > time.Saturday }) {
		return fmt.Errorf("window %v %d..%d: want days, 0 <= start != end <= 1440 and a location: %w", w.Days, w.Start, w.End, ErrInvalid)
	}
	return nil
}

// Contains reports whether t falls inside the window (in its zone).
func (w Window) Contains(t time.Time) bool {
	l := t.In(w.Location)
	m := l.Hour()*60 + l.Minute()
	if w.Start < w.End {
		return slices.Contains(w.Days, l.Weekday()) && m >= w.Start && m < w.End
	}
	// Spanning midnight: late on an opening day, or early the day after.
	return slices.Contains(w.Days, l.Weekday()) && m >= w.Start ||
		slices.Contains(w.Days, (l.Weekday()+6)%7) && m < w.End
}
