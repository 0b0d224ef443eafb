package bundle

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Format is a bundle format as [bundle] format names it.
type Format int

// The formats RAUC 1.8 knows. Only plain and verity can be read here.
const (
	FormatPlain Format = iota + 1
	FormatVerity
	FormatCrypt
)

func (f Format) String() string {
	switch f {
	case FormatPlain:
		return "plain"
	case FormatVerity:
		return "verity"
	case FormatCrypt:
		return "crypt"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// MaxManifestSize bounds the manifest; RAUC bounds the whole CMS, which
// carries the verity manifest, at 64 KiB.
const MaxManifestSize = 64 << 10

// SecurityVersionGroup and SecurityVersionKey locate hardphone's
// anti-rollback counter in a manifest. RAUC 1.8 accepts and ignores [meta.*]
// groups, so the key does not break RAUC's own tools.
const (
	SecurityVersionGroup = "meta.hardphone"
	SecurityVersionKey   = "security-version"
)

// Manifest is a parsed manifest.raucm.
type Manifest struct {
	// Compatible is [update] compatible, never empty.
	Compatible string
	// Version, Description and Build are [update] keys; empty when absent.
	Version     string
	Description string
	Build       string
	// Format is [bundle] format; plain when the key is absent, as in RAUC.
	Format Format
	// Verity holds the verity keys; non-nil exactly when Format is
	// FormatVerity (in the signed manifest of a verity bundle).
	Verity *Verity
	// Images in manifest order; slot classes are unique.
	Images []Image
	// SecurityVersion is [meta.hardphone] security-version, 0 when absent
	// (HasSecurityVersion false), since RAUC 1.8's own bundler drops [meta.*].
	SecurityVersion    uint64
	HasSecurityVersion bool
	// Meta holds every other [meta.<label>] group, label to key to value;
	// nil when there is none.
	Meta map[string]map[string]string
}

// Verity is the [bundle] description of the dm-verity hash tree.
type Verity struct {
	Hash [32]byte // root: sha256(salt || top hash block)
	Salt []byte   // 1 to 256 bytes; RAUC uses 32
	Size int64    // bytes of hash tree after the data, a multiple of 4096
}

// Image is one [image.<slotclass>] group.
type Image struct {
	SlotClass string
	// Filename is a single path element inside the bundle (no '/', not
	// "." or "..").
	Filename string
	SHA256   [32]byte
	Size     int64 // bytes, >= 0
	// Adaptive is RAUC's adaptive update hint, kept for display; empty when
	// absent. It changes nothing here: every image is written whole.
	Adaptive string
}

// Image returns the image for a slot class.
func (m *Manifest) Image(slotClass string) (Image, bool) {
	for _, im := range m.Images {
		if im.SlotClass == slotClass {
			return im, true
		}
	}
	return Image{}, false
}

// kv is one key=value line as parsed.
type kv struct {
	line       int
	key, value string
}

type group struct {
	line int
	name string
	kvs  []kv
	seen map[string]int // key -> line, to refuse duplicates
}

// ParseManifest parses a manifest in GKeyFile syntax, as RAUC 1.8 does,
// but stricter: unknown groups and keys are refused (as RAUC refuses them),
// and so are duplicate groups and keys (which GKeyFile would merge), raw
// control characters and invalid UTF-8. Hooks, handlers and crypt bundles
// are refused with ErrUnsupported: this updater runs no code from a bundle.
func ParseManifest(b []byte) (*Manifest, error) {
	if len(b) > MaxManifestSize {
		return nil, &ManifestError{Err: fmt.Errorf("%d bytes, limit %d: %w", len(b), MaxManifestSize, errBadValue)}
	}
	if !utf8.Valid(b) {
		return nil, &ManifestError{Err: fmt.Errorf("not UTF-8: %w", errSyntax)}
	}
	groups, err := parseKeyFile(b)
	if err != nil {
		return nil, err
	}
	return interpret(groups)
}

func parseKeyFile(b []byte) ([]group, error) {
	var groups []group
	seen := map[string]bool{}
	lines := bytes.Split(b, []byte{'\n'})
	for i, raw := range lines {
		n := i + 1
		line := strings.TrimLeft(string(raw), " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		for _, c := range []byte(line) {
			if c < 0x20 && c != '\t' || c == 0x7f {
				return nil, &ManifestError{Line: n, Err: fmt.Errorf("control character %#x: %w", c, errSyntax)}
			}
		}
		if line[0] == '[' {
			name, ok := strings.CutSuffix(strings.TrimRight(line, " \t"), "]")
			name = strings.TrimPrefix(name, "[")
			if !ok || name == "" || strings.ContainsAny(name, "[]") {
				return nil, &ManifestError{Line: n, Err: fmt.Errorf("group header %q: %w", line, errSyntax)}
			}
			if seen[name] {
				return nil, &ManifestError{Line: n, Group: name, Err: fmt.Errorf("group %w", errDuplicate)}
			}
			seen[name] = true
			groups = append(groups, group{line: n, name: name, seen: map[string]int{}})
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, &ManifestError{Line: n, Err: fmt.Errorf("neither group nor key=value: %w", errSyntax)}
		}
		if len(groups) == 0 {
			return nil, &ManifestError{Line: n, Err: fmt.Errorf("key before the first group: %w", errSyntax)}
		}
		key = strings.TrimRight(key, " \t")
		g := &groups[len(groups)-1]
		if !validKey(key) {
			return nil, &ManifestError{Line: n, Group: g.name, Err: fmt.Errorf("key %q: %w", key, errSyntax)}
		}
		value, err := unescape(strings.TrimLeft(value, " \t"))
		if err != nil {
			return nil, &ManifestError{Line: n, Group: g.name, Key: key, Err: err}
		}
		if first, dup := g.seen[key]; dup {
			return nil, &ManifestError{Line: n, Group: g.name, Key: key, Err: fmt.Errorf("key %w (first on line %d)", errDuplicate, first)}
		}
		g.seen[key] = n
		g.kvs = append(g.kvs, kv{line: n, key: key, value: value})
	}
	return groups, nil
}

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range []byte(k) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// unescape applies GKeyFile's string escapes: \s \n \t \r \\. Any other
// escape, and a trailing lone backslash, is an error, as in GKeyFile.
func unescape(v string) (string, error) {
	if !strings.Contains(v, `\`) {
		return v, nil
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '\\' {
			b.WriteByte(v[i])
			continue
		}
		i++
		if i == len(v) {
			return "", fmt.Errorf("trailing backslash: %w", errSyntax)
		}
		switch v[i] {
		case 's':
			b.WriteByte(' ')
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '\\':
			b.WriteByte('\\')
		default:
			return "", fmt.Errorf("escape \\%c: %w", v[i], errSyntax)
		}
	}
	return b.String(), nil
}

// escape is the inverse of unescape for Marshal: backslash and control
// characters always, a space only at either end (where GKeyFile would trim).
func escape(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == ' ' && (i == 0 || i == len(v)-1):
			b.WriteString(`\s`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func interpret(groups []group) (*Manifest, error) {
	m := &Manifest{Format: FormatPlain}
	haveUpdate := false
	for _, g := range groups {
		var err error
		switch {
		case g.name == "update":
			haveUpdate = true
			err = m.parseUpdate(g)
		case g.name == "bundle":
			err = m.parseBundle(g)
		case g.name == "hooks" || g.name == "handler":
			err = &ManifestError{Line: g.line, Group: g.name, Err: fmt.Errorf("bundle hooks and handlers run vendor code during install: %w", ErrUnsupported)}
		case strings.HasPrefix(g.name, "image."):
			err = m.parseImage(g)
		case g.name == SecurityVersionGroup:
			err = m.parseHardphoneMeta(g)
		case strings.HasPrefix(g.name, "meta.") && len(g.name) > len("meta."):
			if m.Meta == nil {
				m.Meta = map[string]map[string]string{}
			}
			vals := map[string]string{}
			for _, p := range g.kvs {
				vals[p.key] = p.value
			}
			m.Meta[strings.TrimPrefix(g.name, "meta.")] = vals
		default:
			err = &ManifestError{Line: g.line, Group: g.name, Err: fmt.Errorf("group: %w", errUnknown)}
		}
		if err != nil {
			return nil, err
		}
	}
	if !haveUpdate || m.Compatible == "" {
		return nil, &ManifestError{Group: "update", Key: "compatible", Err: errMissing}
	}
	if m.Format == FormatVerity && m.Verity == nil {
		return nil, &ManifestError{Group: "bundle", Key: "verity-hash", Err: fmt.Errorf("format=verity needs verity-hash, verity-salt and verity-size: %w", errMissing)}
	}
	return m, nil
}

func (m *Manifest) parseUpdate(g group) error {
	for _, p := range g.kvs {
		switch p.key {
		case "compatible":
			m.Compatible = p.value
		case "version":
			m.Version = p.value
		case "description":
			m.Description = p.value
		case "build":
			m.Build = p.value
		default:
			return &ManifestError{Line: p.line, Group: g.name, Key: p.key, Err: errUnknown}
		}
	}
	return nil
}

func (m *Manifest) parseBundle(g group) error {
	var v Verity
	var have [3]bool
	for _, p := range g.kvs {
		bad := func(format string, args ...any) error {
			return &ManifestError{Line: p.line, Group: g.name, Key: p.key, Err: fmt.Errorf(format, args...)}
		}
		switch p.key {
		case "format":
			switch p.value {
			case "plain":
				m.Format = FormatPlain
			case "verity":
				m.Format = FormatVerity
			case "crypt":
				return bad("crypt bundles: %w", ErrUnsupported)
			default:
				return bad("format %q: %w", p.value, errBadValue)
			}
		case "verity-hash":
			h, err := hex.DecodeString(p.value)
			if err != nil || len(h) != 32 {
				return bad("want 64 hex digits: %w", errBadValue)
			}
			copy(v.Hash[:], h)
			have[0] = true
		case "verity-salt":
			s, err := hex.DecodeString(p.value)
			if err != nil || len(s) == 0 || len(s) > 256 {
				return bad("want 2 to 512 hex digits: %w", errBadValue)
			}
			v.Salt = s
			have[1] = true
		case "verity-size":
			n, err := parseSize(p.value)
			if err != nil || n == 0 || n%BlockSize != 0 {
				return bad("%q, want a positive multiple of %d: %w", p.value, BlockSize, errBadValue)
			}
			v.Size = n
			have[2] = true
		case "crypt-key":
			return bad("crypt bundles: %w", ErrUnsupported)
		default:
			return &ManifestError{Line: p.line, Group: g.name, Key: p.key, Err: errUnknown}
		}
	}
	switch {
	case have == [3]bool{true, true, true}:
		if m.Format != FormatVerity {
			return &ManifestError{Line: g.line, Group: g.name, Err: fmt.Errorf("verity keys in a %s bundle: %w", m.Format, errBadValue)}
		}
		m.Verity = &v
	case have != [3]bool{}:
		return &ManifestError{Line: g.line, Group: g.name, Err: fmt.Errorf("verity-hash, verity-salt and verity-size go together: %w", errMissing)}
	}
	return nil
}

func (m *Manifest) parseImage(g group) error {
	class := strings.TrimPrefix(g.name, "image.")
	if strings.Contains(class, ".") {
		return &ManifestError{Line: g.line, Group: g.name, Err: fmt.Errorf("image variants: %w", ErrUnsupported)}
	}
	if !validSlotClass(class) {
		return &ManifestError{Line: g.line, Group: g.name, Err: fmt.Errorf("slot class %q: %w", class, errBadValue)}
	}
	im := Image{SlotClass: class}
	var have [3]bool
	for _, p := range g.kvs {
		bad := func(format string, args ...any) error {
			return &ManifestError{Line: p.line, Group: g.name, Key: p.key, Err: fmt.Errorf(format, args...)}
		}
		switch p.key {
		case "filename":
			if err := checkFilename(p.value); err != nil {
				return bad("%w", err)
			}
			im.Filename = p.value
			have[0] = true
		case "sha256":
			h, err := hex.DecodeString(p.value)
			if err != nil || len(h) != 32 {
				return bad("want 64 hex digits: %w", errBadValue)
			}
			copy(im.SHA256[:], h)
			have[1] = true
		case "size":
			n, err := parseSize(p.value)
			if err != nil {
				return bad("%w", err)
			}
			im.Size = n
			have[2] = true
		case "adaptive":
			im.Adaptive = p.value
		case "hooks":
			if p.value != "" {
				return bad("slot hooks run vendor code during install: %w", ErrUnsupported)
			}
		default:
			return &ManifestError{Line: p.line, Group: g.name, Key: p.key, Err: errUnknown}
		}
	}
	for i, k := range []string{"filename", "sha256", "size"} {
		if !have[i] {
			return &ManifestError{Line: g.line, Group: g.name, Key: k, Err: errMissing}
		}
	}
	m.Images = append(m.Images, im)
	return nil
}

func (m *Manifest) parseHardphoneMeta(g group) error {
	for _, p := range g.kvs {
		switch p.key {
		case SecurityVersionKey:
			n, err := strconv.ParseUint(p.value, 10, 64)
			if err != nil || !allDigits(p.value) {
				return &ManifestError{Line: p.line, Group: g.name, Key: p.key, Err: fmt.Errorf("%q, want a decimal integer below 2^64: %w", p.value, errBadValue)}
			}
			m.SecurityVersion, m.HasSecurityVersion = n, true
		default:
			// Our own namespace: a typo here must not pass silently.
			return &ManifestError{Line: p.line, Group: g.name, Key: p.key, Err: errUnknown}
		}
	}
	return nil
}

// parseSize parses a decimal byte count that fits an int64. A sign, a
// leading space or anything past 2^63-1 is an error, so a size crafted to
// wrap arithmetic is refused here.
func parseSize(s string) (int64, error) {
	if !allDigits(s) {
		return 0, fmt.Errorf("size %q, want decimal digits: %w", s, errBadValue)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q does not fit 63 bits: %w", s, errBadValue)
	}
	return n, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func validSlotClass(c string) bool {
	if c == "" || len(c) > 64 {
		return false
	}
	for _, r := range []byte(c) {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// checkFilename allows one path element, no traversal, no hidden NUL.
func checkFilename(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty file name: %w", errBadValue)
	case len(name) > 255:
		return fmt.Errorf("file name of %d bytes: %w", len(name), errBadValue)
	case name == "." || name == "..":
		return fmt.Errorf("file name %q: %w", name, errBadValue)
	case strings.ContainsAny(name, "/\\\x00"):
		return fmt.Errorf("file name %q is not a single path element: %w", name, errBadValue)
	case name == "manifest.raucm":
		return fmt.Errorf("file name %q is the manifest: %w", name, errBadValue)
	}
	return nil
}

// Marshal renders m in the layout rauc bundle writes: [update], [bundle],
// the images, then the [meta.*] groups sorted by label. ParseManifest of the
// result gives back m.
func (m *Manifest) Marshal() []byte {
	var b bytes.Buffer
	put := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s=%s\n", k, escape(v))
		}
	}
	b.WriteString("[update]\n")
	put("compatible", m.Compatible)
	put("version", m.Version)
	put("description", m.Description)
	put("build", m.Build)
	if m.Format != 0 && m.Format != FormatPlain || m.Verity != nil {
		b.WriteString("\n[bundle]\n")
		put("format", m.Format.String())
		if v := m.Verity; v != nil {
			put("verity-hash", hex.EncodeToString(v.Hash[:]))
			put("verity-salt", hex.EncodeToString(v.Salt))
			put("verity-size", strconv.FormatInt(v.Size, 10))
		}
	}
	for _, im := range m.Images {
		fmt.Fprintf(&b, "\n[image.%s]\n", im.SlotClass)
		put("sha256", hex.EncodeToString(im.SHA256[:]))
		put("size", strconv.FormatInt(im.Size, 10))
		put("filename", im.Filename)
		put("adaptive", im.Adaptive)
	}
	if m.HasSecurityVersion {
		fmt.Fprintf(&b, "\n[%s]\n", SecurityVersionGroup)
		put(SecurityVersionKey, strconv.FormatUint(m.SecurityVersion, 10))
	}
	labels := make([]string, 0, len(m.Meta))
	for l := range m.Meta {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	for _, l := range labels {
		fmt.Fprintf(&b, "\n[meta.%s]\n", l)
		keys := make([]string, 0, len(m.Meta[l]))
		for k := range m.Meta[l] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "%s=%s\n", k, escape(m.Meta[l][k]))
		}
	}
	return b.Bytes()
}
