package ubootenv

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Copy locates one copy of the environment block: a file or block device
// and the byte offset of the block in it, as one line of fw_env.config.
type Copy struct {
	Path   string
	Offset int64
}

// Config describes where the environment lives, as fw_env.config does: one
// Copy for a single environment, two for a redundant one. Size is the size of
// each copy in bytes (CONFIG_ENV_SIZE).
type Config struct {
	Size   int
	Copies []Copy
	// LockFile, when not empty, is taken with flock(2) around every access,
	// so that fw_setenv (which locks /var/lock/fw_printenv.lock by default)
	// and this package do not interleave a read-modify-write.
	LockFile string
}

// Redundant reports whether the config has two copies.
func (c Config) Redundant() bool { return len(c.Copies) == 2 }

func (c Config) validate() error {
	if c.Size < MinSize {
		return fmt.Errorf("size %d, want at least %d: %w", c.Size, MinSize, errBadConfig)
	}
	if len(c.Copies) != 1 && len(c.Copies) != 2 {
		return fmt.Errorf("%d copies, want 1 or 2: %w", len(c.Copies), errBadConfig)
	}
	for i, cp := range c.Copies {
		if cp.Path == "" {
			return fmt.Errorf("copy %d has no path: %w", i, errBadConfig)
		}
		if cp.Offset < 0 {
			return fmt.Errorf("copy %d offset %d: %w", i, cp.Offset, errBadConfig)
		}
	}
	if len(c.Copies) == 2 && c.Copies[0].Path == c.Copies[1].Path {
		a, b := c.Copies[0].Offset, c.Copies[1].Offset
		if a < b+int64(c.Size) && b < a+int64(c.Size) {
			return fmt.Errorf("copies at %#x and %#x overlap (size %#x): %w", a, b, c.Size, errBadConfig)
		}
	}
	return nil
}

// FWEnvConfig renders c as fw_env.config text for fw_printenv -c.
func (c Config) FWEnvConfig() string {
	var b strings.Builder
	for _, cp := range c.Copies {
		fmt.Fprintf(&b, "%s %#x %#x\n", cp.Path, cp.Offset, c.Size)
	}
	return b.String()
}

// ParseFWEnvConfig reads fw_env.config text: per line "device offset size
// [sector-size [sectors]]", '#' comments. Sector fields are accepted and
// ignored (they matter for MTD flash, which this package does not drive).
// Both copies must have the same size.
func ParseFWEnvConfig(r io.Reader) (Config, error) {
	var c Config
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		f := strings.Fields(text)
		if len(f) < 3 || len(f) > 5 {
			return Config{}, fmt.Errorf("fw_env.config line %d: %d fields, want 3 to 5: %w", line, len(f), errBadConfig)
		}
		off, err := strconv.ParseInt(f[1], 0, 64)
		if err != nil {
			return Config{}, fmt.Errorf("fw_env.config line %d: offset %q: %w", line, f[1], errBadConfig)
		}
		size, err := strconv.ParseInt(f[2], 0, 32)
		if err != nil {
			return Config{}, fmt.Errorf("fw_env.config line %d: size %q: %w", line, f[2], errBadConfig)
		}
		if c.Size != 0 && int(size) != c.Size {
			return Config{}, fmt.Errorf("fw_env.config line %d: size %#x differs from the first copy's %#x: %w", line, size, c.Size, errBadConfig)
		}
		c.Size = int(size)
		c.Copies = append(c.Copies, Copy{Path: f[0], Offset: off})
	}
	if err := sc.Err(); err != nil {
		return Config{}, fmt.Errorf("fw_env.config: %w", err)
	}
	if err := c.validate(); err != nil {
		return Config{}, fmt.Errorf("fw_env.config: %w", err)
	}
	return c, nil
}

// Option configures a Store.
type Option func(*Store) error

// WithLogger sets the logger; the store adds component=ubootenv.
func WithLogger(l *slog.Logger) Option {
	return func(s *Store) error {
		if l == nil {
			return fmt.Errorf("WithLogger: nil logger: %w", errBadConfig)
		}
		s.log = l
		return nil
	}
}

// Store reads and writes one environment described by a Config. It is safe
// for concurrent use; a read-modify-write (Set) holds mu and, if configured,
// the lock file, for its whole duration.
type Store struct {
	cfg Config
	log *slog.Logger // never nil
	mu  sync.Mutex   // serialises writers in this process
}

// Open checks the config and that every copy can be read; it reads no
// variables yet.
func Open(cfg Config, opts ...Option) (*Store, error) {
	cfg.Copies = append([]Copy(nil), cfg.Copies...)
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("ubootenv: %w", err)
	}
	s := &Store{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	s.log = s.log.With("component", "ubootenv")
	for i, cp := range cfg.Copies {
		if err := checkRoom(cp, cfg.Size); err != nil {
			return nil, fmt.Errorf("ubootenv: copy %d: %w", i, err)
		}
	}
	if !cfg.Redundant() {
		s.log.Warn("single environment copy: a power cut during a save can lose the environment",
			"path", cfg.Copies[0].Path)
	}
	return s, nil
}

// Config returns the store's config.
func (s *Store) Config() Config {
	c := s.cfg
	c.Copies = append([]Copy(nil), c.Copies...)
	return c
}

// checkRoom makes sure the file or device holds the whole block.
func checkRoom(cp Copy, size int) error {
	f, err := os.Open(cp.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("size of %s: %w", cp.Path, err)
	}
	if end < cp.Offset+int64(size) {
		return fmt.Errorf("%s is %d bytes, block needs %d at offset %d: %w", cp.Path, end, size, cp.Offset, errShortBlock)
	}
	return nil
}

