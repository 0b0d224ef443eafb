package media

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// logBuffer collects a session's logs; they are printed if the test fails.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func testLogger(t *testing.T, name string) (*slog.Logger, *logBuffer) {
	t.Helper()
	lb := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs of %s:\n%s", name, lb.String())
		}
	})
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})).With("side", name), lb
}

func testConfig(t *testing.T, name string, sec Security) Config {
	log, _ := testLogger(t, name)
	return Config{Security: sec, SignalingTLS: true, LocalIP: loopback, Logger: log,
		Destinations: DestinationPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}
}

func newTestSession(t *testing.T, cfg Config) *Session {
	t.Helper()
	s, err := NewSession(cfg)
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// waitFor polls cond until it holds; the deadline only bounds a failing test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// negotiate runs a's offer against b's answer, with optional rewrites of
// the SDP on the way (playing a middlebox or a differently-behaved peer).
func negotiate(t *testing.T, a, b *Session, offerEdit, answerEdit func(string) string) {
	t.Helper()
	offer, err := a.Offer()
	if err != nil {
		t.Fatalf("Offer: %v", err)
	}
	o := string(offer)
	if offerEdit != nil {
		o = offerEdit(o)
	}
	answer, err := b.Answer([]byte(o))
	if err != nil {
		t.Fatalf("Answer: %v\noffer:\n%s", err, o)
	}
	ans := string(answer)
	if answerEdit != nil {
		ans = answerEdit(ans)
	}
	if err := a.SetAnswer([]byte(ans)); err != nil {
		t.Fatalf("SetAnswer: %v\nanswer:\n%s", err, ans)
	}
}

// startBoth runs Start on both sides at once (a DTLS handshake needs both).
func startBoth(t *testing.T, a, b *Session) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- b.Start(ctx) }()
	if err := a.Start(ctx); err != nil {
		t.Fatalf("a.Start: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("b.Start: %v", err)
	}
}

// call sets up a call between two fresh sessions.
func call(t *testing.T, cfgA, cfgB Config, offerEdit, answerEdit func(string) string) (*Session, *Session) {
	t.Helper()
	a, b := newTestSession(t, cfgA), newTestSession(t, cfgB)
	negotiate(t, a, b, offerEdit, answerEdit)
	startBoth(t, a, b)
	return a, b
}

// toneSource produces a sine wave in 160-sample frames, endlessly or for
// a number of frames.
type toneSource struct {
	mu     sync.Mutex
	freq   float64
	n      int
	frames int // 0: endless
}

func (s *toneSource) ReadFrame(buf []int16) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range buf {
		buf[i] = int16(8000 * math.Sin(2*math.Pi*s.freq*float64(s.n)/sampleRate))
		s.n++
	}
	return len(buf), nil
}

// collectSink keeps what it is given and signals once it holds want samples.
type collectSink struct {
	mu      sync.Mutex
	samples []int16
	want    int
	full    chan struct{}
	once    sync.Once
}

func newCollectSink(want int) *collectSink {
	return &collectSink{want: want, full: make(chan struct{})}
}

// WriteFrame keeps frames from the first audible one on: the playout
// clock writes silence until the peer's audio arrives.
func (c *collectSink) WriteFrame(buf []int16) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.samples) == 0 && !audible(buf) {
		return nil
	}
	c.samples = append(c.samples, buf...)
	if len(c.samples) >= c.want {
		c.once.Do(func() { close(c.full) })
	}
	return nil
}

func (c *collectSink) wait(t *testing.T, what string) []int16 {
	t.Helper()
	select {
	case <-c.full:
	case <-time.After(15 * time.Second):
		t.Fatalf("timed out waiting for %d samples of %s", c.want, what)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int16(nil), c.samples...)
}

// audible reports whether a frame has a sample above -36 dBFS.
func audible(buf []int16) bool {
	for _, v := range buf {
		if v > 500 || v < -500 {
			return true
		}
	}
	return false
}

// goertzel returns the power of freq in samples (Goertzel's algorithm).
func goertzel(samples []int16, freq float64) float64 {
	k := 2 * math.Cos(2*math.Pi*freq/sampleRate)
	var s1, s2 float64
	for _, x := range samples {
		s0 := float64(x) + k*s1 - s2
		s2, s1 = s1, s0
	}
	return s1*s1 + s2*s2 - k*s1*s2
}

// assertTone checks that samples carry freq and not the other probes.
func assertTone(t *testing.T, what string, samples []int16, freq float64) {
	t.Helper()
	if err := toneCheck(samples, freq); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func toneCheck(samples []int16, freq float64) error {
	if len(samples) < 4*frameSamples {
		return fmt.Errorf("only %d samples", len(samples))
	}
	// Skip the first two frames: the codec's and the resampler's state
	// settle in them.
	s := samples[2*frameSamples:]
	want := goertzel(s, freq)
	for _, other := range []float64{300, 440, 660, 1000, 1500, 2500} {
		if other == freq {
			continue
		}
		if p := goertzel(s, other); p*100 > want {
			return fmt.Errorf("power at %v Hz %.3g not 100x above %v Hz %.3g", freq, want, other, p)
		}
	}
	var energy float64
	for _, x := range s {
		energy += float64(x) * float64(x)
	}
	// The tone has amplitude 8000: mean square 3.2e7, which the codecs keep
	// within a few percent. A test machine that holds up a sender for tens
	// of milliseconds makes the jitter buffer conceal a few frames, which
	// fade: down to half the power is still the tone arriving.
	if ms := energy / float64(len(s)); ms < 1.6e7 || ms > 4e7 {
		return fmt.Errorf("mean square %.3g, want about 3.2e7", ms)
	}
	return nil
}

// sdpLines returns the lines of body that start with prefix.
func sdpLines(body, prefix string) []string {
	var out []string
	for _, l := range strings.Split(body, "\r\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

func replaceLine(body, prefix, with string) string {
	var out []string
	for _, l := range strings.Split(body, "\r\n") {
		if strings.HasPrefix(l, prefix) {
			if with == "" {
				continue
			}
			l = with
		}
		out = append(out, l)
	}
	return strings.Join(out, "\r\n")
}
