package dialplan

import (
	"fmt"
	"path"
	"strings"
	"time"
)

// Target is what is being dialled: the number (digits, a leading '+' for
// E.164, '*' and '#' kept) when the user part is a number, and the whole
// URI.
type Target struct {
	Number string
	URI    string
}

// ParseTarget reads a dial string or SIP URI ("0049301234", "+49 30 1234",
// "sip:+4930123@pbx;user=phone", "sip:bob@example.com").
func ParseTarget(s string) Target {
	t := Target{URI: s}
	user := s
	if i := strings.IndexByte(s, ':'); i >= 0 && (strings.HasPrefix(s, "sip:") || strings.HasPrefix(s, "sips:") || strings.HasPrefix(s, "tel:")) {
		user = s[i+1:]
	}
	if at := strings.IndexByte(user, '@'); at >= 0 {
		user = user[:at]
	}
	if semi := strings.IndexByte(user, ';'); semi >= 0 {
		user = user[:semi]
	}
	var b strings.Builder
	for i, r := range user {
		switch {
		case r >= '0' && r <= '9', r == '*', r == '#':
			b.WriteRune(r)
		case r == '+' && i == 0:
			b.WriteRune(r)
		case r == ' ', r == '-', r == '.', r == '(', r == ')':
			// visual separators (RFC 3966 §5.1.1)
		default:
			return t // not a number: a name
		}
	}
	t.Number = b.String()
	return t
}

// e164 turns the number into +CC... form when it is international: "00"
// becomes "+", a national "0" gets the home code; "" when it is a short or
// local number without a trunk prefix.
func (p Policy) e164(n string) string {
	switch {
	case strings.HasPrefix(n, "+"):
		return n
	case strings.HasPrefix(n, "00"):
		return "+" + n[2:]
	case strings.HasPrefix(n, "0") && p.Home != "":
		return p.Home + n[1:]
	}
	return ""
}

// Check decides whether target may be dialled at now given the calls
// already placed (recent, newest last; only the last day matters). It
// never changes anything.
func (p Policy) Check(target Target, now time.Time, recent []time.Time) error {
	if len(p.Allow) > 0 && !p.allowed(target) {
		return fmt.Errorf("%w: %s is not on the account's allow list", ErrRefused, shown(target))
	}
	if target.Number != "" && !p.allowed(target) {
		e := p.e164(target.Number)
		for _, pre := range p.Premium {
			if e != "" && strings.HasPrefix(e, pre) {
				return fmt.Errorf("%w: %s is a premium-rate number (%s)", ErrRefused, shown(target), pre)
			}
		}
		if !p.International && e != "" && (p.Home == "" || !strings.HasPrefix(e, p.Home)) {
			return fmt.Errorf("%w: %s is international", ErrRefused, shown(target))
		}
	}
	if len(p.Hours) > 0 {
		ok := false
		for _, w := range p.Hours {
			ok = ok || w.contains(now)
		}
		if !ok {
			return fmt.Errorf("%w: no calls at %s", ErrRefused, now.Format("Mon 15:04"))
		}
	}
	var hour, day int
	for _, t := range recent {
		if now.Sub(t) < time.Hour {
			hour++
		}
		if now.Sub(t) < 24*time.Hour {
			day++
		}
	}
	if p.MaxPerHour > 0 && hour >= p.MaxPerHour {
		return fmt.Errorf("%w: %d calls in the last hour (cap %d)", ErrRefused, hour, p.MaxPerHour)
	}
	if p.MaxPerDay > 0 && day >= p.MaxPerDay {
		return fmt.Errorf("%w: %d calls in the last day (cap %d)", ErrRefused, day, p.MaxPerDay)
	}
	return nil
}

// allowed reports whether an allow pattern names the target.
func (p Policy) allowed(t Target) bool {
	for _, pat := range p.Allow {
		if strings.Contains(pat, ":") || strings.Contains(pat, "@") {
			if ok, err := path.Match(pat, t.URI); err == nil && ok {
				return true
			}
			continue
		}
		if t.Number != "" && (matchNumber(pat, t.Number) || matchNumber(pat, p.e164(t.Number))) {
			return true
		}
	}
	return false
}

// matchNumber matches digits where 'x' is one digit and a trailing '*' any
// rest.
func matchNumber(pat, n string) bool {
	if n == "" {
		return false
	}
	rest, star := strings.CutSuffix(pat, "*")
	if !star && len(rest) != len(n) || star && len(n) < len(rest) {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if c == 'x' || c == 'X' {
			if n[i] < '0' || n[i] > '9' {
				return false
			}
			continue
		}
		if c != n[i] {
			return false
		}
	}
	return true
}

// shown is the target as a refusal names it: the number, or the URI cut
// short (it is the user's own input, but may be long).
func shown(t Target) string {
	s := t.Number
	if s == "" {
		s = t.URI
	}
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return s
}
