package uptane

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Target is a file a repository's targets lists.
type Target struct {
	// Name is the target name; Path is where to fetch it, relative to its
	// repository's base URL (with consistent snapshots, named by hash).
	Name, Path string
	Length     int64
	SHA256     [32]byte
}

// Firmware is a bundle both repositories agree on.
type Firmware struct {
	Target
	// Compatible, Version and SecurityVersion are the signed custom
	// fields (the bundle's manifest, as the image repository recorded
	// it); the updater still checks the bundle itself.
	Compatible      string
	Version         string
	SecurityVersion uint64
}

// Config is the device's configuration document as the director names
// it; fetch it with FetchConfig.
type Config struct {
	Target
	Version uint64
}

// Assignment is what the director says this device should have, checked
// against the image repository. A nil field means none is assigned.
type Assignment struct {
	DeviceID string
	Firmware *Firmware
	Config   *Config
	// DirectorTargets is the version of the director targets it comes
	// from (for reports).
	DirectorTargets int64
}

// Resolve returns the device's assignment from the trusted metadata,
// applying Uptane's rule to firmware: the director names it and the image
// repository lists the same name with the same length and hashes (every
// hash the director gives, SHA-256 required) and the same compatible,
// version and security version. deviceID must be the client's device.
// Expired metadata is not used (an *ExpiredError, ErrStale); nothing
// trusted yet is ErrNoMetadata.
func (c *Client) Resolve(deviceID string) (*Assignment, error) {
	if deviceID != c.deviceID {
		return nil, fmt.Errorf("resolve %q: client follows %q: %w", deviceID, c.deviceID, ErrWrongDevice)
	}
	now := c.clock()
	c.mu.Lock()
	defer c.mu.Unlock()
	dir, err := c.fresh(Director, now)
	if err != nil {
		return nil, fmt.Errorf("resolve: %w", err)
	}
	for role, fields := range map[string]map[string]any{
		metadata.TIMESTAMP: dir.timestamp.Signed.UnrecognizedFields,
		metadata.SNAPSHOT:  dir.snapshot.Signed.UnrecognizedFields,
		metadata.TARGETS:   dir.targets.Signed.UnrecognizedFields,
	} {
		if got, _ := fields[fieldDevice].(string); got != deviceID {
			return nil, fmt.Errorf("resolve: director %s names %q: %w", role, got, ErrWrongDevice)
		}
	}
	a := &Assignment{DeviceID: deviceID, DirectorTargets: dir.targets.Signed.Version}
	names := make([]string, 0, len(dir.targets.Signed.Targets))
	for name := range dir.targets.Signed.Targets {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		tf := dir.targets.Signed.Targets[name]
		if err := checkTargetName(name); err != nil {
			return nil, fmt.Errorf("resolve: director target: %w: %w", ErrRefused, err)
		}
		var raw []byte
		if tf.Custom != nil {
			raw = *tf.Custom
		}
		cu, err := parseCustom(raw)
		if err != nil {
			return nil, fmt.Errorf("resolve: director target %s: %w: %w", name, ErrRefused, err)
		}
		switch cu.Kind {
		case kindFirmware:
			if a.Firmware != nil {
				return nil, fmt.Errorf("resolve: director names two firmware targets (%s, %s): %w", a.Firmware.Name, name, ErrRefused)
			}
			fw, err := c.matchImage(name, tf, cu, now)
			if err != nil {
				return nil, fmt.Errorf("resolve: firmware %s: %w", name, err)
			}
			a.Firmware = fw
		case kindConfig:
			if name != ConfigTargetName {
				return nil, fmt.Errorf("resolve: config target named %q, want %s: %w", name, ConfigTargetName, ErrRefused)
			}
			t, err := target(name, tf, dir.consistent())
			if err != nil {
				return nil, fmt.Errorf("resolve: config: %w", err)
			}
			if t.Length > MaxConfigSize {
				return nil, fmt.Errorf("resolve: config of %d bytes, want at most %d: %w", t.Length, MaxConfigSize, ErrTooLarge)
			}
			a.Config = &Config{Target: t, Version: cu.ConfigVersion}
		default:
			// A kind a newer director knows: nothing here acts on it.
			c.log.Warn("director target of unknown kind ignored", "target", name, "kind", cu.Kind)
		}
	}
	return a, nil
}

