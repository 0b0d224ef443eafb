package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/store"
)

// eventRecord is a stored-record fixture: i distinguishes its bytes.
func eventRecord(chain byte, seq uint64) store.EventRecord {
	return store.EventRecord{Chain: [16]byte{chain}, Seq: seq, Type: 1, Time: at(time.Duration(seq) * time.Second),
		Kind: "sip.scanner", Severity: 4, Raw: fmt.Appendf(nil, "record %d of chain %d", seq, chain)}
}

func eventRecords(chain byte, from, n uint64) []store.EventRecord {
	out := make([]store.EventRecord, n)
	for i := range out {
		out[i] = eventRecord(chain, from+uint64(i))
	}
	return out
}

func observation(id store.DeviceID, i int) store.AnomalyObservation {
	return store.AnomalyObservation{Device: id, At: at(time.Duration(i) * time.Second), Data: fmt.Appendf(nil, `{"type":"x","n":%d}`, i)}
}

func streamAt(head uint64, when time.Time) store.EventStream {
	return store.EventStream{Chain: [16]byte{1}, Head: head, HeadHash: [32]byte{byte(head)}, LastSigned: head, Received: head,
		Gaps: []store.EventGap{{Kind: store.GapMissing, Chain: [16]byte{1}, From: 3, To: 4, At: t0}}, UpdatedAt: when}
}

// testEvents: a device's exported journal: appended in order with
// positions, listed from a position, the stream's revision compared, the
// observations of a batch logged with it.
func testEvents(t *testing.T, b Backend) {
	s := open(t, b)
	d, _ := enrol(t, s, 1, t0)
	_, err := s.EventStream(ctx, d.ID)
	wantErr(t, "EventStream(before the first batch)", err, store.ErrNotFound)

	recs := eventRecords(1, 1, 5)
	st, err := s.AppendEvents(ctx, d.ID, store.EventAppend{Stream: streamAt(5, at(time.Minute)), Records: recs,
		Observations: []store.AnomalyObservation{observation(d.ID, 1), observation(d.ID, 2)}}, 0)
	noErr(t, "AppendEvents(first)", err)
	if st.Rev != 1 || st.Records != 5 || st.FirstPos != 1 || st.NextPos != 6 || st.Head != 5 || st.Truncated != 0 {
		t.Fatalf("AppendEvents(first) = %+v, want rev 1, 5 records at positions 1..5", st)
	}
	got, err := s.EventStream(ctx, d.ID)
	noErr(t, "EventStream", err)
	equal(t, "EventStream", got, st)

	list, err := s.ListEvents(ctx, d.ID, 0, 100)
	noErr(t, "ListEvents", err)
	for i := range recs {
		recs[i].Pos, recs[i].Time = uint64(i+1), norm(recs[i].Time)
	}
	equal(t, "ListEvents(0)", list, recs)
	list, err = s.ListEvents(ctx, d.ID, 3, 1)
	noErr(t, "ListEvents(3, 1)", err)
	equal(t, "ListEvents(3, 1)", list, recs[3:4])

	obs, err := s.ListObservations(ctx, 0, 10)
	noErr(t, "ListObservations", err)
	if len(obs) != 2 || obs[0].Seq >= obs[1].Seq || string(obs[1].Data) != string(observation(d.ID, 2).Data) || obs[0].Device != d.ID {
		t.Fatalf("ListObservations = %+v, want the batch's 2 in order", obs)
	}

	// A writer that read revision 0 loses to the one that wrote 1.
	_, err = s.AppendEvents(ctx, d.ID, store.EventAppend{Stream: streamAt(6, at(time.Hour)), Records: eventRecords(1, 6, 1),
		Observations: []store.AnomalyObservation{observation(d.ID, 3)}}, 0)
	wantErr(t, "AppendEvents(stale revision)", err, store.ErrState)
	again, err := s.EventStream(ctx, d.ID)
	noErr(t, "EventStream", err)
	equal(t, "EventStream after a refused append", again, st)
	if obs2, _ := s.ListObservations(ctx, 0, 10); len(obs2) != 2 {
		t.Fatalf("a refused append logged observations: %d, want 2", len(obs2))
	}

	st, err = s.AppendEvents(ctx, d.ID, store.EventAppend{Stream: streamAt(7, at(time.Hour)), Records: eventRecords(1, 6, 2)}, 1)
	noErr(t, "AppendEvents(second)", err)
	if st.Rev != 2 || st.Records != 7 || st.NextPos != 8 || st.Bytes <= 0 {
		t.Fatalf("AppendEvents(second) = %+v, want rev 2, 7 records", st)
	}
	// A batch with nothing new but the stream (a gap found, calls).
	st, err = s.AppendEvents(ctx, d.ID, store.EventAppend{Stream: streamAt(7, at(2*time.Hour))}, 2)
	noErr(t, "AppendEvents(no records)", err)
	if st.Rev != 3 || st.Records != 7 {
		t.Fatalf("AppendEvents(no records) = %+v, want rev 3, 7 records", st)
	}
	b.reopenCheck(t, s, func(s store.Store) {
		got, err := s.EventStream(ctx, d.ID)
		noErr(t, "EventStream after reopening", err)
		equal(t, "EventStream after reopening", got, st)
	})
}

