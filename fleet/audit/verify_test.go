package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/audit/audittest"
	"github.com/hardphone/hardphone/fleet/audit/boltaudit"
)

var ctx = context.Background()

const origin = "audit.test/fleet"

// scenario is a log of 20 entries with checkpoints at 8 and 20, exported.
type scenario struct {
	key   *audit.Key
	log   *audit.Log
	lines []string // the export: header, cp8, cp20, entries 0..19
	cp8   []byte
	cp20  []byte
}

const firstEntryLine = 3

func newLog(t *testing.T, key *audit.Key) *audit.Log {
	t.Helper()
	st, err := boltaudit.Open(t.TempDir())
	if err != nil {
		t.Fatalf("boltaudit.Open error %v", err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	l, err := audit.New(st, key, audit.WithClock(func() time.Time { now = now.Add(time.Second); return now }))
	if err != nil {
		t.Fatalf("audit.New error %v", err)
	}
	return l
}

func build(t *testing.T, key *audit.Key, edit func(i int, e *audit.Entry)) *scenario {
	t.Helper()
	s := &scenario{key: key, log: newLog(t, key)}
	for i := 0; i < 20; i++ {
		e := audittest.SampleEntry(i)
		if edit != nil {
			edit(i, &e)
		}
		if _, err := s.log.Append(ctx, e); err != nil {
			t.Fatalf("Append error %v", err)
		}
		if i == 7 {
			cp, err := s.log.Checkpoint(ctx)
			if err != nil {
				t.Fatalf("Checkpoint error %v", err)
			}
			s.cp8 = cp.Note
		}
	}
	cp, err := s.log.Checkpoint(ctx)
	if err != nil {
		t.Fatalf("Checkpoint error %v", err)
	}
	s.cp20 = cp.Note
	var buf bytes.Buffer
	if err := s.log.Export(ctx, &buf); err != nil {
		t.Fatalf("Export error %v", err)
	}
	s.lines = strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(s.lines) != firstEntryLine+20 {
		t.Fatalf("export of %d lines, want %d", len(s.lines), firstEntryLine+20)
	}
	return s
}

func verify(t *testing.T, lines []string, trust *audit.Trust, opts ...audit.VerifyOption) *audit.Report {
	t.Helper()
	rep, err := audit.Verify(strings.NewReader(strings.Join(lines, "\n")+"\n"), trust, opts...)
	if err != nil {
		t.Fatalf("Verify error %v", err)
	}
	return rep
}

// entryLine returns entry i's line as a map, for edits.
func entryLine(t *testing.T, line string) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("export line %q: %v", line, err)
	}
	return m
}

func marshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func clone(lines []string) []string { return append([]string(nil), lines...) }

// problems renders a report's problems as "kind first..last" strings.
func problems(r *audit.Report) []string {
	var out []string
	for _, p := range r.Problems {
		out = append(out, fmt.Sprintf("%s %d..%d", p.Kind, p.Index, p.Last))
	}
	return out
}

func TestVerifyClean(t *testing.T) {
	s := build(t, audittest.NewKey(t, origin), nil)
	rep := verify(t, s.lines, s.key.Trust())
	if !rep.OK() || rep.Entries != 20 || !rep.Consistent(8, 20) || rep.Unsigned != 0 || len(rep.Checkpoints) != 2 {
		t.Fatalf("Verify(clean) = %+v, want OK with checkpoints 8 and 20 consistent", rep)
	}
	if !strings.HasPrefix(strings.Split(rep.Text(), "\n")[1], "OK") {
		t.Fatalf("Report.Text() = %q, want OK on its second line", rep.Text())
	}
}

