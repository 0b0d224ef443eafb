package audittest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/hardphone/hardphone/fleet/audit"
)

// Backend is what Run needs from an implementation.
type Backend struct {
	// Open returns a new storage on an empty database; Run closes it.
	Open func(t *testing.T) audit.Storage
	// Reopen closes s and opens its database again (a restart).
	Reopen func(t *testing.T, s audit.Storage) audit.Storage
	// Replica opens a second handle on s's database with its own
	// connections, as another hpfleet replica would; nil for a backend
	// one process owns (bbolt), whose concurrency test shares s.
	Replica func(t *testing.T, s audit.Storage) audit.Storage
	// Overwrite replaces the data of record idx as an attacker with
	// write access to the database would, past any guard.
	Overwrite func(t *testing.T, s audit.Storage, idx int64, data []byte)
	// Truncate drops every record and stored hash at or beyond size and
	// sets the size, as such an attacker would; it leaves the
	// checkpoints (one that also drops those is caught only by an
	// outside copy, which package audit's tests cover).
	Truncate func(t *testing.T, s audit.Storage, size int64)
	// Close closes a storage Open, Reopen or Replica returned.
	Close func(s audit.Storage) error
}

// Run runs the suite as subtests of t.
func Run(t *testing.T, b Backend) {
	if b.Open == nil || b.Reopen == nil || b.Overwrite == nil || b.Truncate == nil || b.Close == nil {
		t.Fatalf("audittest.Run: Backend needs Open, Reopen, Overwrite, Truncate and Close")
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"AppendRead", testAppendRead},
		{"Batch", testBatch},
		{"RefusedEntryChangesNothing", testRefused},
		{"TreeMatchesIndependentComputation", testTree},
		{"ProofsBetweenArbitrarySizes", testProofs},
		{"Checkpoints", testCheckpoints},
		{"ExportVerifyImport", testExportVerifyImport},
		{"Persistence", testPersistence},
		{"EditedUnderneath", testEditedUnderneath},
		{"TruncatedUnderneath", testTruncatedUnderneath},
		{"Limits", testLimits},
		{"ConcurrentAppends", testConcurrent},
		{"ContextCanceled", testCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, b) })
	}
}

var ctx = context.Background()

// fixture is a log on a fresh storage with a fixed clock.
type fixture struct {
	st  audit.Storage
	key *audit.Key
	log *audit.Log
	now time.Time
}

func newFixture(t *testing.T, b Backend) *fixture {
	t.Helper()
	st := b.Open(t)
	f := &fixture{st: st, key: NewKey(t, "audit.test/fleet"), now: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	t.Cleanup(func() { b.Close(f.st) })
	f.log = f.newLog(t, f.st)
	return f
}

func (f *fixture) newLog(t *testing.T, st audit.Storage) *audit.Log {
	t.Helper()
	l, err := audit.New(st, f.key, audit.WithClock(func() time.Time { return f.now }))
	if err != nil {
		t.Fatalf("audit.New error %v", err)
	}
	return l
}

// NewKey makes a log key for tests.
func NewKey(t testing.TB, origin string) *audit.Key {
	t.Helper()
	skey, _, err := audit.GenerateKey(origin)
	if err != nil {
		t.Fatalf("GenerateKey(%q) error %v", origin, err)
	}
	k, err := audit.ParseKey(skey)
	if err != nil {
		t.Fatalf("ParseKey error %v", err)
	}
	return k
}

// SampleEntry is a varied, valid entry for n.
func SampleEntry(n int) audit.Entry {
	e := audit.Entry{
		Actor:   audit.Actor{Kind: audit.ActorAdmin, ID: fmt.Sprintf("admin-%d", n%3)},
		Action:  []audit.Action{audit.ActionLogin, audit.ActionRolloutCreate, audit.ActionApprovalGrant, audit.ActionPolicyChange}[n%4],
		Target:  fmt.Sprintf("rollout/%d", n),
		Outcome: audit.OutcomeSuccess,
		Source:  netip.AddrFrom4([4]byte{192, 0, 2, byte(n)}),
	}
	if n%4 == 2 {
		e.Approvals = []string{fmt.Sprintf("approval-%d", n), "approval-x"}
	}
	if n%5 == 0 {
		e.Details = map[string]string{"reason": "scheduled", "ring": fmt.Sprint(n % 3)}
	}
	if n%7 == 3 {
		e.Actor = audit.Actor{Kind: audit.ActorDevice, ID: "dev-7"}
		e.Action = audit.ActionDeviceEvent
		e.Device = &audit.DeviceEvent{Device: "dev-7", Kind: "control.refused", Severity: 4, Seq: uint64(n),
			Time: time.Date(2026, 12, 1, 0, 0, n, 0, time.UTC), Hash: audit.Hash{byte(n), 1}}
	}
	return e
}

func (f *fixture) append(t *testing.T, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		size, err := f.log.Size(ctx)
		if err != nil {
			t.Fatalf("Size error %v", err)
		}
		idx, err := f.log.Append(ctx, SampleEntry(int(size)))
		if err != nil {
			t.Fatalf("Append(%d) error %v", size, err)
		}
		if idx != size {
			t.Fatalf("Append() = %d, want %d", idx, size)
		}
	}
}