// reopenCheck runs check on the store reopened, when the backend can.
func (b Backend) reopenCheck(t *testing.T, s store.Store, check func(store.Store)) {
	t.Helper()
	s = b.Reopen(t, s)
	t.Cleanup(func() { closeQuietly(s) })
	check(s)
}

// testEventBound: a device keeps at most MaxEventsPerDevice records; the
// oldest go, counted, positions keep counting.
func testEventBound(t *testing.T, b Backend) {
	s := open(t, b)
	d, _ := enrol(t, s, 1, t0)
	var st store.EventStream
	var err error
	seq := uint64(1)
	for st.Records+store.MaxEventAppend <= store.MaxEventsPerDevice {
		st, err = s.AppendEvents(ctx, d.ID, store.EventAppend{Stream: streamAt(seq, t0), Records: eventRecords(1, seq, store.MaxEventAppend)}, st.Rev)
		noErr(t, "AppendEvents", err)
		seq += store.MaxEventAppend
	}
	st, err = s.AppendEvents(ctx, d.ID, store.EventAppend{Stream: streamAt(seq, t0), Records: eventRecords(1, seq, store.MaxEventAppend)}, st.Rev)
	noErr(t, "AppendEvents(past the bound)", err)
	total := seq + store.MaxEventAppend - 1
	drop := total - store.MaxEventsPerDevice
	if st.Records != store.MaxEventsPerDevice || st.Truncated != drop || st.FirstPos != drop+1 || st.NextPos != total+1 {
		t.Fatalf("after %d records: %+v, want %d kept, %d truncated, first position %d", total, st, store.MaxEventsPerDevice, drop, drop+1)
	}
	list, err := s.ListEvents(ctx, d.ID, 0, 2)
	noErr(t, "ListEvents", err)
	if len(list) != 2 || list[0].Pos != drop+1 || list[0].Seq != drop+1 {
		t.Fatalf("ListEvents(0) after truncation = %+v, want the first kept record, position and seq %d", list, drop+1)
	}
	var n int
	for after := uint64(0); ; {
		page, err := s.ListEvents(ctx, d.ID, after, store.MaxPageSize)
		noErr(t, "ListEvents", err)
		if len(page) == 0 {
			break
		}
		n += len(page)
		after = page[len(page)-1].Pos
	}
	if n != store.MaxEventsPerDevice {
		t.Fatalf("%d records listed, %d stored by the stream: the deleted ones are still there", n, store.MaxEventsPerDevice)
	}
}

