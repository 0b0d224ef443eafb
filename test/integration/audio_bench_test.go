//go:build linux

package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/test"
)

// Benchmarks of the audio path, each beside baresip measured in the same
// run: mouth-to-ear latency, intelligibility on a lossy link, and CPU per
// call. `make bench` runs them once each (-benchtime 1x): an iteration is
// a whole call.

// impulsePeriod is longer than any latency measured, so each impulse
// that arrives pairs with the one sent before it.
const impulsePeriod = time.Second

// impulseSource plays an impulse train at 16 kHz and notes when each frame
// is handed to the call: the mouth.
type impulseSource struct {
	mu      sync.Mutex
	samples []int16
	pos     int
	mouth   *test.Onsets
}

func (s *impulseSource) Rate() int { return speechRate }

func (s *impulseSource) ReadFrame(buf []int16) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := copy(buf, s.samples[min(s.pos, len(s.samples)):])
	clear(buf[n:])
	s.pos += len(buf)
	s.mouth.Frame(buf, time.Now())
	return len(buf), nil
}

// onsetSink notes when each frame is handed over for playback: the ear.
type onsetSink struct{ ear *test.Onsets }

func (s onsetSink) Rate() int { return speechRate }

func (s onsetSink) WriteFrame(buf []int16) error {
	s.ear.Frame(buf, time.Now())
	return nil
}