// TestVerifyTampering edits the export the ways an attacker without the
// log key can, and checks Verify names exactly what was done.
func TestVerifyTampering(t *testing.T) {
	s := build(t, audittest.NewKey(t, origin), nil)
	e := func(i int) int { return firstEntryLine + i }
	tests := []struct {
		name string
		edit func(lines []string) []string
		opts []audit.VerifyOption
		want []string
	}{
		{"readable entry edited", func(l []string) []string {
			m := entryLine(t, l[e(5)])
			var en audit.Entry
			json.Unmarshal(m["entry"], &en)
			en.Target = "rollout/other"
			m["entry"] = json.RawMessage(marshal(t, en))
			l[e(5)] = marshal(t, m)
			return l
		}, nil, []string{"edited 5..5"}},
		{"sealed data edited", func(l []string) []string {
			m := entryLine(t, l[e(5)])
			var en audit.Entry
			json.Unmarshal(m["entry"], &en)
			en.Outcome = audit.OutcomeDenied
			data, _ := en.Encode()
			m["data"] = json.RawMessage(marshal(t, data))
			m["entry"] = json.RawMessage(marshal(t, en))
			l[e(5)] = marshal(t, m)
			return l
		}, nil, []string{"edited 5..5"}},
		{"data garbled", func(l []string) []string {
			m := entryLine(t, l[e(11)])
			m["data"] = json.RawMessage(`"AAAA"`)
			delete(m, "entry")
			l[e(11)] = marshal(t, m)
			return l
		}, nil, []string{"edited 11..11"}},
		{"seal of another entry", func(l []string) []string {
			m5, m6 := entryLine(t, l[e(5)]), entryLine(t, l[e(6)])
			m5["seal"] = m6["seal"]
			l[e(5)] = marshal(t, m5)
			return l
		}, nil, []string{"edited 5..5"}},
		{"entry deleted", func(l []string) []string {
			return append(l[:e(7)], l[e(8):]...)
		}, nil, []string{"deleted 7..7"}},
		{"three entries deleted", func(l []string) []string {
			return append(l[:e(12)], l[e(15):]...)
		}, nil, []string{"deleted 12..14"}},
		{"first entry deleted", func(l []string) []string {
			return append(l[:e(0)], l[e(1):]...)
		}, nil, []string{"deleted 0..0"}},
		{"entries swapped", func(l []string) []string {
			l[e(3)], l[e(4)] = l[e(4)], l[e(3)]
			return l
		}, nil, []string{"reordered 3..3"}},
		{"entry moved to the end", func(l []string) []string {
			moved := l[e(2)]
			l = append(l[:e(2)], l[e(3):]...)
			return append(l, moved)
		}, nil, []string{"reordered 2..2"}},
		{"entry duplicated", func(l []string) []string {
			l = append(l[:e(10)], append([]string{l[e(9)]}, l[e(10):]...)...)
			return l
		}, nil, []string{"duplicated 9..9"}},
		{"tail truncated", func(l []string) []string {
			return l[:e(15)]
		}, nil, []string{"truncated 15..19"}},
		{"tail truncated, checkpoint and header size rewritten, outside copy kept", func(l []string) []string {
			l = l[:e(15)]
			h := entryLine(t, l[0])
			h["size"] = json.RawMessage("15")
			l[0] = marshal(t, h)
			return append(l[:2], l[3:]...) // drop the checkpoint of 20
		}, []audit.VerifyOption{audit.WithOutsideCheckpoints(s.cp20)}, []string{"truncated 15..19"}},
		{"garbage line among the entries", func(l []string) []string {
			return append(l[:e(4)], append([]string{"{not json"}, l[e(4):]...)...)
		}, nil, []string{"malformed -1..-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := verify(t, tt.edit(clone(s.lines)), s.key.Trust(), tt.opts...)
			got := problems(rep)
			if !strings.Contains(rep.Text(), "TAMPERED") {
				t.Errorf("Report.Text() = %q, want TAMPERED", rep.Text())
			}
			if strings.Join(got, "; ") != strings.Join(tt.want, "; ") {
				t.Fatalf("Verify(%s) problems = %q, want %q\n%+v", tt.name, got, tt.want, rep.Problems)
			}
		})
	}
	// The truncation an outside copy reveals passes without it: that is
	// what the syslog export is for.
	t.Run("truncation without the outside copy", func(t *testing.T) {
		l := clone(s.lines)[:e(15)]
		h := entryLine(t, l[0])
		h["size"] = json.RawMessage("15")
		l[0] = marshal(t, h)
		l = append(l[:2], l[3:]...)
		if rep := verify(t, l, s.key.Trust()); !rep.OK() || rep.Unsigned != 7 {
			t.Fatalf("Verify(cut at 15, no checkpoint beyond) = %+v, want OK with 7 unsigned entries", rep)
		}
	})
}

