package store

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// FuzzParse feeds the parsers of identifiers that arrive from admins and
// devices (EK hashes, serials, challenge IDs, page cursors, setting keys).
// Oracle: whatever parses prints back as its lowercase input.
//
//fuzz:budget 200000
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "00", strings.Repeat("ab", 32), strings.Repeat("AB", 32), strings.Repeat("0", 64),
		"0000000000000001" + "ffffffffffffffff", "8000000000000000" + "0000000000000000", string(NewDeviceID()),
		"dev-" + strings.Repeat("A", 32), "min_security_version", "x.y_z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if h, err := ParseEKHash(s); err == nil && h.String() != strings.ToLower(s) {
			t.Fatalf("ParseEKHash(%q).String() = %q", s, h)
		}
		if c, err := ParseCertSerial(s); err == nil {
			if c.String() != strings.ToLower(s) {
				t.Fatalf("ParseCertSerial(%q).String() = %q", s, c)
			}
			back, err := CertSerialFromBigInt(c.BigInt())
			if err != nil || back != c {
				t.Fatalf("CertSerialFromBigInt(ParseCertSerial(%q).BigInt()) = %v, %v", s, back, err)
			}
		}
		if id, err := ParseChallengeID(s); err == nil && id.String() != strings.ToLower(s) {
			t.Fatalf("ParseChallengeID(%q).String() = %q", s, id)
		}
		if id, err := ParseDeviceCursor(s); err == nil && string(id) != s {
			t.Fatalf("ParseDeviceCursor(%q) = %q", s, id)
		}
		if err := SettingKey(s).Validate(); err == nil && (len(s) > MaxNameLen || strings.ToLower(s) != s) {
			t.Fatalf("SettingKey(%q).Validate() accepted it", s)
		}
	})
}

// FuzzReport decodes arbitrary JSON into a Report, as a server might from
// a device. Oracle: a report Validate accepts is stored unchanged: its
// JSON encoding (what both implementations store) decodes to the same
// report.
//
//fuzz:budget 300000
func FuzzReport(f *testing.F) {
	good, err := json.Marshal(Report{ReceivedAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		Firmware: FirmwareVersion{Version: "1.2.3", SecurityVersion: 4},
		Slots:    []SlotReport{{Name: "A", Version: "1.2.3", SecurityVersion: 4, Booted: true, Good: true}},
		Boot:     BootState{Slot: "A", AttemptsLeft: 3}, CertNotAfter: time.Date(2030, 2, 1, 0, 0, 0, 0, time.UTC),
		Lockdown: LockdownResult{Findings: []string{"port 22 open"}}, Counters: map[string]uint64{"x": 1},
		Uptime: time.Hour})
	if err != nil {
		f.Fatalf("marshal seed: %v", err)
	}
	f.Add(good)
	f.Add([]byte(`{"received_at":"2030-01-01T00:00:00.1234567+05:00","firmware":{"version":"1"},"cert_not_after":"2031-01-01T00:00:00Z","counters":{"a":9007199254740993}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Report
		if json.Unmarshal(b, &r) != nil {
			return
		}
		r.Signed = []byte{1}
		stored, err := ValidateReport(NewDeviceID(), r)
		if err != nil {
			return
		}
		enc, err := json.Marshal(stored)
		if err != nil {
			t.Fatalf("a valid report does not encode: %v (%+v)", err, stored)
		}
		var back Report
		if err := json.Unmarshal(enc, &back); err != nil {
			t.Fatalf("the encoding of a valid report does not decode: %v\n%s", err, enc)
		}
		back.Signed = stored.Signed
		back.ReceivedAt, back.CertNotAfter = back.ReceivedAt.UTC(), back.CertNotAfter.UTC()
		if !reflect.DeepEqual(back, stored) {
			t.Fatalf("valid report changed through storage:\n got %+v\nwant %+v", back, stored)
		}
	})
}