// testEventRefusals: malformed appends change nothing.
func testEventRefusals(t *testing.T, b Backend) {
	s := open(t, b)
	d, _ := enrol(t, s, 1, t0)
	other, _ := enrol(t, s, 2, t0)
	st, err := s.AppendEvents(ctx, d.ID, store.EventAppend{Stream: streamAt(1, t0), Records: eventRecords(1, 1, 1)}, 0)
	noErr(t, "AppendEvents", err)
	bad := func(mod func(*store.EventAppend)) store.EventAppend {
		a := store.EventAppend{Stream: streamAt(2, t0), Records: eventRecords(1, 2, 1)}
		mod(&a)
		return a
	}
	tests := []struct {
		name string
		id   store.DeviceID
		a    store.EventAppend
		want error
	}{
		{"no device", store.NewDeviceID(), bad(func(*store.EventAppend) {}), store.ErrNotFound},
		{"bad device ID", "dev-x", bad(func(*store.EventAppend) {}), store.ErrInvalid},
		{"empty record", d.ID, bad(func(a *store.EventAppend) { a.Records[0].Raw = nil }), store.ErrInvalid},
		{"huge record", d.ID, bad(func(a *store.EventAppend) { a.Records[0].Raw = make([]byte, store.MaxEventRecord+1) }), store.ErrInvalid},
		{"seq 0", d.ID, bad(func(a *store.EventAppend) { a.Records[0].Seq = 0 }), store.ErrInvalid},
		{"type 9", d.ID, bad(func(a *store.EventAppend) { a.Records[0].Type = 9 }), store.ErrInvalid},
		{"kind with a quote", d.ID, bad(func(a *store.EventAppend) { a.Records[0].Kind = `sip."x` }), store.ErrInvalid},
		{"too many records", d.ID, bad(func(a *store.EventAppend) { a.Records = eventRecords(1, 2, store.MaxEventAppend+1) }), store.ErrInvalid},
		{"gap kind", d.ID, bad(func(a *store.EventAppend) { a.Stream.Gaps[0].Kind = "lost" }), store.ErrInvalid},
		{"too many gaps", d.ID, bad(func(a *store.EventAppend) { a.Stream.Gaps = make([]store.EventGap, store.MaxEventGaps+1) }), store.ErrInvalid},
		{"observation of another device", d.ID, bad(func(a *store.EventAppend) {
			a.Observations = []store.AnomalyObservation{observation(other.ID, 1)}
		}), store.ErrInvalid},
		{"empty observation", d.ID, bad(func(a *store.EventAppend) {
			a.Observations = []store.AnomalyObservation{{Device: d.ID, At: t0}}
		}), store.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.AppendEvents(ctx, tt.id, tt.a, st.Rev)
			wantErr(t, "AppendEvents("+tt.name+")", err, tt.want)
			got, err := s.EventStream(ctx, d.ID)
			noErr(t, "EventStream", err)
			equal(t, "EventStream after "+tt.name, got, st)
			if obs, _ := s.ListObservations(ctx, 0, 10); len(obs) != 0 {
				t.Fatalf("observations logged by a refused append: %+v", obs)
			}
		})
	}
}

// testObservations: the log's seqs increase, listing starts after a
// cursor, deleting takes a prefix.
func testObservations(t *testing.T, b Backend) {
	s := open(t, b)
	d, _ := enrol(t, s, 1, t0)
	var obs []store.AnomalyObservation
	for i := range 5 {
		obs = append(obs, observation(d.ID, i))
	}
	last, err := s.AppendObservations(ctx, obs)
	noErr(t, "AppendObservations", err)
	list, err := s.ListObservations(ctx, 0, 100)
	noErr(t, "ListObservations", err)
	if len(list) != 5 || list[4].Seq != last {
		t.Fatalf("ListObservations = %+v, want 5 ending at seq %d", list, last)
	}
	for i := 1; i < len(list); i++ {
		if list[i].Seq <= list[i-1].Seq || string(list[i].Data) != string(obs[i].Data) || !list[i].At.Equal(norm(obs[i].At)) {
			t.Fatalf("ListObservations[%d] = %+v, want %+v after seq %d", i, list[i], obs[i], list[i-1].Seq)
		}
	}
	tail, err := s.ListObservations(ctx, list[2].Seq, 100)
	noErr(t, "ListObservations(after 3rd)", err)
	equal(t, "ListObservations(after 3rd)", tail, list[3:])
	n, err := s.DeleteObservations(ctx, list[1].Seq)
	noErr(t, "DeleteObservations", err)
	if n != 2 {
		t.Fatalf("DeleteObservations(2nd) = %d, want 2", n)
	}
	rest, err := s.ListObservations(ctx, 0, 100)
	noErr(t, "ListObservations", err)
	equal(t, "ListObservations after delete", rest, list[2:])
	more, err := s.AppendObservations(ctx, obs[:1])
	noErr(t, "AppendObservations", err)
	if more <= last {
		t.Fatalf("AppendObservations after deleting = seq %d, want after %d (seqs are never reused)", more, last)
	}
	_, err = s.AppendObservations(ctx, []store.AnomalyObservation{observation(store.NewDeviceID(), 1)})
	wantErr(t, "AppendObservations(no device)", err, store.ErrNotFound)
	_, err = s.AppendObservations(ctx, make([]store.AnomalyObservation, store.MaxObservationAppend+1))
	wantErr(t, "AppendObservations(too many)", err, store.ErrInvalid)
	_, err = s.ListObservations(ctx, 0, 0)
	wantErr(t, "ListObservations(limit 0)", err, store.ErrInvalid)
}

