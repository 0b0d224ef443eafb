package api

import (
	"bytes"
	"testing"
)

// FuzzParseReport: the server parses report bodies from devices. Whatever
// parses is canonical: it marshals back to the same bytes.
//
//fuzz:budget 80000
func FuzzParseReport(f *testing.F) {
	body, err := MarshalReport(sampleReport())
	if err != nil {
		f.Fatalf("MarshalReport: %v", err)
	}
	f.Add(body)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"device_id":"x","sent_at":"2030-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReport(b)
		if err != nil {
			return
		}
		again, err := MarshalReport(r)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("ParseReport accepted %q, which marshals to %q (%v)", b, again, err)
		}
	})
}
