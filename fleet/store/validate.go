package store

import (
	"fmt"
	"time"
)

// Bounds on the fields of every record.
const (
	// MaxSerialLen bounds a device serial number.
	MaxSerialLen = 64
	// MaxNameLen bounds a model, group, slot or counter name, a version.
	MaxNameLen = 64
	// MaxTextLen bounds a free-text line (a lockdown finding, a setting).
	MaxTextLen = 256
)

// Times outside [minTime, maxTime) are refused: before it a clock is wrong,
// past it JSON and SQL encodings disagree.
var (
	minTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// checkSerial accepts a device serial: 1..MaxSerialLen bytes of
// [A-Za-z0-9._:-], starting with a letter or digit.
func checkSerial(s string) error {
	return checkToken("serial", s, MaxSerialLen, ":")
}

// checkName accepts a model, group or slot name: 1..MaxNameLen bytes of
// [A-Za-z0-9._-], starting with a letter or digit. Names end up in file
// names, log lines and SQL, so nothing else passes.
func checkName(field, s string) error {
	return checkToken(field, s, MaxNameLen, "")
}

// checkVersion accepts a version string: 1..MaxNameLen bytes of
// [A-Za-z0-9._+~-], starting with a letter or digit (Debian and semver
// versions fit).
func checkVersion(field, s string) error {
	return checkToken(field, s, MaxNameLen, "+~")
}

func checkToken(field, s string, max int, extra string) error {
	if s == "" {
		return fmt.Errorf("%w: empty %s", ErrInvalid, field)
	}
	if len(s) > max {
		return fmt.Errorf("%w: %s of %d bytes, want at most %d", ErrInvalid, field, len(s), max)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isAlnum(c):
		case i > 0 && (c == '.' || c == '_' || c == '-' || containsByte(extra, c)):
		default:
			return fmt.Errorf("%w: %s %q: byte %d (0x%02x) not allowed", ErrInvalid, field, s, i, c)
		}
	}
	return nil
}

// checkText accepts printable ASCII up to max bytes (possibly empty).
func checkText(field, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%w: %s of %d bytes, want at most %d", ErrInvalid, field, len(s), max)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return fmt.Errorf("%w: %s: byte %d (0x%02x) is not printable ASCII", ErrInvalid, field, i, s[i])
		}
	}
	return nil
}

func checkTime(field string, t time.Time) error {
	if t.Before(minTime) || !t.Before(maxTime) {
		return fmt.Errorf("%w: %s %v out of range [%v, %v)", ErrInvalid, field, t, minTime, maxTime)
	}
	return nil
}

// CheckTime validates a time argument (a now, an at) the same way record
// times are.
func CheckTime(field string, t time.Time) error { return checkTime(field, t) }

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func containsByte(s string, c byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return true
		}
	}
	return false
}

// NormTime is how every implementation keeps a time: UTC, truncated to the
// microsecond (PostgreSQL's resolution), without a monotonic reading.
func NormTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
