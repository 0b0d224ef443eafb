package server_test

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/agent/events"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/client"
	"github.com/hardphone/hardphone/test"
)

func TestMain(m *testing.M) { test.RunInNetns(m) }

// TestSecurityMonitoring runs the whole loop on each store: phones export
// their TPM-signed journals, the fleet proves and keeps them and refuses
// what it cannot prove, the anomaly detector turns a toll-fraud night and
// a scanner sweep into findings, and the responses happen for real (an
// override in the director's signed document, renewals refused, rsyslog
// and the webhook receiving the alert), across a restart.
func TestSecurityMonitoring(t *testing.T) {
	if testing.Short() {
		// 80 s on two backends (40 on bbolt alone): make test runs it.
		t.Skip("short: hpfleet, swtpm phones, rsyslog and PostgreSQL end to end; make test runs it")
	}
	for _, backend := range []string{"bbolt", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			w := newMonWorld(t, backend, 1)
			t.Run("Export", func(t *testing.T) { testExport(t, w) })
			t.Run("Refusals", func(t *testing.T) { testRefusals(t, w) })
			t.Run("Gaps", func(t *testing.T) { testGaps(t, w) })
			t.Run("TollFraud", func(t *testing.T) { testTollFraud(t, w) })
			t.Run("ScannerSweep", func(t *testing.T) { testScannerSweep(t, w) })
			t.Run("Restart", func(t *testing.T) { testRestart(t, w) })
		})
	}
}

// quiet is an event no rule reads.
func quiet(i int) events.Event {
	return events.Event{Kind: events.KindDialRefused, Account: "line1",
		Detail: events.Detail{"reason": "premium", "number": fmt.Sprintf("+4990012%04d", i)}}
}

// stream is what the fleet shows of a device's journal.
func stream(t *testing.T, w *monWorld, id string) *api.DeviceEvents {
	t.Helper()
	var out *api.DeviceEvents
	for after := ""; ; {
		de, err := w.admin.DeviceEvents(bg, id, after, 1000)
		if err != nil {
			t.Fatalf("DeviceEvents(%s): %v", id, err)
		}
		if out == nil {
			out = de
		} else {
			out.Records = append(out.Records, de.Records...)
		}
		if after = de.Next; after == "" {
			return out
		}
	}
}

// testExport: a journal goes over whole, record for record, and again
// only what is new.
func testExport(t *testing.T, w *monWorld) {
	p := w.newPhone(t, "EXP-1")
	var evs []events.Event
	for i := range 20 {
		evs = append(evs, quiet(i))
	}
	p.record(evs...)
	if n := p.push(); n != int(p.j.Stats().Head) {
		t.Fatalf("first push stored %d records, the journal holds %d", n, p.j.Stats().Head)
	}
	check := func() {
		t.Helper()
		st := p.j.Stats()
		de := stream(t, w, p.id)
		if de.Head != st.Head || de.HeadHash != hex.EncodeToString(st.HeadHash[:]) || de.LastSigned != st.Head ||
			de.Received != st.Head || len(de.Gaps) != 0 || de.Chain != hex.EncodeToString(st.Chain[:]) {
			t.Fatalf("fleet's stream = head %d %s signed %d received %d gaps %v, phone's head %d %x",
				de.Head, de.HeadHash, de.LastSigned, de.Received, de.Gaps, st.Head, st.HeadHash)
		}
		local, err := p.j.List(1, 1000)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(de.Records) != len(local) {
			t.Fatalf("fleet holds %d records, the phone %d", len(de.Records), len(local))
		}
		for i, r := range de.Records {
			if r.Seq != local[i].Seq || r.Hash != hex.EncodeToString(local[i].Hash[:]) {
				t.Fatalf("fleet's record %d = seq %d hash %s, phone's seq %d hash %x", i, r.Seq, r.Hash, local[i].Seq, local[i].Hash)
			}
		}
		if de.Records[1].Type != "event" || de.Records[1].Kind != string(events.KindDialRefused) || de.Records[1].Account != "line1" {
			t.Fatalf("fleet's record 2 = %+v, want the dial_refused event", de.Records[1])
		}
	}
	check()
	if n := p.push(); n != 0 {
		t.Fatalf("a push with nothing new stored %d records", n)
	}
	p.record(quiet(100), quiet(101), quiet(102))
	head := p.j.Stats().Head
	if n := p.push(); n < 3 {
		t.Fatalf("second push stored %d records, want the 3 events and their checkpoint", n)
	}
	check()
	// The fleet's cursor is the resume point of a phone that lost its own.
	ack, err := p.fc.EventCursor(bg)
	if err != nil || ack.Seq < head {
		t.Fatalf("EventCursor = %+v, %v; want at least seq %d", ack, err, head)
	}
}

