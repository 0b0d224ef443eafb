package dialplan

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrRefused is wrapped by every refusal.
var ErrRefused = errors.New("outbound call refused by the dialling policy")

// DefaultPremiumPrefixes are premium-rate and toll-fraud-prone ranges,
// E.164 with the leading '+': the North American 900 and 976 services, the
// UK's 09 and 087/084, German 0900 and 0137, French 08 9, Italian 89 and
// 899, Austria and Switzerland's 0900/0901/0906, and satellite and
// international premium networks (+870/+881/+882/+883). Refused unless an
// allow pattern names them.
var DefaultPremiumPrefixes = []string{
	"+1900", "+1976", "+449", "+4487", "+4484", "+49900", "+49137", "+3389", "+3989", "+39899",
	"+43900", "+43901", "+4190", "+870", "+881", "+882", "+883", "+979",
}

// Policy is an account's dialling policy. The zero value allows every
// national number (same country as Home, or no country code) at any time
// without caps; Parse-like callers apply Defaults first.
type Policy struct {
	// Allow, when not empty, are the only targets that may be called:
	// patterns of digits where 'x' matches one digit and a trailing '*'
	// any rest ("+4930*", "1xx", "110"), or a SIP user or host glob on the
	// whole URI ("sip:*@pbx.example.com").
	Allow []string
	// International allows numbers with another country code than Home.
	International bool
	// Home is the home country code with '+' ("+49"); a number in 00
	// international form is read with it. "" treats every '+' number
	// whose code is not Home as international only when Home is set.
	Home string
	// Premium are refused prefixes (E.164 with '+'), DefaultPremiumPrefixes
	// unless set.
	Premium []string
	// MaxPerHour and MaxPerDay cap calls placed (0: no cap).
	MaxPerHour, MaxPerDay int
	// Hours, when not empty, are the weekly windows calls may be placed
	// in (phone's local time).
	Hours []Window
}

// Defaults is the policy a new account gets: international and premium
// refused, 30 calls an hour, 200 a day.
func Defaults() Policy {
	return Policy{Premium: append([]string(nil), DefaultPremiumPrefixes...), MaxPerHour: 30, MaxPerDay: 200}
}

// Window is a weekly time window: days (Monday=1..Sunday=7) from From to
// To (minutes after midnight, To exclusive; From < To).
type Window struct {
	Days     [8]bool
	From, To int
}

// ParseWindow reads "Mon-Fri 07:00-20:00", "Sat,Sun 09:00-12:30" or
// "Mon-Sun 00:00-24:00".
func ParseWindow(s string) (Window, error) {
	days, span, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok {
		return Window{}, fmt.Errorf("window %q: want \"DAYS HH:MM-HH:MM\"", s)
	}
	var w Window
	names := map[string]int{"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}
	for _, part := range strings.Split(strings.ToLower(days), ",") {
		a, b, rng := strings.Cut(part, "-")
		da, ok1 := names[a]
		db := da
		ok2 := true
		if rng {
			db, ok2 = names[b]
		}
		if !ok1 || !ok2 || db < da {
			return Window{}, fmt.Errorf("window %q: days %q: want Mon..Sun, ranges ascending", s, part)
		}
		for d := da; d <= db; d++ {
			w.Days[d] = true
		}
	}
	from, to, ok := strings.Cut(strings.TrimSpace(span), "-")
	if !ok {
		return Window{}, fmt.Errorf("window %q: want HH:MM-HH:MM", s)
	}
	var err error
	if w.From, err = minutes(from); err != nil {
		return Window{}, fmt.Errorf("window %q: %w", s, err)
	}
	if w.To, err = minutes(to); err != nil {
		return Window{}, fmt.Errorf("window %q: %w", s, err)
	}
	if w.From >= w.To {
		return Window{}, fmt.Errorf("window %q: the end must be after the start (split a window across midnight in two)", s)
	}
	return w, nil
}

func minutes(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 24 || mm < 0 || mm > 59 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf("time %q: want HH:MM from 00:00 to 24:00", s)
	}
	return hh*60 + mm, nil
}

// Contains reports whether t, in its location, falls in the window.
func (w Window) Contains(t time.Time) bool { return w.contains(t) }

func (w Window) contains(t time.Time) bool {
	d := int(t.Weekday())
	if d == 0 {
		d = 7
	}
	m := t.Hour()*60 + t.Minute()
	return w.Days[d] && m >= w.From && m < w.To
}

// Validate checks the policy's values.
func (p Policy) Validate() error {
	if p.Home != "" && !isE164Prefix(p.Home) {
		return fmt.Errorf("home country %q: want +CC", p.Home)
	}
	for _, pre := range p.Premium {
		if !isE164Prefix(pre) {
			return fmt.Errorf("premium prefix %q: want +digits", pre)
		}
	}
	for _, a := range p.Allow {
		if a == "" || len(a) > 128 {
			return fmt.Errorf("allow pattern %q: empty or too long", a)
		}
	}
	if p.MaxPerHour < 0 || p.MaxPerDay < 0 || p.MaxPerHour > 100000 || p.MaxPerDay > 1000000 {
		return errors.New("call caps must be 0 (none) or a positive count")
	}
	return nil
}

func isE164Prefix(s string) bool {
	if len(s) < 2 || len(s) > 16 || s[0] != '+' {
		return false
	}
	for _, r := range s[1:] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