// TestVerifyCheckpoints: forged checkpoints are refused and named; a key
// that signs two histories is caught against an outside copy.
func TestVerifyCheckpoints(t *testing.T) {
	key := audittest.NewKey(t, origin)
	s := build(t, key, nil)
	forger := audittest.NewKey(t, origin) // same name, other key
	f := build(t, forger, nil)
	otherLog := audittest.NewKey(t, "audit.test/other")
	o := build(t, otherLog, nil)
	both, err := audit.NewTrust(key.VerifierKey(), otherLog.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}

	t.Run("checkpoint signed by another key", func(t *testing.T) {
		l := clone(s.lines)
		l = append(l[:3], append([]string{marshal(t, map[string]string{"type": "checkpoint", "note": string(f.cp20)})}, l[3:]...)...)
		rep := verify(t, l, key.Trust())
		if got := problems(rep); strings.Join(got, ";") != "forged_checkpoint -1..-1" {
			t.Fatalf("Verify(forged checkpoint) problems = %q, want one forged_checkpoint", got)
		}
		if _, err := audit.ParseCheckpoint(f.cp20, key.Trust()); err == nil {
			t.Fatalf("ParseCheckpoint(forged) succeeded")
		}
	})
	t.Run("signature bytes altered", func(t *testing.T) {
		n := bytes.Clone(s.cp20)
		// A base64 character inside the Ed25519 signature (past the key
		// hash's first 4 bytes), replaced by another valid one.
		i := bytes.LastIndex(n, []byte(" ")) + 20
		if n[i] == 'A' {
			n[i] = 'B'
		} else {
			n[i] = 'A'
		}
		rep := verify(t, clone(s.lines), key.Trust(), audit.WithOutsideCheckpoints(n))
		if got := problems(rep); len(got) != 1 || !strings.HasPrefix(got[0], "forged_checkpoint") {
			t.Fatalf("Verify(altered signature) problems = %q, want one forged_checkpoint", got)
		}
	})
	t.Run("checkpoint text altered", func(t *testing.T) {
		n := bytes.Replace(bytes.Clone(s.cp20), []byte("\n20\n"), []byte("\n21\n"), 1)
		rep := verify(t, clone(s.lines), key.Trust(), audit.WithOutsideCheckpoints(n))
		if got := problems(rep); len(got) != 1 || !strings.HasPrefix(got[0], "forged_checkpoint") {
			t.Fatalf("Verify(altered size) problems = %q, want one forged_checkpoint", got)
		}
	})
	t.Run("checkpoint of another trusted log", func(t *testing.T) {
		rep := verify(t, clone(s.lines), both, audit.WithOutsideCheckpoints(o.cp20))
		if got := problems(rep); len(got) != 1 || !strings.HasPrefix(got[0], "forged_checkpoint") {
			t.Fatalf("Verify(other log's checkpoint) problems = %q, want one forged_checkpoint", got)
		}
	})
	t.Run("export of an untrusted log", func(t *testing.T) {
		if _, err := audit.Verify(strings.NewReader(strings.Join(f.lines, "\n")), otherLog.Trust()); err == nil {
			t.Fatalf("Verify(log with no trusted key) succeeded")
		}
	})
	t.Run("whole log forged with another key", func(t *testing.T) {
		rep := verify(t, clone(f.lines), key.Trust())
		var edited, forged int
		for _, p := range rep.Problems {
			switch p.Kind {
			case audit.ProblemEdited:
				edited++
			case audit.ProblemForgedCheckpoint:
				forged++
			}
		}
		if edited != 20 || forged != 2 {
			t.Fatalf("Verify(log forged with another key) = %d edited, %d forged checkpoints; want 20, 2", edited, forged)
		}
	})
	// An attacker holding the log key rewrites entry 5 and re-signs
	// everything; the collector kept the original checkpoints.
	t.Run("history rewritten with the log key", func(t *testing.T) {
		r := build(t, key, func(i int, e *audit.Entry) {
			if i == 5 {
				e.Target = "rollout/rewritten"
			}
		})
		rep := verify(t, clone(r.lines), key.Trust(), audit.WithOutsideCheckpoints(s.cp8, s.cp20))
		got := strings.Join(problems(rep), "; ")
		for _, want := range []string{"fork 7..7", "fork 19..19", "root_mismatch 0..7"} {
			if !strings.Contains(got, want) {
				t.Fatalf("Verify(rewritten with the key) problems = %q, want %q among them", got, want)
			}
		}
		// Without the outside copy the rewrite is self-consistent.
		if rep := verify(t, clone(r.lines), key.Trust()); !rep.OK() {
			t.Fatalf("Verify(rewritten, no outside copy) = %q, want OK (nothing to compare with)", problems(rep))
		}
	})
}

func TestVerifyFormat(t *testing.T) {
	key := audittest.NewKey(t, origin)
	s := build(t, key, nil)
	for _, tt := range []struct {
		name  string
		input string
	}{
		{"empty", ""},
		{"no header", strings.Join(s.lines[1:], "\n")},
		{"wrong format", `{"type":"header","format":"other","version":1,"origin":"` + origin + `","size":0}`},
		{"unknown field", `{"type":"header","format":"hardphone-audit-export","version":1,"origin":"` + origin + `","size":0,"x":1}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := audit.Verify(strings.NewReader(tt.input), key.Trust()); err == nil {
				t.Fatalf("Verify(%s) succeeded", tt.name)
			}
		})
	}
	t.Run("line too long", func(t *testing.T) {
		l := clone(s.lines)
		l = append(l, `{"type":"entry","data":"`+strings.Repeat("A", audit.MaxExportLine)+`"}`)
		rep := verify(t, l, key.Trust())
		if got := problems(rep); len(got) != 1 || !strings.HasPrefix(got[0], "malformed") {
			t.Fatalf("Verify(long line) problems = %q, want one malformed", got)
		}
	})
	t.Run("ReadExport bounds entries", func(t *testing.T) {
		if _, err := audit.ReadExport(strings.NewReader(strings.Join(s.lines, "\n")), 19); err == nil {
			t.Fatalf("ReadExport(20 entries, max 19) succeeded")
		}
		exp, err := audit.ReadExport(strings.NewReader(strings.Join(s.lines, "\n")), 20)
		if err != nil || len(exp.Entries) != 20 || len(exp.Checkpoints) != 2 {
			t.Fatalf("ReadExport = %+v, %v; want 20 entries, 2 checkpoints", exp, err)
		}
		if rep := audit.VerifyExport(exp, key.Trust()); !rep.OK() {
			t.Fatalf("VerifyExport = %q, want OK", problems(rep))
		}
	})
}