// testRefusals: batches the fleet cannot prove or already holds change
// nothing.
func testRefusals(t *testing.T, w *monWorld) {
	b := w.newPhone(t, "REF-B")
	c := w.newPhone(t, "REF-C")
	b.record(quiet(1), quiet(2), quiet(3))
	b.push()
	before := stream(t, w, b.id)
	unchanged := func(what string) {
		t.Helper()
		after := stream(t, w, b.id)
		if after.Head != before.Head || after.Received != before.Received || len(after.Records) != len(before.Records) || len(after.Gaps) != 0 {
			t.Fatalf("%s changed the fleet's copy: head %d→%d, received %d→%d, records %d→%d, gaps %v",
				what, before.Head, after.Head, before.Received, after.Received, len(before.Records), len(after.Records), after.Gaps)
		}
	}
	// An event record edited on the way: its hash no longer chains.
	all := b.raws(1, 1000)
	tampered := make([][]byte, len(all))
	for i, r := range all {
		tampered[i] = bytes.Clone(r)
	}
	tampered[2][len(tampered[2])-1] ^= 0x01
	_, err := b.fc.PushEvents(bg, api.EventBatch{Records: tampered})
	wantCode(t, "PushEvents(tampered)", err, api.CodeBadRequest)
	unchanged("a tampered batch")
	// The same batch again: a replay.
	_, err = b.fc.PushEvents(bg, api.EventBatch{Records: all})
	wantCode(t, "PushEvents(replayed)", err, api.CodeConflict)
	unchanged("a replayed batch")
	// Phone C sends phone B's journal: not signed by C's identity key.
	_, err = c.fc.PushEvents(bg, api.EventBatch{Records: all})
	wantCode(t, "PushEvents(another device's journal)", err, api.CodeBadRequest)
	if de := stream(t, w, c.id); len(de.Records) != 0 || de.Head != 0 {
		t.Fatalf("a foreign journal was stored for C: %+v", de)
	}
	// New records that no signature covers yet.
	if _, err := b.j.Append(quiet(4)); err != nil {
		t.Fatalf("Append: %v", err)
	}
	tail := b.raws(before.Head+1, 100)
	if last := tail[len(tail)-1]; len(last) < 34 || events.RecordType(last[33]) != events.RecordEvent {
		t.Fatalf("the tail should end in an unsigned event")
	}
	_, err = b.fc.PushEvents(bg, api.EventBatch{Records: tail})
	wantCode(t, "PushEvents(unsigned end)", err, api.CodeBadRequest)
	unchanged("an unsigned batch")
	// A flood of batches from one phone: the per-device limit answers
	// 429 and keeps the rest out.
	limited := false
	for i := range 40 {
		_, err := c.fc.PushEvents(bg, api.EventBatch{Calls: []api.CallRecord{{Seq: uint64(i + 1), Start: time.Now().Add(-time.Minute),
			Direction: "in", Number: "1002"}}})
		if err != nil {
			wantCode(t, "PushEvents(flood)", err, api.CodeLimit)
			limited = true
			break
		}
	}
	if !limited {
		t.Fatalf("40 batches in a row from one phone were all taken; want 429 past the burst")
	}
}