func testAppendRead(t *testing.T, b Backend) {
	f := newFixture(t, b)
	f.append(t, 12)
	got, err := f.log.Entries(ctx, 0, 100)
	if err != nil {
		t.Fatalf("Entries error %v", err)
	}
	if len(got) != 12 {
		t.Fatalf("Entries(0, 100) = %d entries, want 12", len(got))
	}
	for i, se := range got {
		want := SampleEntry(i)
		want.Index, want.Time = int64(i), f.now
		wantData, err := want.Encode()
		if err != nil {
			t.Fatalf("Encode(sample %d) error %v", i, err)
		}
		if !bytes.Equal(se.Data, wantData) {
			t.Errorf("Entries()[%d].Data = %x, want %x", i, se.Data, wantData)
		}
		if se.Entry.Index != int64(i) || se.Entry.Target != want.Target {
			t.Errorf("Entries()[%d] = %v, want %v", i, se.Entry, want)
		}
	}
	tail, err := f.log.Entries(ctx, 10, 5)
	if err != nil || len(tail) != 2 {
		t.Fatalf("Entries(10, 5) = %d entries, %v; want 2", len(tail), err)
	}
	none, err := f.log.Entries(ctx, 12, 5)
	if err != nil || len(none) != 0 {
		t.Fatalf("Entries(12, 5) = %d entries, %v; want 0", len(none), err)
	}
}

func testBatch(t *testing.T, b Backend) {
	f := newFixture(t, b)
	f.append(t, 3)
	var batch []audit.Entry
	for i := 3; i < 40; i++ {
		batch = append(batch, SampleEntry(i))
	}
	first, err := f.log.AppendBatch(ctx, batch)
	if err != nil || first != 3 {
		t.Fatalf("AppendBatch = %d, %v; want 3", first, err)
	}
	// The batch's hashes must be those of 37 single appends.
	g := newFixture(t, b)
	g.now, g.key = f.now, f.key
	g.log = g.newLog(t, g.st)
	g.append(t, 40)
	cf, err1 := f.log.Checkpoint(ctx)
	cg, err2 := g.log.Checkpoint(ctx)
	if err1 != nil || err2 != nil {
		t.Fatalf("Checkpoint errors %v, %v", err1, err2)
	}
	if cf.Root != cg.Root {
		t.Fatalf("root after a batch = %s, after single appends %s", cf.Root, cg.Root)
	}
	if _, err := f.log.AppendBatch(ctx, nil); !errors.Is(err, audit.ErrInvalid) {
		t.Fatalf("AppendBatch(nil) error %v, want ErrInvalid", err)
	}
}