// matchImage checks a director firmware target against the image
// repository. Called with c.mu held.
func (c *Client) matchImage(name string, dtf *metadata.TargetFiles, dc custom, now time.Time) (*Firmware, error) {
	img, err := c.fresh(Image, now)
	if err != nil {
		return nil, err
	}
	itf, ok := img.targets.Signed.Targets[name]
	if !ok {
		return nil, fmt.Errorf("image repository does not list it: %w", ErrMixAndMatch)
	}
	if dtf.Length != itf.Length {
		return nil, fmt.Errorf("director says %d bytes, image repository %d: %w", dtf.Length, itf.Length, ErrMixAndMatch)
	}
	if len(dtf.Hashes["sha256"]) != sha256.Size {
		return nil, fmt.Errorf("director gives no sha256: %w", ErrMixAndMatch)
	}
	for alg, want := range dtf.Hashes {
		got, ok := itf.Hashes[alg]
		if !ok || !hmac.Equal(got, want) {
			return nil, fmt.Errorf("%s differs between director and image repository: %w", alg, ErrMixAndMatch)
		}
	}
	var raw []byte
	if itf.Custom != nil {
		raw = *itf.Custom
	}
	ic, err := parseCustom(raw)
	if err != nil {
		return nil, fmt.Errorf("image repository target: %w: %w", ErrRefused, err)
	}
	if ic.Kind != kindFirmware {
		return nil, fmt.Errorf("image repository lists it as %q: %w", ic.Kind, ErrMixAndMatch)
	}
	switch {
	case ic.Compatible != dc.Compatible:
		return nil, fmt.Errorf("compatible %q in the director, %q in the image repository: %w", dc.Compatible, ic.Compatible, ErrMixAndMatch)
	case ic.Version != dc.Version:
		return nil, fmt.Errorf("version %q in the director, %q in the image repository: %w", dc.Version, ic.Version, ErrMixAndMatch)
	case ic.SecurityVersion != dc.SecurityVersion:
		return nil, fmt.Errorf("security version %d in the director, %d in the image repository: %w", dc.SecurityVersion, ic.SecurityVersion, ErrMixAndMatch)
	}
	if c.compatible != "" && ic.Compatible != c.compatible {
		return nil, fmt.Errorf("compatible %q, this board is %q: %w", ic.Compatible, c.compatible, ErrIncompatible)
	}
	t, err := target(name, itf, img.consistent())
	if err != nil {
		return nil, err
	}
	return &Firmware{Target: t, Compatible: ic.Compatible, Version: ic.Version, SecurityVersion: ic.SecurityVersion}, nil
}

func target(name string, tf *metadata.TargetFiles, consistent bool) (Target, error) {
	h := tf.Hashes["sha256"]
	if len(h) != sha256.Size {
		return Target{}, fmt.Errorf("target %s has no sha256: %w", name, ErrRefused)
	}
	if tf.Length <= 0 {
		return Target{}, fmt.Errorf("target %s: length %d: %w", name, tf.Length, ErrRefused)
	}
	t := Target{Name: name, Path: targetPath(name, h, consistent), Length: tf.Length}
	copy(t.SHA256[:], h)
	return t, nil
}

// FetchConfig downloads the configuration document through the director's
// fetcher, bounded by its length, and returns it only if its length and
// SHA-256 match the metadata.
func (c *Client) FetchConfig(ctx context.Context, cfg *Config) ([]byte, error) {
	if cfg == nil {
		return nil, errors.New("fetch config: none assigned")
	}
	if cfg.Length <= 0 || cfg.Length > MaxConfigSize {
		return nil, fmt.Errorf("fetch config: length %d: want 1..%d: %w", cfg.Length, MaxConfigSize, ErrTooLarge)
	}
	var f Fetcher
	for _, r := range c.repos {
		if r.name == Director {
			f = r.fetcher
		}
	}
	b, err := f.Fetch(ctx, cfg.Path, cfg.Length)
	if err != nil {
		return nil, fmt.Errorf("fetch config: %w", err)
	}
	if int64(len(b)) != cfg.Length {
		return nil, fmt.Errorf("fetch config: %d bytes, want %d: %w", len(b), cfg.Length, ErrTargetMismatch)
	}
	if sum := sha256.Sum256(b); !hmac.Equal(sum[:], cfg.SHA256[:]) {
		return nil, fmt.Errorf("fetch config: sha256 differs: %w", ErrTargetMismatch)
	}
	return b, nil
}

// NewTargetReader passes r's bytes through while checking them against t:
// more than t.Length bytes is an error at once, and at EOF the length and
// SHA-256 must match (ErrTargetMismatch). Bundle downloads stream through
// it into the updater.
func NewTargetReader(r io.Reader, t Target) io.Reader {
	return &targetReader{r: r, t: t, h: sha256.New()}
}

type targetReader struct {
	r   io.Reader
	t   Target
	h   hash.Hash
	n   int64
	err error
}

func (tr *targetReader) Read(p []byte) (int, error) {
	if tr.err != nil {
		return 0, tr.err
	}
	if rest := tr.t.Length - tr.n + 1; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := tr.r.Read(p)
	tr.n += int64(n)
	tr.h.Write(p[:n])
	if tr.n > tr.t.Length {
		tr.err = fmt.Errorf("target %s: more than %d bytes: %w", tr.t.Name, tr.t.Length, ErrTargetMismatch)
		return 0, tr.err
	}
	if errors.Is(err, io.EOF) {
		if tr.n != tr.t.Length {
			tr.err = fmt.Errorf("target %s: %d bytes, want %d: %w", tr.t.Name, tr.n, tr.t.Length, ErrTargetMismatch)
			return n, tr.err
		}
		if !hmac.Equal(tr.h.Sum(nil), tr.t.SHA256[:]) {
			tr.err = fmt.Errorf("target %s: sha256 differs: %w", tr.t.Name, ErrTargetMismatch)
			return n, tr.err
		}
		tr.err = io.EOF
	}
	return n, err
}