// testGaps: what the phone never sent shows on the fleet, and a signed
// truncation record of the phone explains it; a new journal shows as
// replaced.
func testGaps(t *testing.T, w *monWorld) {
	// Records skipped (deleted on the phone before export): missing.
	e := w.newPhone(t, "GAP-E")
	e.record(quiet(1))
	e.push()
	head := e.j.Stats().Head
	for i := range 10 {
		if _, err := e.j.Append(quiet(10 + i)); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	if _, err := e.j.Checkpoint(); err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	run := e.raws(head+4, 1000)
	ack, err := e.fc.PushEvents(bg, api.EventBatch{Records: run})
	if err != nil || ack.Gaps != 1 {
		t.Fatalf("PushEvents(after a hole) = %+v, %v; want one gap", ack, err)
	}
	de := stream(t, w, e.id)
	if len(de.Gaps) != 1 || de.Gaps[0].Kind != "missing" || de.Gaps[0].From != head+1 || de.Gaps[0].To != head+3 {
		t.Fatalf("gaps = %+v, want records %d..%d missing", de.Gaps, head+1, head+3)
	}
	// The exporter, behind, is told it is replaying and resumes from the
	// fleet's cursor.
	if _, err := e.exp.PushOnce(bg); err == nil {
		t.Fatalf("PushOnce behind the fleet = nil, want the fleet's refusal")
	}
	e.push()

	// The journal dropped records before they were exported: the signed
	// truncation record explains the hole.
	f := w.newPhone(t, "GAP-F", events.WithMaxBytes(events.MinMaxBytes))
	f.push()
	for n := 0; f.j.Stats().First == 1; n++ {
		var batch []events.Event
		for i := range 100 {
			batch = append(batch, quiet(n*100+i))
		}
		if _, err := f.j.Append(batch...); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	first := f.j.Stats().First
	for f.push() > 0 {
	}
	de = stream(t, w, f.id)
	if len(de.Gaps) != 1 || de.Gaps[0].Kind != "truncated" || de.Gaps[0].From != 2 || de.Gaps[0].To != first-1 {
		t.Fatalf("gaps = %+v, want records 2..%d truncated by the phone", de.Gaps, first-1)
	}
	if de.Head != f.j.Stats().Head {
		t.Fatalf("fleet's head %d, phone's %d", de.Head, f.j.Stats().Head)
	}

	// The journal is damaged beyond continuing: the phone starts a new
	// one, the fleet shows the old one replaced.
	g := w.newPhone(t, "GAP-G")
	g.record(quiet(1))
	g.push()
	old := g.j.Stats().Chain
	if err := g.j.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := g.db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("events")).DeleteBucket([]byte("records")) }); err != nil {
		t.Fatalf("delete the journal's records: %v", err)
	}
	g.open()
	if g.j.Stats().Chain == old {
		t.Fatalf("a journal without records was continued")
	}
	g.push()
	de = stream(t, w, g.id)
	if de.Replaced != 1 || len(de.Gaps) != 1 || de.Gaps[0].Kind != "replaced" || de.Gaps[0].OldChain != hex.EncodeToString(old[:]) {
		t.Fatalf("after a new journal: replaced %d gaps %+v, want the old chain %x replaced", de.Replaced, de.Gaps, old)
	}
	if !slices.ContainsFunc(de.Records, func(r api.EventRecord) bool { return r.Kind == string(events.KindJournalReset) }) {
		t.Fatalf("the new journal's reset event is not on the fleet")
	}
}

// dialing is the [account.dialing] of the device's published document.
func dialing(t *testing.T, w *monWorld, id string) (allow []string, international *bool) {
	t.Helper()
	st, err := w.admin.Provision(bg, id)
	if err != nil {
		t.Fatalf("Provision(%s): %v", id, err)
	}
	var doc struct {
		Account []struct {
			Dialing *struct {
				Allow         []string `toml:"allow"`
				International *bool    `toml:"international"`
			} `toml:"dialing"`
		} `toml:"account"`
	}
	if _, err := toml.Decode(st.Config, &doc); err != nil {
		t.Fatalf("published document does not parse: %v\n%s", err, st.Config)
	}
	if len(doc.Account) != 1 {
		t.Fatalf("published document has %d accounts, want 1:\n%s", len(doc.Account), st.Config)
	}
	if d := doc.Account[0].Dialing; d != nil {
		return d.Allow, d.International
	}
	return nil, nil
}