func testRefused(t *testing.T, b Backend) {
	f := newFixture(t, b)
	f.append(t, 5)
	before, _ := f.log.Checkpoint(ctx)
	bad := []audit.Entry{
		{Actor: audit.Actor{Kind: "root", ID: "x"}, Action: audit.ActionLogin, Outcome: audit.OutcomeSuccess},
		{Actor: audit.Actor{Kind: audit.ActorAdmin, ID: "a"}, Action: "Login!", Outcome: audit.OutcomeSuccess},
		{Actor: audit.Actor{Kind: audit.ActorAdmin, ID: "a"}, Action: audit.ActionLogin, Outcome: "maybe"},
		{Actor: audit.Actor{Kind: audit.ActorAdmin, ID: "a"}, Action: audit.ActionLogin, Outcome: audit.OutcomeSuccess,
			Approvals: make([]string, audit.MaxApprovals+1)},
		{Actor: audit.Actor{Kind: audit.ActorAdmin, ID: "a"}, Action: audit.ActionLogin, Outcome: audit.OutcomeSuccess,
			Details: map[string]string{"Bad Key": "v"}},
	}
	for i, e := range bad {
		if _, err := f.log.Append(ctx, e); !errors.Is(err, audit.ErrInvalid) {
			t.Errorf("Append(bad %d) error %v, want ErrInvalid", i, err)
		}
	}
	// A good entry in a batch with a bad one: none is written.
	if _, err := f.log.AppendBatch(ctx, []audit.Entry{SampleEntry(5), bad[0]}); !errors.Is(err, audit.ErrInvalid) {
		t.Errorf("AppendBatch(good, bad) error %v, want ErrInvalid", err)
	}
	after, err := f.log.Checkpoint(ctx)
	if err != nil || after.Size != before.Size || after.Root != before.Root {
		t.Fatalf("after refusals: checkpoint %v, %v; want %v", after, err, before)
	}
}

// independentRoot computes RFC 6962 §2.1 MTH by its recursive definition.
func independentRoot(leaves []tlog.Hash) tlog.Hash {
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	return tlog.NodeHash(independentRoot(leaves[:k]), independentRoot(leaves[k:]))
}

func testTree(t *testing.T, b Backend) {
	f := newFixture(t, b)
	var leaves []tlog.Hash
	for n := 1; n <= 33; n++ {
		f.append(t, 1)
		se, err := f.log.Entries(ctx, int64(n-1), 1)
		if err != nil {
			t.Fatalf("Entries error %v", err)
		}
		leaves = append(leaves, tlog.RecordHash(se[0].Data))
		cp, err := f.log.Checkpoint(ctx)
		if err != nil {
			t.Fatalf("Checkpoint error %v", err)
		}
		if want := independentRoot(leaves); cp.Root != want || cp.Size != int64(n) {
			t.Fatalf("Checkpoint() at %d = %v, want root %s", n, cp, want)
		}
	}
}

func testProofs(t *testing.T, b Backend) {
	f := newFixture(t, b)
	const n = 37
	cps := map[int64]audit.Checkpoint{}
	var datas [][]byte
	for i := 1; i <= n; i++ {
		f.append(t, 1)
		cp, err := f.log.Checkpoint(ctx)
		if err != nil {
			t.Fatalf("Checkpoint error %v", err)
		}
		cps[int64(i)] = cp
		se, _ := f.log.Entries(ctx, int64(i-1), 1)
		datas = append(datas, se[0].Data)
	}
	for old := int64(1); old <= n; old++ {
		for nw := old; nw <= n; nw++ {
			p, err := f.log.ConsistencyProof(ctx, old, nw)
			if err != nil {
				t.Fatalf("ConsistencyProof(%d, %d) error %v", old, nw, err)
			}
			if err := audit.VerifyConsistency(cps[old], cps[nw], p); err != nil {
				t.Fatalf("VerifyConsistency(%d, %d) error %v", old, nw, err)
			}
			// The proof must not pass for another old root.
			if old > 1 && old < nw {
				if err := audit.VerifyConsistency(cps[old-1], cps[nw], p); err == nil {
					t.Fatalf("VerifyConsistency(%d proof against checkpoint %d, %d) passed", old, old-1, nw)
				}
			}
		}
	}
	for _, size := range []int64{1, 2, 5, 16, 17, 31, 37} {
		for i := int64(0); i < size; i++ {
			p, err := f.log.InclusionProof(ctx, i, size)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d) error %v", i, size, err)
			}
			if err := audit.VerifyInclusion(cps[size], i, datas[i], p); err != nil {
				t.Fatalf("VerifyInclusion(%d in %d) error %v", i, size, err)
			}
			if err := audit.VerifyInclusion(cps[size], i, append(bytes.Clone(datas[i]), 0), p); !errors.Is(err, audit.ErrTampered) {
				t.Fatalf("VerifyInclusion(edited %d in %d) error %v, want ErrTampered", i, size, err)
			}
		}
	}
	if _, err := f.log.ConsistencyProof(ctx, 3, n+1); !errors.Is(err, audit.ErrNotFound) {
		t.Fatalf("ConsistencyProof(3, %d) error %v, want ErrNotFound", n+1, err)
	}
	if _, err := f.log.InclusionProof(ctx, 5, 5); !errors.Is(err, audit.ErrInvalid) {
		t.Fatalf("InclusionProof(5, 5) error %v, want ErrInvalid", err)
	}
}

