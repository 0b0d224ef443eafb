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

// BenchmarkPipeline measures the events per second the phone can journal
// and ship: Recorder.Record (cleaning, rate limit with limits far above
// the load, queue), the recorder's batched fsynced commits to the
// journal, and the exporter's RFC 5425 session to Debian's rsyslog over
// mutual TLS, counted once rsyslog's TCP acknowledged every record and the
// delivery cursor is on disk. The reference, in the same run: the same
// bytes (each record as stored plus its framed syslog message) appended
// to a plain file and fsynced once per record, as a logger that makes
// each event durable before the next would.
func BenchmarkPipeline(b *testing.B) {
	e := newBenchCollector(b)
	evs := make([]Event, 256)
	for i := range evs {
		evs[i] = testEvent(i)
	}
	unlimited := Limits{KindRate: 1e9, KindBurst: 1 << 30, PeerRate: 1e9, PeerBurst: 1 << 30, MaxPeers: 1024}
	b.Run("ours", func(b *testing.B) {
		j := e.freshJournal(b)
		rec, err := NewRecorder(j, WithLimits(unlimited), WithQueue(1<<16))
		if err != nil {
			b.Fatal(err)
		}
		x := e.exporterFor(b, j)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 2)
		go func() { done <- rec.Run(ctx) }()
		go func() { done <- x.Run(ctx) }()
		defer func() {
			cancel()
			for range 2 {
				if err := <-done; err != nil {
					b.Errorf("Run = %v", err)
				}
			}
		}()
		tick := time.NewTicker(200 * time.Microsecond)
		defer tick.Stop()
		for !x.Stats().Connected {
			<-tick.C
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := rec.Record(evs[i%len(evs)]); err != nil {
				b.Fatalf("Record = %v", err)
			}
			// Stay within the queue: a producer faster than the disk is
			// what the rate limit is for, not what this measures.
			if (i+1)%4096 == 0 {
				if err := rec.Flush(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := rec.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		head := j.Stats().Head
		for x.Stats().Delivered < head {
			<-tick.C
		}
		b.StopTimer()
		if st := rec.Stats(); st.Suppressed != 0 || st.Lost != 0 || st.Written < uint64(b.N) {
			b.Fatalf("recorder %+v, want all %d events written", st, b.N)
		}
		b.SetBytes(int64(pipelineBytes(b, x, j) / b.N))
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("reference", func(b *testing.B) {
		j := e.freshJournal(b)
		prefill(b, j, b.N)
		x := e.exporterFor(b, j)
		var records [][]byte
		for from := uint64(1); ; {
			recs, err := j.List(from, MaxList)
			if err != nil || len(recs) == 0 {
				break
			}
			for i := range recs {
				if recs[i].Event == nil {
					continue
				}
				msg, err := x.format(&recs[i])
				if err != nil {
					b.Fatal(err)
				}
				records = append(records, frame(append([]byte(nil), recs[i].raw...), msg))
			}
			from = recs[len(recs)-1].Seq + 1
		}
		f, err := os.OpenFile(filepath.Join(b.TempDir(), "plain.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		total := 0
		for _, r := range records {
			total += len(r)
		}
		b.SetBytes(int64(total / max(1, len(records))))
		b.ReportAllocs()
		b.ResetTimer()
		for _, r := range records {
			if _, err := f.Write(r); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(len(records))/b.Elapsed().Seconds(), "events/s")
	})
}

// pipelineBytes is what the pipeline wrote and shipped: every record as
// stored plus its framed syslog message.
func pipelineBytes(b *testing.B, x *Exporter, j *Journal) int {
	n := frameBytes(b, x, j)
	for from := uint64(1); ; {
		recs, err := j.List(from, MaxList)
		if err != nil || len(recs) == 0 {
			return n
		}
		for i := range recs {
			n += recs[i].Size()
		}
		from = recs[len(recs)-1].Seq + 1
	}
}