// testTollFraud: a compromised account dials premium numbers at night;
// the phone refuses some (dial_refused), the calls that went through are
// reported. The fleet flags it, pushes an outbound block through the
// director, refuses the phone's renewal, alerts, and ends the block on
// time.
func testTollFraud(t *testing.T, w *monWorld) {
	p := w.newPhone(t, "FRAUD-1")
	if allow, _ := dialing(t, w, p.id); allow != nil {
		t.Fatalf("before any finding the document has a dialling allow list %v", allow)
	}
	night := time.Now().Add(-90 * time.Second)
	p.record(quiet(1), quiet(2), quiet(3))
	p.calls.add(api.CallRecord{Start: night, Direction: "out", Number: "+4990012345678", DurationSeconds: 900, Answered: true})
	p.calls.add(api.CallRecord{Start: night.Add(20 * time.Second), Direction: "out", Number: "+88213001234", DurationSeconds: 600, Answered: true})
	p.push()
	f := w.waitFinding(t, "call.premium", func(f api.Finding) bool {
		return slices.Contains(f.Devices, p.id) && !slices.ContainsFunc(f.Responses, func(r api.FindingResponse) bool { return r.Outcome == "pending" })
	})
	for _, r := range f.Responses {
		if r.Outcome != "done" {
			t.Fatalf("response %s of finding %d: %s (%s), want done", r.Kind, f.ID, r.Outcome, r.Detail)
		}
	}
	if kinds := responseKinds(f); !slices.Equal(kinds, []string{"alert", "block_outbound", "quarantine"}) {
		t.Fatalf("finding %d responses %v, want alert, block and quarantine", f.ID, kinds)
	}
	// The block is in the document the director signed for the phone.
	allow, intl := dialing(t, w, p.id)
	if !slices.Equal(allow, []string{"112", "911"}) || intl == nil || *intl {
		t.Fatalf("published dialling policy allow=%v international=%v, want only 112 and 911, no international", allow, intl)
	}
	// Quarantined: the renewal is refused.
	csr, err := p.cs.CreateCSR(&x509.CertificateRequest{})
	if err != nil {
		t.Fatalf("CreateCSR: %v", err)
	}
	_, err = p.fc.Renew(bg, csr)
	wantCode(t, "Renew(quarantined)", err, api.CodePosture)
	if !strings.Contains(err.Error(), "quarantined") {
		t.Fatalf("Renew refusal %q does not say quarantined", err)
	}
	// Both sinks have the alert.
	w.rsys.WaitLines(t, 30*time.Second, func(lines []string) bool {
		return slices.ContainsFunc(lines, func(l string) bool {
			return strings.Contains(l, "anomaly.call.premium") && strings.Contains(l, p.id)
		})
	})
	eventually(t, 30*time.Second, "webhook call.premium", func() error {
		for _, g := range w.hook.findings() {
			if g.Rule == "call.premium" && slices.Contains(g.Devices, p.id) {
				return nil
			}
		}
		return fmt.Errorf("%d findings received", len(w.hook.findings()))
	})
	// The block ends at its time (25 s after the call); the quarantine
	// stays until lifted.
	eventually(t, 60*time.Second, "block ended", func() error {
		if allow, _ := dialing(t, w, p.id); allow != nil {
			return fmt.Errorf("allow list still %v", allow)
		}
		return nil
	})
	pg, err := w.admin.Findings(bg, client.FindingQuery{DeviceID: p.id, Limit: 100})
	if err != nil {
		t.Fatalf("Findings: %v", err)
	}
	if kinds := activeKinds(pg.Active, p.id); !slices.Equal(kinds, []string{"quarantine"}) {
		t.Fatalf("active responses of %s after the block ended: %v, want the quarantine only", p.id, kinds)
	}
	if _, err := w.admin.Lift(bg, p.id, "quarantine"); err != nil {
		t.Fatalf("Lift: %v", err)
	}
	if _, err := p.fc.Renew(bg, csr); err != nil {
		t.Fatalf("Renew after the quarantine was lifted: %v", err)
	}
}