// testConcurrentObservations: appends from many writers (replicas) each
// land once, with distinct increasing seqs.
func testConcurrentObservations(t *testing.T, b Backend) {
	s := open(t, b)
	d, _ := enrol(t, s, 1, t0)
	const n, each = 8, 20
	stores := replicas(t, b, s, n)
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := stores[w].AppendObservations(ctx, []store.AnomalyObservation{observation(d.ID, w*1000+i)}); err != nil {
					t.Errorf("AppendObservations(writer %d) error %v", w, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	list, err := s.ListObservations(ctx, 0, store.MaxPageSize)
	noErr(t, "ListObservations", err)
	if len(list) != n*each {
		t.Fatalf("ListObservations = %d entries, want %d", len(list), n*each)
	}
	seen := map[string]bool{}
	for i, o := range list {
		if i > 0 && o.Seq <= list[i-1].Seq {
			t.Fatalf("seq %d after %d", o.Seq, list[i-1].Seq)
		}
		seen[string(o.Data)] = true
	}
	if len(seen) != n*each {
		t.Fatalf("%d distinct observations, want %d", len(seen), n*each)
	}
}

// testConcurrentEvents: replicas appending to one device from the same
// revision: exactly one wins.
func testConcurrentEvents(t *testing.T, b Backend) {
	s := open(t, b)
	d, _ := enrol(t, s, 1, t0)
	const n = 8
	stores := replicas(t, b, s, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, lost := 0, 0
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := stores[i].AppendEvents(ctx, d.ID, store.EventAppend{Stream: streamAt(3, t0), Records: eventRecords(byte(i), 1, 3)}, 0)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, store.ErrState):
				lost++
			default:
				t.Errorf("AppendEvents(writer %d) error %v", i, err)
			}
		}()
	}
	wg.Wait()
	if won != 1 || lost != n-1 {
		t.Fatalf("%d writers of a first batch: %d won, %d refused; want 1 and %d", n, won, lost, n-1)
	}
	list, err := s.ListEvents(ctx, d.ID, 0, 100)
	noErr(t, "ListEvents", err)
	if len(list) != 3 {
		t.Fatalf("ListEvents after the race = %d records, want the winner's 3", len(list))
	}
}

func finding(id uint64, rule string, devs ...store.DeviceID) store.AnomalyFinding {
	return store.AnomalyFinding{ID: id, Time: at(time.Duration(id) * time.Minute), Rule: rule, Severity: 4, Devices: devs,
		Data: fmt.Appendf(nil, `{"id":%d,"rule":%q}`, id, rule)}
}

