package events

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestRecordJSON(t *testing.T) {
	db, key, clk := newDB(t), newKey(t), newClock()
	j := openJournal(t, db, key, clk)
	ev := testEvent(1)
	ev.Detail["uri"] = "sip:\x1b[2Jx@example.com"
	if _, err := j.Append(ev); err != nil {
		t.Fatalf("Append = %v", err)
	}
	if _, err := j.Checkpoint(); err != nil {
		t.Fatalf("Checkpoint = %v", err)
	}
	recs, err := j.List(1, 10)
	if err != nil || len(recs) != 3 {
		t.Fatalf("List = %d records, %v; want genesis, event, checkpoint", len(recs), err)
	}
	var got []map[string]any
	for _, r := range recs {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("Marshal(record %d) = %v", r.Seq, err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("Unmarshal(%s) = %v", b, err)
		}
		got = append(got, m)
	}
	e := got[1]["event"].(map[string]any)
	checks := []struct {
		what string
		got  any
		want any
	}{
		{"genesis type", got[0]["type"], "genesis"},
		{"event type", got[1]["type"], "event"},
		{"time", got[1]["time"], "2025-03-01T12:00:00.000000Z"},
		{"kind", e["kind"], "sip.scanner"},
		{"severity", e["severity"], "warning"},
		{"severity_code", e["severity_code"], 4.0},
		{"peer", e["peer"], "192.0.2.1:5060"},
		{"uri", e["detail"].(map[string]any)["uri"], "sip:\uFFFD[2Jx@example.com"},
		{"checkpoint reason", got[2]["signed"].(map[string]any)["reason"], "asked"},
		{"prev links", got[2]["prev"], got[1]["hash"]},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("JSON %s = %v, want %v", c.what, c.got, c.want)
		}
	}
	if s := recs[1].String(); !strings.Contains(s, `warning sip.scanner account="alice" peer=192.0.2.1:5060`) || strings.ContainsRune(s, 0x1b) {
		t.Errorf("String() = %q", s)
	}
}