// newRecording waits for baresip to start a new recording whose name ends
// in suffix ("-enc.wav" or "-dec.wav") and returns its path.
func newRecording(t testing.TB, b *test.Baresip, before []string, suffix string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, f := range b.RecordedWAVs() {
			if strings.HasSuffix(f, suffix) && !contains(before, f) {
				return f
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("baresip %s started no %s recording", b.User(), suffix)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// latencyImpulses is how many impulses one call measures, after the first
// two (the jitter buffers settle on them).
const latencyImpulses = 10

// BenchmarkAudioLatency measures mouth-to-ear latency over loopback, G.722
// both ways, for hardphone sending to baresip and receiving from it, beside
// baresip sending to baresip (the reference, from the same run). An
// impulse train goes in; each impulse is timed where the sender takes it
// (hardphone: the Source's ReadFrame; baresip: the frame appearing in its
// sndfile dump of what it encodes) and where the receiver hands it on
// (hardphone: the Sink's WriteFrame; baresip: its dump of what it
// decodes, after its jitter buffer), with the same clock. Device latency is
// left out at both ends alike: it belongs to the sound card, not the
// phone. So is baresip's playout buffer (audio_buffer), which sits after
// the point its dump taps, while hardphone's sink is fed by its playout
// clock, after everything it holds back: the receive figure flatters
// baresip, not hardphone. The metric is the median over latencyImpulses
// impulses; the first two impulses of a call are not counted (the jitter
// buffers settle on them).
func BenchmarkAudioLatency(b *testing.B) {
	// This process times the impulses and runs the phone under test: the
	// same priority as baresip's.
	test.Renice(b, os.Getpid(), audioNice)
	b.Cleanup(func() { test.Renice(b, os.Getpid(), 0) })
	e := newEnv(b)
	dir := b.TempDir()
	train := filepath.Join(dir, "impulses.wav")
	test.WriteWAV(b, train, test.ImpulseTrain(speechRate, time.Second, impulsePeriod, 120), speechRate)
	start := func(user string, opts ...test.BaresipOption) *test.Baresip {
		_, _, pem := e.pki.Client(user)
		bs := test.StartBaresip(b, append([]test.BaresipOption{test.BaresipKamailio(e.k, user), test.BaresipCertificate(pem),
			test.BaresipModule("g722"), test.BaresipAudioCodecs(g722Baresip),
			test.BaresipRecordDir(filepath.Join(dir, user))}, opts...)...)
		test.Renice(b, bs.PID(), audioNice)
		return bs
	}
	carol := start("carol")                               // the ear
	dave := start("dave", test.BaresipAudioSource(train)) // the other mouth
	report := func(b *testing.B, ds []time.Duration) {
		med, _, _, s := test.DurationStats(ds)
		b.Logf("%s: %s", b.Name(), s)
		b.ReportMetric(med, "mouth_to_ear_ms")
	}

	b.Run("hardphone_to_baresip", func(b *testing.B) {
		p := e.startPhone(b, phoneConf{user: "alice"}, nil)
		p.waitRegistered(b)
		for range b.N {
			before := carol.RecordedWAVs()
			mouth := test.NewOnsets(speechRate, true)
			src := &impulseSource{samples: test.ImpulseTrain(speechRate, time.Second, impulsePeriod, latencyImpulses+4), mouth: mouth}
			c, err := p.acct.Dial(context.Background(), "sip:carol@"+e.k.IP(), sip.CallOptions{Source: src})
			if err != nil {
				b.Fatalf("Dial: %v", err)
			}
			ear := test.NewOnsets(speechRate, false)
			test.TailWAV(b, newRecording(b, carol, before, "-dec.wav"), ear)
			ds := test.Latencies(b, mouth, ear, 2, 2+latencyImpulses, 10*time.Second)
			c.Hangup(context.Background())
			carol.WaitEvent(b, "CALL_CLOSED", 10*time.Second)
			report(b, ds)
		}
	})
	b.Run("baresip_to_hardphone", func(b *testing.B) {
		var cur atomic.Pointer[test.Onsets] // the ear of the call being answered
		p := e.startPhone(b, phoneConf{user: "bob"}, func(*sip.Call) sip.CallOptions {
			return sip.CallOptions{Sink: onsetSink{cur.Load()}}
		})
		p.waitRegistered(b)
		for range b.N {
			before := dave.RecordedWAVs()
			ear := test.NewOnsets(speechRate, false)
			cur.Store(ear)
			dave.Dial(b, "sip:bob@"+e.k.IP())
			mouth := test.NewOnsets(speechRate, true)
			test.TailWAV(b, newRecording(b, dave, before, "-enc.wav"), mouth)
			ds := test.Latencies(b, mouth, ear, 2, 2+latencyImpulses, 10*time.Second)
			dave.Hangup(b)
			dave.WaitEvent(b, "CALL_CLOSED", 10*time.Second)
			report(b, ds)
		}
	})
	b.Run("baresip_to_baresip", func(b *testing.B) {
		for range b.N {
			beforeD, beforeC := dave.RecordedWAVs(), carol.RecordedWAVs()
			dave.Dial(b, "sip:carol@"+e.k.IP())
			mouth, ear := test.NewOnsets(speechRate, true), test.NewOnsets(speechRate, false)
			test.TailWAV(b, newRecording(b, dave, beforeD, "-enc.wav"), mouth)
			test.TailWAV(b, newRecording(b, carol, beforeC, "-dec.wav"), ear)
			ds := test.Latencies(b, mouth, ear, 2, 2+latencyImpulses, 10*time.Second)
			dave.Hangup(b)
			dave.WaitEvent(b, "CALL_CLOSED", 10*time.Second)
			report(b, ds)
		}
	})
}

// BenchmarkAudioIntelligibility scores speech received over the lossy link
// of TestAudioQuality (5 % loss, 40 ms of uniform jitter, both ways), by
// hardphone (its adaptive jitter buffer and concealment) and, on the same
// link from the same sender, by baresip with its default jitter buffer
// (1-10 frames) and with one sized for the link (5-15 frames), both with
// its concealment module. The sender is baresip in the peer namespace
// saying theirSentence in G.722; the metric is test.Intelligibility's
// STOI (and the segmental waveform correlation), averaged over the calls.
func BenchmarkAudioIntelligibility(b *testing.B) {
	r := newAudioRig(b)
	test.StartNetem(b, r.peer.LocalIf, lossyLink)
	sender := r.startBaresip(b, "bs5", g722Baresip)
	report := func(b *testing.B, scores []test.Score) {
		var stoi, corr float64
		for _, s := range scores {
			stoi += s.STOI
			corr += s.Correlation
			b.Logf("%s: %v", b.Name(), s)
		}
		b.ReportMetric(stoi/float64(len(scores)), "stoi")
		b.ReportMetric(corr/float64(len(scores)), "correlation")
	}
	hang := func(b *testing.B) {
		sender.Hangup(b)
		sender.WaitEvent(b, "CALL_CLOSED", 10*time.Second)
	}
	b.Run("hardphone", func(b *testing.B) {
		var mu sync.Mutex
		var sink *collectSink16
		p := startPhoneFrom(b, r.phoneConfigAudio(b, "hp5", ""), func(*sip.Call) sip.CallOptions {
			mu.Lock()
			defer mu.Unlock()
			return sip.CallOptions{Sink: sink}
		})
		p.waitRegistered(b)
		var scores []test.Score
		for range b.N {
			s := &collectSink16{}
			mu.Lock()
			sink = s
			mu.Unlock()
			sender.Dial(b, "sip:hp5@"+r.kamIP.String())
			sender.WaitEvent(b, "CALL_ESTABLISHED", 20*time.Second)
			s.waitFor(b, len(r.theirs)+speechRate, 30*time.Second)
			st := p.acct.Status()
			hang(b)
			if len(st.Calls) == 1 {
				m := st.Calls[0].Media
				b.Logf("hardphone: lost %d late %d concealed %d stretched %d compressed %d resets %d jitter %.1f ms playout %.1f/%.1f ms",
					m.PacketsLost, m.LateDropped, m.ConcealedFrames, m.Stretched, m.Compressed, m.StreamResets, m.JitterMS, m.PlayoutDelayMS, m.PlayoutTargetMS)
			}
			scores = append(scores, test.Intelligibility(b, r.theirs, speechRate, s.take(), speechRate))
		}
		report(b, scores)
	})
	for _, ref := range []struct{ name, user, jb string }{
		{"baresip_jb_1-10", "ref1", "1-10"},
		{"baresip_jb_5-15", "ref2", lossyBaresipJB},
	} {
		b.Run(ref.name, func(b *testing.B) {
			_, _, pem := r.e.pki.Client(ref.user)
			rb := test.StartBaresip(b, test.BaresipKamailio(r.e.k, ref.user), test.BaresipCertificate(pem),
				test.BaresipListenIP(r.peer.Local4.String()), test.BaresipMediaEnc("srtp-mand"),
				test.BaresipModule("g722"), test.BaresipModule("plc"), test.BaresipAudioCodecs(g722Baresip),
				test.BaresipJitterBuffer(ref.jb), test.BaresipRecordDir(filepath.Join(b.TempDir(), "rec")))
			test.Renice(b, rb.PID(), audioNice)
			var scores []test.Score
			for range b.N {
				before := rb.RecordedWAVs()
				sender.Dial(b, "sip:"+ref.user+"@"+r.kamIP.String())
				sender.WaitEvent(b, "CALL_ESTABLISHED", 20*time.Second)
				rec := newRecording(b, rb, before, "-dec.wav")
				waitWAVSamples(b, rec, len(r.theirs)+speechRate, 30*time.Second)
				hang(b)
				// sndfile writes the header's sizes when the call closes.
				rb.WaitEvent(b, "CALL_CLOSED", 10*time.Second)
				got, rate, err := test.ReadWAV(rec)
				if err != nil {
					b.Fatal(err)
				}
				scores = append(scores, test.Intelligibility(b, r.theirs, speechRate, got, rate))
			}
			report(b, scores)
		})
	}
}

// collectSink16 keeps what a call plays, at 16 kHz.
type collectSink16 struct {
	mu      sync.Mutex
	samples []int16
}

func (s *collectSink16) Rate() int { return speechRate }

func (s *collectSink16) WriteFrame(buf []int16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples = append(s.samples, buf...)
	return nil
}

func (s *collectSink16) take() []int16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int16(nil), s.samples...)
}

func (s *collectSink16) waitFor(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s.mu.Lock()
		got := len(s.samples)
		s.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink got %d samples in %v, want %d", got, timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitWAVSamples waits until a WAV file being written holds n samples.
func waitWAVSamples(t testing.TB, path string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if st, err := os.Stat(path); err == nil && st.Size() >= int64(44+2*n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not reach %d samples in %v", path, n, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkAudioCPU measures the CPU one active G.722 SRTP call costs:
// `hardphone run` answering baresip, both ends sending speech from a file,
// each process's user+system time over callCPUWindow of call minus the
// same window idle before it, per second of call. The reference is the
// baresip process at the other end of the same call, doing the same work
// (encode, decode, SRTP both ways, a jitter buffer).
func BenchmarkAudioCPU(b *testing.B) {
	const callCPUWindow = 10 * time.Second
	e := newEnv(b)
	dir := b.TempDir()
	speech := test.Speak(b, ourSentence+" "+theirSentence, speechRate, 0, 0)
	long := speech
	for len(long) < 60*speechRate {
		long = append(long, speech...)
	}
	wav := filepath.Join(dir, "speech.wav")
	test.WriteWAV(b, wav, long, speechRate)
	_, _, pem := e.pki.Client("dave")
	dave := test.StartBaresip(b, test.BaresipKamailio(e.k, "dave"), test.BaresipCertificate(pem),
		test.BaresipModule("g722"), test.BaresipAudioCodecs(g722Baresip), test.BaresipAudioSource(wav),
		test.BaresipAudioPlayer("aubridge,cpu"))
	cfg := e.writeConfig(b, phoneConf{user: "alice"})
	ap := startAgentProcess(b, "--config", cfg, "--play", wav)
	e.k.WaitRegistered(b, "alice", 15*time.Second)
	hp := ap.cmd.Process.Pid
	var hpMS, bsMS float64
	for range b.N {
		hp0, bs0 := cpuMS(b, hp), cpuMS(b, dave.PID())
		time.Sleep(callCPUWindow) // the idle window the call's is compared with; asserts nothing
		hpIdle, bsIdle := cpuMS(b, hp)-hp0, cpuMS(b, dave.PID())-bs0
		dave.Dial(b, "sip:alice@"+e.k.IP())
		dave.WaitEvent(b, "CALL_ESTABLISHED", 20*time.Second)
		time.Sleep(time.Second) // past call setup (TLS, SRTP keying): measure the steady call only
		hp1, bs1 := cpuMS(b, hp), cpuMS(b, dave.PID())
		time.Sleep(callCPUWindow) // the measured window; asserts nothing
		hpCall, bsCall := cpuMS(b, hp)-hp1, cpuMS(b, dave.PID())-bs1
		dave.Hangup(b)
		dave.WaitEvent(b, "CALL_CLOSED", 10*time.Second)
		hpMS += (hpCall - hpIdle) / callCPUWindow.Seconds()
		bsMS += (bsCall - bsIdle) / callCPUWindow.Seconds()
		b.Logf("hardphone: %.0f ms CPU in %v of call, %.0f ms idle; baresip: %.0f ms in call, %.0f ms idle",
			hpCall, callCPUWindow, hpIdle, bsCall, bsIdle)
	}
	b.ReportMetric(hpMS/float64(b.N), "hardphone_cpu_ms/call_s")
	b.ReportMetric(bsMS/float64(b.N), "baresip_cpu_ms/call_s")
}

// cpuMS is the user+system CPU time of process pid in milliseconds, from
// /proc/PID/stat (fields 14 and 15, in clock ticks of 10 ms).
func cpuMS(t testing.TB, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name (field 2) may hold spaces: count from after it.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		t.Fatalf("/proc/%d/stat: %q", pid, s)
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("/proc/%d/stat: %q", pid, s)
	}
	return (ut + st) * 10
}