func testCheckpoints(t *testing.T, b Backend) {
	f := newFixture(t, b)
	if _, err := f.log.Checkpoint(ctx); !errors.Is(err, audit.ErrEmpty) {
		t.Fatalf("Checkpoint(empty) error %v, want ErrEmpty", err)
	}
	if _, err := f.log.LatestCheckpoint(ctx); !errors.Is(err, audit.ErrNotFound) {
		t.Fatalf("LatestCheckpoint(none) error %v, want ErrNotFound", err)
	}
	f.append(t, 4)
	c1, err := f.log.Checkpoint(ctx)
	if err != nil {
		t.Fatalf("Checkpoint error %v", err)
	}
	c1b, err := f.log.Checkpoint(ctx)
	if err != nil || !bytes.Equal(c1.Note, c1b.Note) {
		t.Fatalf("Checkpoint() again = %q, %v; want the stored %q", c1b.Note, err, c1.Note)
	}
	parsed, err := audit.ParseCheckpoint(c1.Note, f.key.Trust())
	if err != nil || parsed.Size != 4 || parsed.Root != c1.Root || parsed.Origin != "audit.test/fleet" {
		t.Fatalf("ParseCheckpoint = %v, %v; want %v", parsed, err, c1)
	}
	f.append(t, 3)
	c2, err := f.log.Checkpoint(ctx)
	if err != nil || c2.Size != 7 {
		t.Fatalf("Checkpoint() = %v, %v; want size 7", c2, err)
	}
	all, err := f.log.Checkpoints(ctx, 0, 10)
	if err != nil || len(all) != 2 || all[0].Size != 4 || all[1].Size != 7 {
		t.Fatalf("Checkpoints = %v, %v; want sizes 4, 7", all, err)
	}
	// A second note for a stored size is dropped, the first stays.
	other := NewKey(t, "audit.test/fleet")
	ol, _ := audit.New(f.st, other)
	if err := f.st.AddCheckpoint(ctx, 7, []byte("another note\n")); err != nil {
		t.Fatalf("AddCheckpoint(duplicate) error %v", err)
	}
	latest, err := f.log.LatestCheckpoint(ctx)
	if err != nil || !bytes.Equal(latest.Note, c2.Note) {
		t.Fatalf("LatestCheckpoint = %q, %v; want %q", latest.Note, err, c2.Note)
	}
	// A log with another key does not trust the stored notes.
	if _, err := ol.Check(ctx); !errors.Is(err, audit.ErrTampered) || !errors.Is(err, audit.ErrBadSignature) {
		t.Fatalf("Check with another key error %v, want ErrTampered and ErrBadSignature", err)
	}
	// Unless told of the first key.
	ol2, err := audit.New(f.st, other, audit.WithPreviousKeys(f.key.VerifierKey()))
	if err != nil {
		t.Fatalf("New error %v", err)
	}
	if cp, err := ol2.Check(ctx); err != nil || cp.Size != 7 {
		t.Fatalf("Check with the previous key trusted = %v, %v; want size 7", cp, err)
	}
}

