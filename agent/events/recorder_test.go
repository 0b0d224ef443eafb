package events

import (
	"context"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// runRecorder starts r.Run and returns a stop that cancels it and waits.
func runRecorder(t *testing.T, r *Recorder) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// tally counts the journal's events of kind k and the suppression summary
// counts for k.
func tally(t *testing.T, j *Journal, k Kind) (events, suppressed uint64) {
	t.Helper()
	for _, rec := range listAll(t, j) {
		if rec.Event == nil {
			continue
		}
		switch {
		case rec.Event.Kind == k:
			events++
		case rec.Event.Kind == KindSuppressed && rec.Event.Detail["kind"] == string(k):
			n, err := strconv.ParseUint(rec.Event.Detail["count"], 10, 64)
			if err != nil {
				t.Fatalf("summary count %q: %v", rec.Event.Detail["count"], err)
			}
			suppressed += n
		}
	}
	return events, suppressed
}

func TestFloodIsBounded(t *testing.T) {
	const n = 100_000
	tests := []struct {
		name string
		peer func(i int) netip.AddrPort
		// maxWritten bounds the events let through over the 100 s flood.
		maxWritten uint64
	}{
		// One peer: 5 at once, one per 10 s.
		{"one peer", func(int) netip.AddrPort { return netip.MustParseAddrPort("198.51.100.7:5060") }, 5 + 10 + 1},
		// Every event from another address: the per-peer table is
		// bounded, and the per-kind bucket (30, then one per 2 s) holds.
		{"spoofed sources", func(i int) netip.AddrPort {
			return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 5060)
		}, 30 + 50 + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, key, clk := newDB(t), newKey(t), newClock()
			j := openJournal(t, db, key, clk, WithMaxBytes(MinMaxBytes))
			r, err := NewRecorder(j, WithRecorderClock(clk.now))
			if err != nil {
				t.Fatalf("NewRecorder = %v", err)
			}
			stop := runRecorder(t, r)
			for i := 0; i < n; i++ {
				ev := Event{Kind: KindINVITEFlood, Peer: tt.peer(i), Detail: Detail{"call_id": strconv.Itoa(i)}}
				if err := r.Record(ev); err != nil {
					t.Fatalf("Record(%d) = %v", i, err)
				}
				clk.advance(time.Millisecond)
			}
			stop()
			st := r.Stats()
			events, summarised := tally(t, j, KindINVITEFlood)
			t.Logf("%d events: %d written, %d summarised in %d summaries; journal %d records, %d bytes",
				n, events, summarised, st.Queued-events, j.Stats().Records, j.Stats().Bytes)
			if events+summarised != n {
				t.Errorf("journal holds %d events + %d summarised, want %d in all", events, summarised, n)
			}
			if summarised != st.Suppressed {
				t.Errorf("summaries count %d, Stats().Suppressed = %d", summarised, st.Suppressed)
			}
			if events > tt.maxWritten {
				t.Errorf("%d flood events written, want at most %d", events, tt.maxWritten)
			}
			if st.Lost != 0 || st.Written != st.Queued {
				t.Errorf("Stats() = %+v, want nothing lost, everything queued written", st)
			}
			if l := r.lim.lru.Len(); l > DefaultLimits.MaxPeers || len(r.lim.peers) != l {
				t.Errorf("peer table holds %d (map %d), want at most %d", l, len(r.lim.peers), DefaultLimits.MaxPeers)
			}
			if js := j.Stats(); js.Bytes > MinMaxBytes {
				t.Errorf("journal at %d bytes, bound %d", js.Bytes, MinMaxBytes)
			}
			if rep, err := Verify(db, key.Public()); err != nil {
				t.Errorf("Verify after flood = %v, problems %v", err, rep.Problems)
			}
		})
	}
}

// TestQueueFullIsCounted: a journal that cannot keep up loses nothing
// silently: what the queue turned away is summarised.
func TestQueueFullIsCounted(t *testing.T) {
	db, key, clk := newDB(t), newKey(t), newClock()
	j := openJournal(t, db, key, clk)
	lim := Limits{KindRate: 1e6, KindBurst: 1e6, PeerRate: 1e6, PeerBurst: 1e6, MaxPeers: 16}
	r, err := NewRecorder(j, WithRecorderClock(clk.now), WithQueue(8), WithLimits(lim))
	if err != nil {
		t.Fatalf("NewRecorder = %v", err)
	}
	for i := 0; i < 100; i++ { // Run not started: the queue fills
		if err := r.Record(testEvent(i)); err != nil {
			t.Fatalf("Record = %v", err)
		}
	}
	if st := r.Stats(); st.Queued != 8 || st.Suppressed != 92 {
		t.Fatalf("Stats() = %+v, want 8 queued and 92 suppressed", st)
	}
	runRecorder(t, r)()
	events, summarised := tally(t, j, KindScanner)
	if events != 8 || summarised != 92 {
		t.Errorf("journal holds %d events and %d summarised, want 8 and 92", events, summarised)
	}
	if err := r.Record(testEvent(1)); err == nil {
		t.Errorf("Record after Run stopped = nil, want ErrClosed")
	}
}

func TestFlushWaitsForTheDisk(t *testing.T) {
	db, key, clk := newDB(t), newKey(t), newClock()
	j := openJournal(t, db, key, clk)
	r, err := NewRecorder(j, WithRecorderClock(clk.now))
	if err != nil {
		t.Fatalf("NewRecorder = %v", err)
	}
	runRecorder(t, r)
	for i := 0; i < 3; i++ {
		if err := r.Record(testEvent(i)); err != nil {
			t.Fatalf("Record = %v", err)
		}
	}
	if err := r.Flush(context.Background()); err != nil {
		t.Fatalf("Flush = %v", err)
	}
	if events, _ := tally(t, j, KindScanner); events != 3 {
		t.Errorf("after Flush the journal holds %d events, want 3", events)
	}
}
