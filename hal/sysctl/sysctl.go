package sysctl

import (
	"fmt"
	"path/filepath"
	"strings"
)

// DefaultRoot is where the kernel exposes its parameters.
const DefaultRoot = "/proc/sys"

// FS reads and writes parameters below one root directory.
type FS struct {
	root string
}

// Option configures an FS.
type Option func(*FS) error

// WithRoot reads and writes below dir instead of /proc/sys (tests, a board
// that stages values).
func WithRoot(dir string) Option {
	return func(f *FS) error {
		if dir == "" {
			return fmt.Errorf("sysctl root: empty path")
		}
		f.root = filepath.Clean(dir)
		return nil
	}
}

// New returns an FS on /proc/sys, or on the root an option names.
func New(opts ...Option) (*FS, error) {
	f := &FS{root: DefaultRoot}
	for _, o := range opts {
		if err := o(f); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// ValidKey checks a dotted key: segments of [A-Za-z0-9_-], at most 16 of
// them, no empty ones. Interface names with dots ("eth0.100") cannot be
// named; sysctl(8) would need its slash form for them.
func ValidKey(key string) error {
	if len(key) == 0 || len(key) > 200 {
		return fmt.Errorf("%w: %q: want 1 to 200 characters", errBadKey, key)
	}
	segs := strings.Split(key, ".")
	if len(segs) < 2 || len(segs) > 16 {
		return fmt.Errorf("%w: %q: want 2 to 16 dot-separated parts", errBadKey, key)
	}
	for _, s := range segs {
		if s == "" || strings.IndexFunc(s, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
		}) >= 0 {
			return fmt.Errorf("%w: %q: part %q, want [A-Za-z0-9_-]+", errBadKey, key, s)
		}
	}
	return nil
}

// Normalize collapses runs of whitespace to one space and trims the ends:
// the kernel separates fields of net.ipv4.ip_local_port_range with a tab.
func Normalize(v string) string { return strings.Join(strings.Fields(v), " ") }

func (f *FS) path(key string) (string, error) {
	if err := ValidKey(key); err != nil {
		return "", err
	}
	return filepath.Join(f.root, filepath.FromSlash(strings.ReplaceAll(key, ".", "/"))), nil
}