func testExportVerifyImport(t *testing.T, b Backend) {
	f := newFixture(t, b)
	f.append(t, 9)
	f.log.Checkpoint(ctx)
	f.append(t, 8)
	f.log.Checkpoint(ctx)
	f.append(t, 2) // two entries beyond the last checkpoint
	var buf bytes.Buffer
	if err := f.log.Export(ctx, &buf); err != nil {
		t.Fatalf("Export error %v", err)
	}
	rep, err := audit.Verify(bytes.NewReader(buf.Bytes()), f.key.Trust())
	if err != nil {
		t.Fatalf("Verify error %v", err)
	}
	if !rep.OK() || rep.Entries != 19 || len(rep.Matched) != 2 || !rep.Consistent(9, 17) || rep.Unsigned != 2 {
		t.Fatalf("Verify = %+v, want OK, 19 entries, checkpoints 9 and 17 matched, 2 unsigned", rep)
	}
	exp, err := audit.ReadExport(bytes.NewReader(buf.Bytes()), 1000)
	if err != nil {
		t.Fatalf("ReadExport error %v", err)
	}
	g := b.Open(t)
	defer b.Close(g)
	if err := audit.Import(ctx, exp, g, f.key.Trust()); err != nil {
		t.Fatalf("Import error %v", err)
	}
	gl := f.newLog(t, g)
	var again bytes.Buffer
	if err := gl.Export(ctx, &again); err != nil {
		t.Fatalf("Export(imported) error %v", err)
	}
	if !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Fatalf("export of the imported log differs from the original:\n%s\nvs\n%s", again.Bytes(), buf.Bytes())
	}
	if _, err := gl.Check(ctx); err != nil {
		t.Fatalf("Check(imported) error %v", err)
	}
	// Importing into a non-empty storage, or a tampered export, is refused.
	if err := audit.Import(ctx, exp, g, f.key.Trust()); !errors.Is(err, audit.ErrInvalid) {
		t.Fatalf("Import(into non-empty) error %v, want ErrInvalid", err)
	}
	exp.Entries = append(exp.Entries[:3], exp.Entries[4:]...)
	h := b.Open(t)
	defer b.Close(h)
	if err := audit.Import(ctx, exp, h, f.key.Trust()); !errors.Is(err, audit.ErrTampered) {
		t.Fatalf("Import(entry 3 deleted) error %v, want ErrTampered", err)
	}
	if n, _ := h.Size(ctx); n != 0 {
		t.Fatalf("refused Import left %d entries", n)
	}
}

func testPersistence(t *testing.T, b Backend) {
	f := newFixture(t, b)
	f.append(t, 6)
	cp, _ := f.log.Checkpoint(ctx)
	f.st = b.Reopen(t, f.st)
	f.log = f.newLog(t, f.st)
	got, err := f.log.Check(ctx)
	if err != nil || got.Root != cp.Root {
		t.Fatalf("Check after reopen = %v, %v; want %v", got, err, cp)
	}
	f.append(t, 2)
	if n, _ := f.log.Size(ctx); n != 8 {
		t.Fatalf("Size after reopen and 2 appends = %d, want 8", n)
	}
}

func testEditedUnderneath(t *testing.T, b Backend) {
	f := newFixture(t, b)
	f.append(t, 10)
	f.log.Checkpoint(ctx)
	se, _ := f.log.Entries(ctx, 4, 1)
	e := se[0].Entry
	e.Target = "rollout/forged"
	data, err := e.Encode()
	if err != nil {
		t.Fatalf("Encode error %v", err)
	}
	b.Overwrite(t, f.st, 4, data)
	if _, err := f.log.Entries(ctx, 0, 10); !errors.Is(err, audit.ErrTampered) {
		t.Fatalf("Entries after an edit underneath error %v, want ErrTampered", err)
	}
	var buf bytes.Buffer
	if err := f.log.Export(ctx, &buf); err != nil {
		t.Fatalf("Export error %v", err)
	}
	rep, err := audit.Verify(&buf, f.key.Trust())
	if err != nil {
		t.Fatalf("Verify error %v", err)
	}
	if rep.OK() || rep.Problems[0].Kind != audit.ProblemEdited || rep.Problems[0].Index != 4 {
		t.Fatalf("Verify after editing entry 4 underneath = %+v, want edited entry 4 first", rep.Problems)
	}
}