// testFindings: stored by ID (replaced when made again), listed newest
// first in pages, filtered by device and rule.
func testFindings(t *testing.T, b Backend) {
	s := open(t, b)
	d1, _ := enrol(t, s, 1, t0)
	d2, _ := enrol(t, s, 2, t0)
	var want []store.AnomalyFinding
	for i := uint64(1); i <= 9; i++ {
		f := finding(i, "call.premium", d1.ID)
		switch {
		case i%3 == 0:
			f = finding(i, "fleet.probe", d1.ID, d2.ID)
		case i%2 == 0:
			f = finding(i, "reg.hijack", d2.ID)
		}
		noErr(t, "PutAnomalyFinding", s.PutAnomalyFinding(ctx, f))
		f.Time = norm(f.Time)
		want = append(want, f)
	}
	// Made again (a replayed observation): replaced, not added.
	again := finding(4, "reg.hijack", d2.ID)
	again.Data = []byte(`{"id":4,"again":true}`)
	noErr(t, "PutAnomalyFinding(again)", s.PutAnomalyFinding(ctx, again))
	again.Time = norm(again.Time)
	want[3] = again
	slices.Reverse(want)

	var all []store.AnomalyFinding
	for q := (store.FindingQuery{Limit: 4}); ; {
		page, err := s.ListAnomalyFindings(ctx, q)
		noErr(t, "ListAnomalyFindings", err)
		all = append(all, page.Items...)
		if page.Next == "" {
			break
		}
		before, err := strconv.ParseUint(page.Next, 10, 64)
		noErr(t, "page cursor", err)
		q.Before = before
	}
	equal(t, "ListAnomalyFindings(all, pages of 4)", all, want)

	page, err := s.ListAnomalyFindings(ctx, store.FindingQuery{Device: d2.ID, Limit: 100})
	noErr(t, "ListAnomalyFindings(device)", err)
	var ids []uint64
	for _, f := range page.Items {
		ids = append(ids, f.ID)
	}
	equal(t, "ListAnomalyFindings(device 2) IDs", ids, []uint64{9, 8, 6, 4, 3, 2})
	page, err = s.ListAnomalyFindings(ctx, store.FindingQuery{Rule: "call.premium", Limit: 100})
	noErr(t, "ListAnomalyFindings(rule)", err)
	ids = nil
	for _, f := range page.Items {
		ids = append(ids, f.ID)
	}
	equal(t, "ListAnomalyFindings(call.premium) IDs", ids, []uint64{7, 5, 1})

	wantErr(t, "PutAnomalyFinding(ID 0)", s.PutAnomalyFinding(ctx, finding(0, "x.y")), store.ErrInvalid)
	wantErr(t, "PutAnomalyFinding(no data)", s.PutAnomalyFinding(ctx, store.AnomalyFinding{ID: 1, Rule: "x", Time: t0}), store.ErrInvalid)
	_, err = s.ListAnomalyFindings(ctx, store.FindingQuery{Rule: "Bad Rule", Limit: 1})
	wantErr(t, "ListAnomalyFindings(bad rule)", err, store.ErrInvalid)
}

// testAnomalyState: the detector's state, written by compare-and-swap.
func testAnomalyState(t *testing.T, b Backend) {
	s := open(t, b)
	_, err := s.AnomalyState(ctx)
	wantErr(t, "AnomalyState(none)", err, store.ErrNotFound)
	st, err := s.PutAnomalyState(ctx, store.AnomalyState{Cursor: 7, Data: []byte(`{"version":1}`), SavedAt: t0}, 0)
	noErr(t, "PutAnomalyState", err)
	if st.Rev != 1 {
		t.Fatalf("PutAnomalyState(first).Rev = %d, want 1", st.Rev)
	}
	_, err = s.PutAnomalyState(ctx, store.AnomalyState{Cursor: 9, Data: []byte(`{"old":1}`), SavedAt: t0}, 0)
	wantErr(t, "PutAnomalyState(stale, a second first)", err, store.ErrState)
	st2, err := s.PutAnomalyState(ctx, store.AnomalyState{Cursor: 9, Data: []byte(`{"version":2}`), SavedAt: at(time.Hour)}, 1)
	noErr(t, "PutAnomalyState(second)", err)
	_, err = s.PutAnomalyState(ctx, store.AnomalyState{Cursor: 8, Data: []byte(`{"stale":1}`), SavedAt: t0}, 1)
	wantErr(t, "PutAnomalyState(stale)", err, store.ErrState)
	got, err := s.AnomalyState(ctx)
	noErr(t, "AnomalyState", err)
	equal(t, "AnomalyState", got, st2)
	_, err = s.PutAnomalyState(ctx, store.AnomalyState{SavedAt: t0}, 2)
	wantErr(t, "PutAnomalyState(empty)", err, store.ErrInvalid)
}

