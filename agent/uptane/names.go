package uptane

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// maxTargetName bounds a target name: TUF target paths (specification
// §4.5) become file names here, so they are held to 1..200 bytes of
// slash-separated elements of [A-Za-z0-9._+-], no element empty, "." or
// "..", none starting with a dot.
const maxTargetName = 200

func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '+' || c == '-'
}

func checkTargetName(name string) error {
	if name == "" || len(name) > maxTargetName {
		return fmt.Errorf("%w: %d bytes, want 1..%d", errBadName, len(name), maxTargetName)
	}
	for _, e := range strings.Split(name, "/") {
		if e == "" || e[0] == '.' {
			return fmt.Errorf("%w: %q: element %q", errBadName, name, e)
		}
		for i := 0; i < len(e); i++ {
			if !nameByte(e[i]) {
				return fmt.Errorf("%w: %q: byte 0x%02x", errBadName, name, e[i])
			}
		}
	}
	return nil
}

// targetPath is where a target is fetched from, relative to the
// repository base: with consistent snapshots (§5.7.3) "targets/" + dir +
// hex(sha256) + "." + base name, else "targets/" + name.
func targetPath(name string, sha256 []byte, consistent bool) string {
	if !consistent {
		return "targets/" + name
	}
	dir, base := "", name
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		dir, base = name[:i+1], name[i+1:]
	}
	return "targets/" + dir + hex.EncodeToString(sha256) + "." + base
}

// Signed fields the fleet's repositories add to metadata (TUF lets signed
// objects carry fields it does not define; go-tuf keeps them under the
// signature).
const (
	fieldSignedTime = "x-hardphone-time"
	fieldDevice     = "x-hardphone-device"
)

// Target kinds and custom field names, as fleet/tufrepo writes them.
const (
	kindFirmware = "firmware"
	kindConfig   = "config"
	// ConfigTargetName is the director target carrying the config document.
	ConfigTargetName = "config.toml"
)

// Bounds on custom fields.
const (
	maxCustom     = 4 << 10
	maxCustomText = 128
	// MaxConfigSize bounds a configuration document.
	MaxConfigSize = 1 << 20
)

// custom is a target's "custom" object as this package reads it. Unknown
// fields are ignored (newer servers may add some); the known ones are
// bounded and typed.
type custom struct {
	Kind            string
	Compatible      string
	Version         string // firmware: the bundle version
	ConfigVersion   uint64 // config: the document version
	SecurityVersion uint64
}

// parseCustom reads a target's custom object. kind "" (image repository
// targets, which are all firmware) reads as firmware.
func parseCustom(raw []byte) (custom, error) {
	var c custom
	if len(raw) == 0 {
		return c, fmt.Errorf("%w: none", errCustom)
	}
	if len(raw) > maxCustom {
		return c, fmt.Errorf("%w: %d bytes, want at most %d", errCustom, len(raw), maxCustom)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return c, fmt.Errorf("%w: %v", errCustom, err)
	}
	if k, ok := m["kind"]; ok {
		if err := json.Unmarshal(k, &c.Kind); err != nil {
			return c, fmt.Errorf("%w: kind: %v", errCustom, err)
		}
	}
	if c.Kind == "" {
		c.Kind = kindFirmware
	}
	switch c.Kind {
	case kindFirmware:
		if err := textField(m, "compatible", &c.Compatible, true); err != nil {
			return c, err
		}
		if err := textField(m, "version", &c.Version, false); err != nil {
			return c, err
		}
		if v, ok := m["security_version"]; ok {
			if err := json.Unmarshal(v, &c.SecurityVersion); err != nil {
				return c, fmt.Errorf("%w: security_version: %v", errCustom, err)
			}
		}
	case kindConfig:
		v, ok := m["version"]
		if !ok {
			return c, fmt.Errorf("%w: config without version", errCustom)
		}
		if err := json.Unmarshal(v, &c.ConfigVersion); err != nil {
			return c, fmt.Errorf("%w: config version: %v", errCustom, err)
		}
	}
	return c, nil
}

func textField(m map[string]json.RawMessage, key string, dst *string, required bool) error {
	v, ok := m[key]
	if !ok {
		if required {
			return fmt.Errorf("%w: no %s", errCustom, key)
		}
		return nil
	}
	if err := json.Unmarshal(v, dst); err != nil {
		return fmt.Errorf("%w: %s: %v", errCustom, key, err)
	}
	if len(*dst) > maxCustomText || !utf8.ValidString(*dst) || (required && *dst == "") {
		return fmt.Errorf("%w: %s: want 1..%d bytes of UTF-8", errCustom, key, maxCustomText)
	}
	for _, r := range *dst {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %s: control character", errCustom, key)
		}
	}
	return nil
}

// parseSignedTime reads the signed time field of a timestamp: RFC 3339 in
// UTC.
func parseSignedTime(fields map[string]any) (time.Time, bool, error) {
	v, ok := fields[fieldSignedTime]
	if !ok {
		return time.Time{}, false, nil
	}
	s, ok := v.(string)
	if !ok || len(s) > 64 {
		return time.Time{}, false, fmt.Errorf("%w: not a short string", errSignedTim)
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("%w: %v", errSignedTim, err)
	}
	if t.Year() < 2000 || t.Year() > 9999 {
		return time.Time{}, false, fmt.Errorf("%w: year %d out of range", errSignedTim, t.Year())
	}
	return t.UTC(), true, nil
}
