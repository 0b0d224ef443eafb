package uptane

import (
	"crypto/sha256"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/tufrepo"
)

// FuzzCustom feeds arbitrary target custom objects and signed-time values
// to the parsers. Properties: no panic; what parses is within the bounds;
// a firmware custom object re-encoded the way fleet/tufrepo writes it
// parses to the same fields; a signed time that parses formats back to an
// equal time.
//
//fuzz:budget 100000
func FuzzCustom(f *testing.F) {
	f.Add([]byte(`{"compatible":"hardphone-qemu-arm64","version":"2026.1","security_version":4}`), "2026-01-02T03:04:05Z")
	f.Add([]byte(`{"kind":"firmware","compatible":"b","version":"1","security_version":18446744073709551615}`), "2026-01-02T03:04:05+01:00")
	f.Add([]byte(`{"kind":"config","version":7}`), "")
	f.Add([]byte(`{"kind":"config","version":-1}`), "0001-01-01T00:00:00Z")
	f.Add([]byte(`{"kind":"other","x":[1,2,{}]}`), "9999-12-31T23:59:59Z")
	f.Add([]byte(`{"compatible":"\u0000","version":1.5}`), "not a time")
	f.Add([]byte(`[]`), "2026-13-01T00:00:00Z")
	f.Fuzz(func(t *testing.T, raw []byte, signed string) {
		c, err := parseCustom(raw)
		if err == nil {
			if len(c.Compatible) > maxCustomText || len(c.Version) > maxCustomText {
				t.Fatalf("parseCustom(%q) = %+v beyond the bounds", raw, c)
			}
			if c.Kind == kindFirmware {
				if c.Compatible == "" {
					t.Fatalf("parseCustom(%q) = firmware without compatible", raw)
				}
				again, err := json.Marshal(map[string]any{"kind": "firmware", "compatible": c.Compatible, "version": c.Version, "security_version": c.SecurityVersion})
				if err != nil {
					t.Fatalf("marshal: %v", err)
				}
				c2, err := parseCustom(again)
				if err != nil || c2 != c {
					t.Fatalf("round trip of %q: %+v, %v, want %+v", raw, c2, err, c)
				}
			}
		}
		st, ok, err := parseSignedTime(map[string]any{fieldSignedTime: signed})
		if err == nil && ok {
			back, err := time.Parse(time.RFC3339, st.Format(time.RFC3339))
			if err != nil || !back.Equal(st) || st.Location() != time.UTC {
				t.Fatalf("signed time %q parsed to %v, which does not round-trip", signed, st)
			}
		}
	})
}

// FuzzTargetName checks the phone's target-name rule against the
// server's (fleet/tufrepo): both accept exactly the same names, and the
// path a phone fetches for an accepted name stays under targets/ and is a
// name its fetcher accepts.
//
//fuzz:budget 100000
func FuzzTargetName(f *testing.F) {
	for _, s := range []string{"hardphone-2026.1.raucb", "config.toml", "a/b/c.raucb", "../etc/passwd", "a//b", ".hidden", "a/./b",
		"a/..", "x y", "a\x00b", strings.Repeat("a", 201), "é.raucb", "a/.b", "-a", "+a/_b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		phoneErr := checkTargetName(name)
		serverErr := tufrepo.CheckTargetName(name)
		if (phoneErr == nil) != (serverErr == nil) {
			t.Fatalf("name %q: phone says %v, server says %v", name, phoneErr, serverErr)
		}
		if phoneErr != nil {
			return
		}
		sum := sha256.Sum256([]byte(name))
		for _, consistent := range []bool{true, false} {
			p := targetPath(name, sum[:], consistent)
			if !strings.HasPrefix(p, "targets/") || checkFetchName(p) != nil {
				t.Fatalf("targetPath(%q, %v) = %q, not a fetchable name under targets/", name, consistent, p)
			}
			for _, e := range strings.Split(p, "/") {
				if e == ".." || e == "." || e == "" {
					t.Fatalf("targetPath(%q) = %q has element %q", name, p, e)
				}
			}
		}
		fw := tufrepo.Firmware{Name: name, SHA256: sum}
		if got := targetPath(name, sum[:], true); got != fw.Path() {
			t.Fatalf("phone path %q, server path %q", got, fw.Path())
		}
	})
}