// testAnomalyResponses: one block and one quarantine per device, listed
// soonest end first.
func testAnomalyResponses(t *testing.T, b Backend) {
	s := open(t, b)
	d1, _ := enrol(t, s, 1, t0)
	d2, _ := enrol(t, s, 2, t0)
	_, err := s.GetAnomalyResponse(ctx, d1.ID, store.ResponseQuarantine)
	wantErr(t, "GetAnomalyResponse(none)", err, store.ErrNotFound)
	q1 := store.AnomalyResponse{Device: d1.ID, Kind: store.ResponseQuarantine, Finding: 3, Rule: "reg.hijack", Until: at(48 * time.Hour), UpdatedAt: t0}
	b1 := store.AnomalyResponse{Device: d1.ID, Kind: store.ResponseBlock, Finding: 3, Rule: "reg.hijack", Until: at(2 * time.Hour),
		Data: []byte(`{"saved":true}`), UpdatedAt: t0}
	b2 := store.AnomalyResponse{Device: d2.ID, Kind: store.ResponseBlock, Finding: 5, Rule: "call.premium", Until: at(time.Hour), UpdatedAt: t0}
	for _, r := range []*store.AnomalyResponse{&q1, &b1, &b2} {
		noErr(t, "PutAnomalyResponse", s.PutAnomalyResponse(ctx, *r))
		r.Until, r.UpdatedAt = norm(r.Until), norm(r.UpdatedAt)
	}
	got, err := s.GetAnomalyResponse(ctx, d1.ID, store.ResponseBlock)
	noErr(t, "GetAnomalyResponse", err)
	equal(t, "GetAnomalyResponse(block)", got, b1)
	b1.Until, b1.Finding = norm(at(3*time.Hour)), 4
	noErr(t, "PutAnomalyResponse(replace)", s.PutAnomalyResponse(ctx, b1))
	list, err := s.ListAnomalyResponses(ctx, 10)
	noErr(t, "ListAnomalyResponses", err)
	equal(t, "ListAnomalyResponses", list, []store.AnomalyResponse{b2, b1, q1})
	list, err = s.ListAnomalyResponses(ctx, 1)
	noErr(t, "ListAnomalyResponses(1)", err)
	equal(t, "ListAnomalyResponses(1)", list, []store.AnomalyResponse{b2})
	noErr(t, "DeleteAnomalyResponse", s.DeleteAnomalyResponse(ctx, d2.ID, store.ResponseBlock))
	wantErr(t, "DeleteAnomalyResponse(again)", s.DeleteAnomalyResponse(ctx, d2.ID, store.ResponseBlock), store.ErrNotFound)
	wantErr(t, "PutAnomalyResponse(no device)", s.PutAnomalyResponse(ctx, store.AnomalyResponse{Device: store.NewDeviceID(),
		Kind: store.ResponseBlock, Rule: "x", Until: t0, UpdatedAt: t0}), store.ErrNotFound)
	wantErr(t, "PutAnomalyResponse(bad kind)", s.PutAnomalyResponse(ctx, store.AnomalyResponse{Device: d1.ID,
		Kind: "alert", Rule: "x", Until: t0, UpdatedAt: t0}), store.ErrInvalid)
}

// testLead: one holder of a role at a time, across replicas; released, it
// can be taken again.
func testLead(t *testing.T, b Backend) {
	s := open(t, b)
	l, err := s.Lead(ctx, "anomaly")
	noErr(t, "Lead", err)
	other := replicas(t, b, s, 2)[1]
	_, err = other.Lead(ctx, "anomaly")
	wantErr(t, "Lead(held)", err, store.ErrState)
	l2, err := other.Lead(ctx, "another")
	noErr(t, "Lead(another role)", err)
	l2.Release()
	select {
	case <-l.Lost():
		t.Fatalf("lease lost while held")
	default:
	}
	l.Release()
	l.Release() // twice is harmless
	l3, err := other.Lead(ctx, "anomaly")
	noErr(t, "Lead(after release)", err)
	l3.Release()
	_, err = s.Lead(ctx, "Not A Role!")
	wantErr(t, "Lead(bad role)", err, store.ErrInvalid)
}
