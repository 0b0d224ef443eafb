package storetest

import (
	"encoding/json"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/store"
)

// Benchmarks of the hot paths, shared by the implementations; each
// implementation's bench_test.go runs them beside a reference on its bare
// engine.

// benchTPMs hands out TPM numbers no earlier run used: a parallel
// benchmark function runs several times on one store.
var benchTPMs atomic.Int64

// benchDevices is how many devices a check-in benchmark cycles through per
// goroutine: after MaxReportHistory reports each, every PutReport also
// trims the history, as in a fleet that has run for a while.
const benchDevices = 8

// benchParallelism multiplies GOMAXPROCS into the goroutines of a parallel
// benchmark: server requests wait on the database, not the CPU.
const benchParallelism = 4

func enrolBench(b *testing.B, s store.Store, n int) []store.DeviceID {
	b.Helper()
	ids := make([]store.DeviceID, n)
	for i := range ids {
		d, _ := enrol(b, s, int(1_000_000+benchTPMs.Add(1)), t0)
		ids[i] = d.ID
	}
	return ids
}

// checkIn is one device check-in as the server does it: store the report,
// then read the latest back (the renewal posture gate does).
func checkIn(b *testing.B, s store.Store, id store.DeviceID, r store.Report) {
	if err := s.PutReport(ctx, id, r); err != nil {
		b.Fatalf("PutReport error %v", err)
	}
	if _, err := s.LatestReport(ctx, id); err != nil {
		b.Fatalf("LatestReport error %v", err)
	}
}

func reportOps(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchCheckIn measures PutReport + LatestReport on one goroutine.
func BenchCheckIn(b *testing.B, s store.Store) {
	ids := enrolBench(b, s, benchDevices)
	r := report(1, at(time.Hour))
	b.SetBytes(int64(len(SampleReport())))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		checkIn(b, s, ids[i%len(ids)], r)
		i++
	}
	reportOps(b)
}

// BenchCheckInParallel measures PutReport + LatestReport from
// benchParallelism x GOMAXPROCS goroutines spread over handles (replicas),
// each with devices of its own.
func BenchCheckInParallel(b *testing.B, handles ...store.Store) {
	procs := benchParallelism * runtimeProcs()
	ids := enrolBench(b, handles[0], benchDevices*procs)
	r := report(1, at(time.Hour))
	var next atomic.Int64
	b.SetParallelism(benchParallelism)
	b.SetBytes(int64(len(SampleReport())))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		g := int(next.Add(1)-1) % procs
		s := handles[g%len(handles)]
		mine := ids[g*benchDevices : (g+1)*benchDevices]
		for i := 0; pb.Next(); i++ {
			checkIn(b, s, mine[i%len(mine)], r)
		}
	})
	reportOps(b)
}

// benchTPMPool is how many TPMs a challenge benchmark cycles through, so
// no TPM passes MaxChallengesPerEK outstanding.
const benchTPMPool = 64

func allowBench(b *testing.B, s store.Store) []int {
	tpms := make([]int, benchTPMPool)
	for i := range tpms {
		tpms[i] = int(2_000_000 + benchTPMs.Add(1))
	}
	allow(b, s, tpms...)
	return tpms
}

// enrolmentRound is the store's part of one credential-activation round:
// put the challenge, then consume it with the phone's answer.
func enrolmentRound(b *testing.B, s store.Store, c store.Challenge) {
	c.ID = store.NewChallengeID()
	if err := s.PutChallenge(ctx, c); err != nil {
		b.Fatalf("PutChallenge error %v", err)
	}
	if _, err := s.ConsumeChallenge(ctx, c.ID, c.CreatedAt.Add(time.Second)); err != nil {
		b.Fatalf("ConsumeChallenge error %v", err)
	}
}

// BenchChallenge measures PutChallenge + ConsumeChallenge on one
// goroutine.
func BenchChallenge(b *testing.B, s store.Store) {
	tpms := allowBench(b, s)
	cs := make([]store.Challenge, len(tpms))
	for i, tpm := range tpms {
		cs[i] = challenge(b, tpm, t0)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		enrolmentRound(b, s, cs[i%len(cs)])
		i++
	}
	reportOps(b)
}

// BenchChallengeParallel is BenchChallenge from many goroutines over
// handles; each goroutine has TPMs of its own.
func BenchChallengeParallel(b *testing.B, handles ...store.Store) {
	procs := benchParallelism * runtimeProcs()
	var tpms []int
	for len(tpms) < 4*procs {
		tpms = append(tpms, allowBench(b, handles[0])...)
	}
	var next atomic.Int64
	b.SetParallelism(benchParallelism)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		g := int(next.Add(1)-1) % procs
		s := handles[g%len(handles)]
		var mine []store.Challenge
		for _, tpm := range tpms[g*4 : (g+1)*4] {
			mine = append(mine, challenge(b, tpm, t0))
		}
		for i := 0; pb.Next(); i++ {
			enrolmentRound(b, s, mine[i%len(mine)])
		}
	})
	reportOps(b)
}

// SampleReport is a benchmark report as bytes (its JSON and its signed
// bytes), for a reference that stores the same amount of data.
func SampleReport() []byte {
	r := report(1, at(time.Hour))
	body, err := json.Marshal(r)
	if err != nil {
		panic(err) // a fixed, valid report
	}
	return append(body, r.Signed...)
}

// ReportOps adds the ops/s metric to a reference benchmark.
func ReportOps(b *testing.B) { reportOps(b) }

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