// state is what a read found: the current copy's variables, its index and
// flags, and which copies were valid.
type state struct {
	vars    map[string]string
	current int
	flags   byte
	valid   [2]bool
}

func (s *Store) read() (state, error) {
	var st state
	var vars [2]map[string]string
	var flags [2]byte
	var lastErr error
	for i, cp := range s.cfg.Copies {
		block, err := readBlock(cp, s.cfg.Size)
		if err != nil {
			return state{}, fmt.Errorf("read copy %d (%s at %#x): %w", i, cp.Path, cp.Offset, err)
		}
		v, f, err := Decode(block, s.cfg.Redundant())
		if err != nil {
			lastErr = fmt.Errorf("copy %d (%s at %#x): %w", i, cp.Path, cp.Offset, err)
			continue
		}
		vars[i], flags[i], st.valid[i] = v, f, true
	}
	switch {
	case st.valid[0] && st.valid[1]:
		st.current = 0
		if newer(flags[1], flags[0]) {
			st.current = 1
		}
	case st.valid[0]:
		st.current = 0
	case st.valid[1]:
		st.current = 1
	default:
		if lastErr == nil {
			lastErr = ErrNoValidCopy
		}
		return state{}, lastErr
	}
	st.vars, st.flags = vars[st.current], flags[st.current]
	return st, nil
}

func readBlock(cp Copy, size int) ([]byte, error) {
	f, err := os.Open(cp.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	block := make([]byte, size)
	if _, err := f.ReadAt(block, cp.Offset); err != nil {
		return nil, err
	}
	return block, nil
}

func writeBlock(cp Copy, block []byte) error {
	f, err := os.OpenFile(cp.Path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(block, cp.Offset); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", cp.Path, err)
	}
	return f.Close()
}

// Load returns all variables of the current copy.
func (s *Store) Load() (map[string]string, error) {
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := s.read()
	if err != nil {
		return nil, fmt.Errorf("ubootenv load: %w", err)
	}
	return st.vars, nil
}

// Get returns the named variables that are set; a name that is not set is
// absent from the map.
func (s *Store) Get(names ...string) (map[string]string, error) {
	all, err := s.Load()
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(names))
	for _, n := range names {
		if v, ok := all[n]; ok {
			out[n] = v
		}
	}
	return out, nil
}

// Set changes the given variables and keeps all others, in one write: of two
// copies, the one that is not current is overwritten with the next flags
// value and synced, so a cut during the write leaves the old copy current.
// A Set that changes nothing writes nothing. Set refuses to work on an
// environment with no valid copy (ErrNoValidCopy): writing only these
// variables would drop everything U-Boot needs to boot.
func (s *Store) Set(vars map[string]string) error {
	for name, value := range vars {
		if err := checkName(name); err != nil {
			return fmt.Errorf("ubootenv set: %w", err)
		}
		if strings.IndexByte(value, 0) >= 0 {
			return fmt.Errorf("ubootenv set %s: value holds NUL: %w", name, errBadValue)
		}
	}
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	st, err := s.read()
	if err != nil {
		return fmt.Errorf("ubootenv set: %w", err)
	}
	next := maps.Clone(st.vars)
	changed := false
	for name, value := range vars {
		if old, ok := next[name]; !ok || old != value {
			next[name] = value
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return s.save(st, next)
}

// Replace writes vars as the whole environment (the variables not in vars
// are dropped), with the same copy discipline as Set.
func (s *Store) Replace(vars map[string]string) error {
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	st, err := s.read()
	if err != nil {
		return fmt.Errorf("ubootenv replace: %w", err)
	}
	return s.save(st, vars)
}

func (s *Store) save(st state, vars map[string]string) error {
	target, flags := 0, byte(0)
	if s.cfg.Redundant() {
		target, flags = 1-st.current, st.flags+1
	}
	block, err := Encode(vars, s.cfg.Size, s.cfg.Redundant(), flags)
	if err != nil {
		return fmt.Errorf("ubootenv save: %w", err)
	}
	cp := s.cfg.Copies[target]
	if err := writeBlock(cp, block); err != nil {
		return fmt.Errorf("ubootenv save copy %d (%s at %#x): %w", target, cp.Path, cp.Offset, err)
	}
	s.log.Debug("environment saved", "copy", target, "flags", flags, "vars", len(vars))
	return nil
}

// Init writes vars into every copy, ignoring what was there: for image
// builders and tests, never for a running system. Copy 0 becomes current.
func (s *Store) Init(vars map[string]string) error {
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	for i := len(s.cfg.Copies) - 1; i >= 0; i-- {
		flags := byte(0)
		if s.cfg.Redundant() && i == 0 {
			flags = 1
		}
		block, err := Encode(vars, s.cfg.Size, s.cfg.Redundant(), flags)
		if err != nil {
			return fmt.Errorf("ubootenv init: %w", err)
		}
		if err := writeBlock(s.cfg.Copies[i], block); err != nil {
			return fmt.Errorf("ubootenv init copy %d: %w", i, err)
		}
	}
	return nil
}

// lock takes mu and, when configured, the lock file.
func (s *Store) lock() (func(), error) {
	s.mu.Lock()
	if s.cfg.LockFile == "" {
		return s.mu.Unlock, nil
	}
	release, err := flock(s.cfg.LockFile)
	if err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("ubootenv lock %s: %w", s.cfg.LockFile, err)
	}
	return func() { release(); s.mu.Unlock() }, nil
}