func responseKinds(f api.Finding) []string {
	var out []string
	for _, r := range f.Responses {
		out = append(out, r.Kind)
	}
	slices.Sort(out)
	return out
}

func activeKinds(rs []api.ActiveResponse, id string) []string {
	var out []string
	for _, r := range rs {
		if r.DeviceID == id {
			out = append(out, r.Kind)
		}
	}
	slices.Sort(out)
	return out
}

// testScannerSweep: one address probes six phones; each phone's journal
// says so; the fleet correlates them into one fleet.probe finding, sent
// to rsyslog and the webhook.
func testScannerSweep(t *testing.T, w *monWorld) {
	scanner := netip.MustParseAddrPort("203.0.113.9:5060")
	var ids []string
	for i := range 6 {
		p := w.newPhone(t, fmt.Sprintf("SWEEP-%d", i))
		p.record(events.Event{Kind: events.KindScanner, Account: "line1", Peer: scanner,
			Detail: events.Detail{"user_agent": "friendly-scanner", "method": "OPTIONS"}})
		p.push()
		ids = append(ids, p.id)
	}
	f := w.waitFinding(t, "fleet.probe", func(f api.Finding) bool {
		return f.Source == "203.0.113.0/24" && len(f.Devices) >= 5 && f.Responses[0].Outcome != "pending"
	})
	for _, d := range f.Devices {
		if !slices.Contains(ids, d) {
			t.Fatalf("fleet.probe names %s, not one of the swept phones", d)
		}
	}
	if f.Responses[0].Kind != "alert" || f.Responses[0].Outcome != "done" {
		t.Fatalf("fleet.probe alert: %+v", f.Responses)
	}
	lines := w.rsys.WaitLines(t, 30*time.Second, func(lines []string) bool {
		return slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "anomaly.fleet.probe") })
	})
	for _, l := range lines {
		if strings.Contains(l, "anomaly.fleet.probe") && (!strings.Contains(l, `source="203.0.113.0/24"`) || !strings.Contains(l, "hpfleet-test")) {
			t.Fatalf("rsyslog line %q lacks the source network or the host", l)
		}
	}
	eventually(t, 30*time.Second, "webhook fleet.probe", func() error {
		for _, g := range w.hook.findings() {
			if g.Rule == "fleet.probe" && g.Source.String() == "203.0.113.0/24" && len(g.Devices) >= 5 {
				return nil
			}
		}
		return fmt.Errorf("%d findings received", len(w.hook.findings()))
	})
	w.hook.mu.Lock()
	bad := w.hook.bad
	w.hook.mu.Unlock()
	if bad != 0 {
		t.Fatalf("the webhook received %d POSTs with a bad signature", bad)
	}
}

// sweep has phones report a scanner at addr and push (through their
// current clients).
func sweep(t *testing.T, phones []*monPhone, addr string) {
	t.Helper()
	peer := netip.MustParseAddrPort(addr)
	for _, p := range phones {
		p.fc.CloseIdleConnections()
		p.record(events.Event{Kind: events.KindScanner, Account: "line1", Peer: peer,
			Detail: events.Detail{"user_agent": "friendly-scanner", "method": "INVITE"}})
		p.push()
	}
}

func newestFinding(t *testing.T, w *monWorld) uint64 {
	t.Helper()
	pg, err := w.admin.Findings(bg, client.FindingQuery{Limit: 1})
	if err != nil || len(pg.Findings) == 0 {
		t.Fatalf("Findings = %+v, %v; want at least one", pg, err)
	}
	return pg.Findings[0].ID
}