func testTruncatedUnderneath(t *testing.T, b Backend) {
	f := newFixture(t, b)
	f.append(t, 10)
	f.log.Checkpoint(ctx)
	b.Truncate(t, f.st, 6)
	if _, err := f.log.Check(ctx); !errors.Is(err, audit.ErrTampered) {
		t.Fatalf("Check after truncation error %v, want ErrTampered", err)
	}
	if _, err := f.log.Checkpoint(ctx); !errors.Is(err, audit.ErrTampered) {
		t.Fatalf("Checkpoint after truncation error %v, want ErrTampered", err)
	}
	// Growing back to 10 with other entries does not fool it either.
	for i := 0; i < 4; i++ {
		e := SampleEntry(6 + i)
		e.Target = "rewritten"
		if _, err := f.log.Append(ctx, e); err != nil {
			t.Fatalf("Append error %v", err)
		}
	}
	if _, err := f.log.Check(ctx); !errors.Is(err, audit.ErrTampered) {
		t.Fatalf("Check after truncate-and-regrow error %v, want ErrTampered", err)
	}
	if _, err := f.log.Checkpoint(ctx); !errors.Is(err, audit.ErrTampered) {
		t.Fatalf("Checkpoint after truncate-and-regrow error %v, want ErrTampered", err)
	}
}

func testLimits(t *testing.T, b Backend) {
	f := newFixture(t, b)
	f.append(t, 2)
	for _, n := range []int{0, -1, audit.MaxReadRecords + 1} {
		if _, err := f.st.ReadRecords(ctx, 0, n); !errors.Is(err, audit.ErrInvalid) {
			t.Errorf("ReadRecords(0, %d) error %v, want ErrInvalid", n, err)
		}
		if _, err := f.st.Checkpoints(ctx, 0, n); !errors.Is(err, audit.ErrInvalid) {
			t.Errorf("Checkpoints(0, %d) error %v, want ErrInvalid", n, err)
		}
	}
	if _, err := f.st.ReadRecords(ctx, -1, 1); !errors.Is(err, audit.ErrInvalid) {
		t.Errorf("ReadRecords(-1, 1) error %v, want ErrInvalid", err)
	}
	if _, err := f.st.ReadHashes(ctx, []int64{1 << 40}); !errors.Is(err, audit.ErrNotFound) {
		t.Errorf("ReadHashes(2^40) error %v, want ErrNotFound", err)
	}
	if _, err := f.st.ReadHashes(ctx, make([]int64, audit.MaxReadHashes+1)); !errors.Is(err, audit.ErrInvalid) {
		t.Errorf("ReadHashes(too many) error %v, want ErrInvalid", err)
	}
	// A build that returns the wrong number of hashes writes nothing.
	_, err := f.st.Append(ctx, func(size int64, r tlog.HashReader) ([]audit.Record, []tlog.Hash, error) {
		return []audit.Record{{Data: []byte{1}, Seal: []byte{2}}}, nil, nil
	})
	if !errors.Is(err, audit.ErrInvalid) {
		t.Errorf("Append(no hashes) error %v, want ErrInvalid", err)
	}
	boom := errors.New("boom")
	if _, err := f.st.Append(ctx, func(int64, tlog.HashReader) ([]audit.Record, []tlog.Hash, error) { return nil, nil, boom }); !errors.Is(err, boom) {
		t.Errorf("Append(failing build) error %v, want boom", err)
	}
	if n, _ := f.st.Size(ctx); n != 2 {
		t.Fatalf("Size after refused appends = %d, want 2", n)
	}
}

