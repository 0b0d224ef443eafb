package events

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkJournal measures events journaled per second, each Append one
// fsynced bbolt commit, against the reference: the same record bytes
// appended to a plain file and fsynced as often (once per batch).
func BenchmarkJournal(b *testing.B) {
	for _, batch := range []int{1, 16, 64} {
		evs := make([]Event, batch)
		for i := range evs {
			evs[i] = testEvent(i)
		}
		b.Run("batch="+strconv.Itoa(batch)+"/ours", func(b *testing.B) {
			db, key, clk := newDB(b), newKey(b), newClock()
			j := openJournal(b, db, key, clk, WithMaxBytes(64<<20))
			b.ReportAllocs()
			b.SetBytes(int64(recordBytes(b, evs)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := j.Append(evs...); err != nil {
					b.Fatalf("Append = %v", err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
		})
		b.Run("batch="+strconv.Itoa(batch)+"/reference", func(b *testing.B) {
			var buf []byte
			for i := range evs {
				ev, _ := sanitize(evs[i])
				ev.Time, ev.Seq = time.Now(), uint64(i+1)
				buf = append(buf, encodeEvent(Hash{}, &ev)...)
			}
			f, err := os.OpenFile(filepath.Join(b.TempDir(), "plain.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			b.ReportAllocs()
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := f.Write(buf); err != nil {
					b.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

func recordBytes(b *testing.B, evs []Event) int {
	n := 0
	for i := range evs {
		ev, err := sanitize(evs[i])
		if err != nil {
			b.Fatal(err)
		}
		ev.Time = time.Now()
		n += len(encodeEvent(Hash{}, &ev))
	}
	return n
}

// BenchmarkExport measures events shipped per second to rsyslog over
// mutual TLS, counted delivered when rsyslog's TCP acknowledged them and
// the cursor is on disk, against the reference: the same framed messages
// written on a plain TLS connection to the same rsyslog, in the same
// chunks, waiting once at the end for the acknowledgement.
func BenchmarkExport(b *testing.B) {
	e := newBenchCollector(b)
	b.Run("ours", func(b *testing.B) {
		j := e.freshJournal(b)
		prefill(b, j, b.N)
		x := e.exporterFor(b, j)
		if _, err := j.enableCursor(); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		conn, dead, err := x.connect(ctx)
		if err != nil {
			b.Fatalf("connect = %v", err)
		}
		defer conn.Close()
		head := j.Stats().Head
		b.SetBytes(int64(frameBytes(b, x, j) / max(1, int(head))))
		b.ResetTimer()
		done := make(chan error, 1)
		go func() { _, err := x.ship(ctx, conn, dead); done <- err }()
		tick := time.NewTicker(200 * time.Microsecond)
		for j.Stats().Delivered < head {
			select {
			case err := <-done:
				b.Fatalf("ship ended: %v", err)
			case <-tick.C:
			}
		}
		b.StopTimer()
		tick.Stop()
		b.ReportMetric(float64(head)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("reference", func(b *testing.B) {
		j := e.freshJournal(b)
		prefill(b, j, b.N)
		x := e.exporterFor(b, j)
		var chunks [][]byte
		for from := uint64(1); ; {
			recs, err := j.List(from, exportBatch)
			if err != nil || len(recs) == 0 {
				break
			}
			var buf []byte
			for i := range recs {
				msg, err := x.format(&recs[i])
				if err != nil {
					b.Fatal(err)
				}
				buf = frame(buf, msg)
			}
			chunks = append(chunks, buf)
			from = recs[len(recs)-1].Seq + 1
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		conn, dead, err := x.connect(ctx)
		if err != nil {
			b.Fatalf("connect = %v", err)
		}
		defer conn.Close()
		total := 0
		for _, c := range chunks {
			total += len(c)
		}
		head := j.Stats().Head
		b.SetBytes(int64(total / max(1, int(head))))
		b.ResetTimer()
		for _, c := range chunks {
			if _, err := conn.Write(c); err != nil {
				b.Fatal(err)
			}
		}
		if err := waitAcked(ctx, conn, dead, time.Minute); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		b.ReportMetric(float64(head)/b.Elapsed().Seconds(), "events/s")
	})
}

type benchCollector struct{ *collectorEnv }

func newBenchCollector(b *testing.B) benchCollector {
	return benchCollector{newCollectorEnv(b)}
}

func (e benchCollector) freshJournal(b *testing.B) *Journal {
	j, err := Open(newDB(b), e.key, WithMaxBytes(256<<20))
	if err != nil {
		b.Fatal(err)
	}
	return j
}

func (e benchCollector) exporterFor(b *testing.B, j *Journal) *Exporter {
	x, err := NewExporter(j, ExportConfig{Addr: e.rs.Addr, TLS: e.clientTLS(&e.cert), Hostname: phoneCN})
	if err != nil {
		b.Fatal(err)
	}
	return x
}

// prefill appends n events in full batches.
func prefill(b *testing.B, j *Journal, n int) {
	for i := 0; i < n; i += MaxBatch {
		evs := make([]Event, 0, MaxBatch)
		for k := i; k < min(n, i+MaxBatch); k++ {
			evs = append(evs, testEvent(k))
		}
		if _, err := j.Append(evs...); err != nil {
			b.Fatal(err)
		}
	}
}

func frameBytes(b *testing.B, x *Exporter, j *Journal) int {
	n := 0
	for from := uint64(1); ; {
		recs, err := j.List(from, MaxList)
		if err != nil || len(recs) == 0 {
			return n
		}
		for i := range recs {
			msg, err := x.format(&recs[i])
			if err != nil {
				b.Fatal(err)
			}
			n += len(frame(nil, msg))
		}
		from = recs[len(recs)-1].Seq + 1
	}
}