func metric(t *testing.T, w *monWorld, h *test.HPFleet, name string) uint64 {
	t.Helper()
	c := w.adminOf(h)
	m, err := c.Metrics(bg)
	if err != nil {
		t.Fatalf("Metrics: %v", err)
	}
	return m.Counters[name]
}

// testRestart: killed (no graceful stop) and started again, hpfleet
// restores the detector's state from the store: its finding numbers go on
// and what it learnt stays.
func testRestart(t *testing.T, w *monWorld) {
	var phones []*monPhone
	for i := range 5 {
		phones = append(phones, w.newPhone(t, fmt.Sprintf("RESTART-%d", i)))
	}
	before := newestFinding(t, w)
	h := w.fleets[w.live]
	eventually(t, 10*time.Second, "state saved", func() error {
		if metric(t, w, h, "anomaly_state_saved") == 0 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	h.Kill(t)
	h.Restart(t)
	w.admin.CloseIdleConnections()
	sweep(t, phones, "198.51.100.7:5060")
	f := w.waitFinding(t, "fleet.probe", func(f api.Finding) bool { return f.Source == "198.51.100.0/24" })
	if f.ID <= before {
		t.Fatalf("finding after the restart has ID %d, the last before it %d: the detector's state was not restored", f.ID, before)
	}
	if got := newestFinding(t, w); got < before {
		t.Fatalf("findings before the restart are gone")
	}
}

// TestAnomalyLeader: two hpfleet replicas on one PostgreSQL database. One
// holds the detector's lease; phones export through the other, and the
// leader finds what they report (the observation log is shared). The
// leader is killed; the other takes the lease, restores the state, and
// goes on finding, its finding numbers after the dead leader's.
func TestAnomalyLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("short: real servers end to end; make test runs it")
	}
	w := newMonWorld(t, "postgres", 2)
	leader := -1
	eventually(t, 20*time.Second, "one leader", func() error {
		leader = -1
		for i, h := range w.fleets {
			if metric(t, w, h, "anomaly_lead") > 0 {
				if leader >= 0 {
					t.Fatalf("replicas %d and %d both lead", leader, i)
				}
				leader = i
			}
		}
		if leader < 0 {
			return fmt.Errorf("no replica leads yet")
		}
		return nil
	})
	standby := 1 - leader
	w.live = standby
	w.admin = w.adminOf(w.fleets[standby])
	var phones []*monPhone
	for i := range 5 {
		phones = append(phones, w.newPhone(t, fmt.Sprintf("LEAD-%d", i)))
	}
	sweep(t, phones, "203.0.113.50:5060")
	first := w.waitFinding(t, "fleet.probe", func(f api.Finding) bool { return f.Source == "203.0.113.0/24" })
	eventually(t, 10*time.Second, "state saved by the leader", func() error {
		if metric(t, w, w.fleets[leader], "anomaly_state_saved") == 0 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if n := metric(t, w, w.fleets[standby], "anomaly_lead"); n != 0 {
		t.Fatalf("the standby led %d times while the leader ran", n)
	}

	w.fleets[leader].Kill(t)
	eventually(t, 30*time.Second, "the standby takes the lease", func() error {
		if metric(t, w, w.fleets[standby], "anomaly_lead") == 0 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	sweep(t, phones, "198.51.100.50:5060")
	second := w.waitFinding(t, "fleet.probe", func(f api.Finding) bool { return f.Source == "198.51.100.0/24" })
	if second.ID <= first.ID {
		t.Fatalf("the new leader's finding is %d, the old leader's %d: the state was not taken over", second.ID, first.ID)
	}
	// Back, the killed replica stands by.
	w.fleets[leader].Restart(t)
	if n := metric(t, w, w.fleets[leader], "anomaly_lead"); n != 0 {
		t.Fatalf("the restarted replica leads (%d) while the other holds the lease", n)
	}
}