// testConcurrent appends from several handles (replicas) and goroutines
// at once: every index is handed out once, the tree is the tree of the
// records in index order, and checkpoints taken meanwhile are consistent.
func testConcurrent(t *testing.T, b Backend) {
	f := newFixture(t, b)
	handles := []audit.Storage{f.st}
	if b.Replica != nil {
		r := b.Replica(t, f.st)
		t.Cleanup(func() { b.Close(r) })
		handles = append(handles, r)
	}
	const workers, each = 4, 15
	logs := make([]*audit.Log, len(handles))
	for i, h := range handles {
		logs[i] = f.newLog(t, h)
	}
	var (
		mu   sync.Mutex
		idxs []int64
		cps  []audit.Checkpoint
		wg   sync.WaitGroup
		errs = make(chan error, len(handles)*workers*each)
	)
	for h := range handles {
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(l *audit.Log, h, w int) {
				defer wg.Done()
				for i := 0; i < each; i++ {
					e := SampleEntry(i)
					e.Target = fmt.Sprintf("replica-%d/worker-%d/%d", h, w, i)
					idx, err := l.Append(ctx, e)
					if err != nil {
						errs <- err
						return
					}
					var cp audit.Checkpoint
					if i%5 == 4 {
						if cp, err = l.Checkpoint(ctx); err != nil {
							errs <- fmt.Errorf("checkpoint: %w", err)
							return
						}
					}
					mu.Lock()
					idxs = append(idxs, idx)
					if cp.Size > 0 {
						cps = append(cps, cp)
					}
					mu.Unlock()
				}
			}(logs[h], h, w)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent append: %v", err)
	}
	total := len(handles) * workers * each
	sort.Slice(idxs, func(i, j int) bool { return idxs[i] < idxs[j] })
	for i, x := range idxs {
		if x != int64(i) {
			t.Fatalf("indexes handed out: position %d holds %d (an index used twice or skipped)", i, x)
		}
	}
	if len(idxs) != total {
		t.Fatalf("%d indexes handed out, want %d", len(idxs), total)
	}
	// Every target appears exactly once, at the index Append returned.
	seen := map[string]bool{}
	var leaves []tlog.Hash
	for from := int64(0); from < int64(total); from += 100 {
		es, err := f.log.Entries(ctx, from, 100)
		if err != nil {
			t.Fatalf("Entries error %v", err)
		}
		for _, se := range es {
			if seen[se.Entry.Target] {
				t.Fatalf("target %q stored twice", se.Entry.Target)
			}
			seen[se.Entry.Target] = true
			leaves = append(leaves, tlog.RecordHash(se.Data))
		}
	}
	if len(seen) != total {
		t.Fatalf("%d distinct entries stored, want %d", len(seen), total)
	}
	final, err := f.log.Checkpoint(ctx)
	if err != nil {
		t.Fatalf("Checkpoint error %v", err)
	}
	if want := independentRoot(leaves); final.Root != want {
		t.Fatalf("final root %s, the records' tree has %s", final.Root, want)
	}
	for _, cp := range cps {
		if want := independentRoot(leaves[:cp.Size]); cp.Root != want {
			t.Fatalf("checkpoint %v taken during the appends, the records' prefix has root %s", cp, want)
		}
		p, err := f.log.ConsistencyProof(ctx, cp.Size, final.Size)
		if err != nil {
			t.Fatalf("ConsistencyProof error %v", err)
		}
		if err := audit.VerifyConsistency(cp, final, p); err != nil {
			t.Fatalf("VerifyConsistency(%v, %v) error %v", cp, final, err)
		}
	}
	var buf bytes.Buffer
	if err := f.log.Export(ctx, &buf); err != nil {
		t.Fatalf("Export error %v", err)
	}
	rep, err := audit.Verify(&buf, f.key.Trust())
	if err != nil || !rep.OK() || rep.Entries != int64(total) {
		t.Fatalf("Verify after concurrent appends = %+v, %v; want OK with %d entries", rep, err, total)
	}
}

func testCanceled(t *testing.T, b Backend) {
	f := newFixture(t, b)
	f.append(t, 1)
	c, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.log.Append(c, SampleEntry(1)); !errors.Is(err, context.Canceled) {
		t.Errorf("Append(canceled) error %v, want context.Canceled", err)
	}
	if _, err := f.st.Size(c); !errors.Is(err, context.Canceled) {
		t.Errorf("Size(canceled) error %v, want context.Canceled", err)
	}
	if n, _ := f.st.Size(ctx); n != 1 {
		t.Fatalf("Size after a canceled append = %d, want 1", n)
	}
}
