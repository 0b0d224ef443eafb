package audio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/test"
)

// These tests run against a real PulseAudio daemon (test.StartPulse) with
// null sinks instead of a sound card: what a PulseSink plays into the
// null sink comes back out of its monitor source, where a PulseSource
// records it.
//
// A null sink with nothing attached renders in 2-second blocks and only
// adopts a stream's lower latency at its next block, so the first frame
// can take up to 2 s: the tests give ReadFrame 5 s.
const firstFrameTimeout = 5 * time.Second

const (
	toneHz     = 1000
	toneAmpl   = 0.5 * math.MaxInt16
	toneFrames = 50 // one second
)

// openPair opens a sink on the null speaker and a source on its monitor.
func openPair(t testing.TB, p *test.Pulse, rate int, opts ...PulseOption) (*PulseSource, *PulseSink) {
	t.Helper()
	base := []PulseOption{PulseServer(p.Server), PulseAppName("hal-audio-test"), PulseReadTimeout(firstFrameTimeout)}
	src, err := OpenPulseSource(rate, append(slices.Clone(base), append(opts, PulseDevice(test.PulseSpeakerMonitor))...)...)
	if err != nil {
		t.Fatalf("OpenPulseSource(%d) = %v\n%s", rate, err, p.LogTail())
	}
	t.Cleanup(func() { src.Close() }) // ErrClosed when the test closed it already
	// The first frame arrives once the idle null sink has finished its
	// 2 s block and adopted our latency; a sink opened after that starts
	// at the low latency instead of underrunning on the long block.
	if _, err := src.ReadFrame(make([]int16, FrameSamplesAt(rate))); err != nil {
		t.Fatalf("first ReadFrame = %v", err)
	}
	sink, err := OpenPulseSink(rate, append(slices.Clone(base), append(opts, PulseDevice(test.PulseSpeaker))...)...)
	if err != nil {
		t.Fatalf("OpenPulseSink(%d) = %v\n%s", rate, err, p.LogTail())
	}
	t.Cleanup(func() { sink.Close() })
	return src, sink
}

// lockstep plays frames through sink while recording src at rate Hz: each
// frame read (one device period) is answered by one frame written, so the
// device's own clock paces the test and the playback buffer stays at its
// target. play(i, frame) fills the i-th frame to play. It returns the
// recording and, per frame, when ReadFrame returned it and when the
// answering WriteFrame was called.
func lockstep(t testing.TB, src Source, sink Sink, rate, frames int, play func(i int, frame []int16)) (rec []int16, readAt, wroteAt []time.Time) {
	t.Helper()
	fs := FrameSamplesAt(rate)
	rec = make([]int16, 0, frames*fs)
	readAt = make([]time.Time, 0, frames)
	wroteAt = make([]time.Time, 0, frames)
	in := make([]int16, fs)
	out := make([]int16, fs)
	// Two frames of silence fill the server's 40 ms target, so playback
	// starts.
	for range 2 {
		if err := sink.WriteFrame(out); err != nil {
			t.Fatalf("WriteFrame = %v", err)
		}
	}
	for i := range frames {
		n, err := src.ReadFrame(in)
		if err != nil || n != fs {
			t.Fatalf("ReadFrame #%d = %d, %v, want %d, nil", i, n, err, fs)
		}
		readAt = append(readAt, time.Now())
		rec = append(rec, in...)
		clear(out)
		play(i, out)
		wroteAt = append(wroteAt, time.Now())
		if err := sink.WriteFrame(out); err != nil {
			t.Fatalf("WriteFrame #%d = %v", i, err)
		}
	}
	return rec, readAt, wroteAt
}

// goertzel returns the power of x at freq Hz.
func goertzel(x []int16, freq float64, rate int) float64 {
	c := 2 * math.Cos(2*math.Pi*freq/float64(rate))
	var s1, s2 float64
	for _, v := range x {
		s1, s2 = float64(v)+c*s1-s2, s1
	}
	return s1*s1 + s2*s2 - c*s1*s2
}

func energy(x []int16) float64 {
	var e float64
	for _, v := range x {
		e += float64(v) * float64(v)
	}
	return e
}

// toneWorth returns how many frames' worth of the tone's energy rec
// holds, and the frames of rec that carry at least half a tone frame's
// energy.
func toneWorth(rec []int16, fs int) (worth float64, loud []int) {
	perFrame := float64(fs) * toneAmpl * toneAmpl / 2
	for i := 0; (i+1)*fs <= len(rec); i++ {
		e := energy(rec[i*fs : (i+1)*fs])
		worth += e / perFrame
		if e > perFrame/2 {
			loud = append(loud, i)
		}
	}
	return worth, loud
}

// bestToneWindow returns, among the quarter-second windows that start on a
// loud frame and hold only loud frames, the largest fraction of energy in
// the 1 kHz bin. An underrun on a loaded machine splices silence into the
// tone; a window that misses the splice still sees a clean tone.
func bestToneWindow(rec []int16, fs, rate int, loud []int) (best float64, at int) {
	n := rate / 4 // a whole number of cycles of every probe frequency
	isLoud := map[int]bool{}
	for _, i := range loud {
		isLoud[i] = true
	}
	for _, i := range loud {
		if i*fs+n > len(rec) || !isLoud[(i*fs+n-1)/fs] {
			continue
		}
		win := rec[i*fs : i*fs+n]
		frac := goertzel(win, toneHz, rate) / (energy(win) * float64(n) / 2)
		if frac > best {
			best, at = frac, i*fs
		}
	}
	return best, at
}

// TestPulseTone plays one second of a 1 kHz tone into the null sink and
// checks that its monitor delivers the same tone: the right length (a
// wrong rate would stretch it), the same level, and nearly all its energy
// in the 1 kHz bin (a wrong rate would move it). Both the 8 kHz and the
// 16 kHz stream rates run against a 48 kHz stereo server (resampled and
// remixed) and a 16 kHz mono one.
func TestPulseTone(t *testing.T) {
	for _, srv := range []struct {
		rate, channels int
	}{{48000, 2}, {16000, 1}} {
		t.Run(fmt.Sprintf("server%d_%dch", srv.rate, srv.channels), func(t *testing.T) {
			p := test.StartPulse(t, test.PulseRate(srv.rate), test.PulseChannels(srv.channels))
			for _, rate := range []int{8000, 16000} {
				t.Run(fmt.Sprint(rate), func(t *testing.T) {
					checkTone(t, p, rate)
				})
			}
		})
	}
}

func checkTone(t *testing.T, p *test.Pulse, rate int) {
	// Deep buffers: this checks the signal, not how a busy machine
	// schedules the daemon (bench_test.go measures latency).
	src, sink := openPair(t, p, rate, PulseLatency(200*time.Millisecond), PulseQueue(250))
	if src.Rate() != rate || sink.Rate() != rate {
		t.Fatalf("Rate() = %d, %d, want %d", src.Rate(), sink.Rate(), rate)
	}
	fs := FrameSamplesAt(rate)
	// Queue three seconds at once (10 frames of silence, the tone, then
	// silence) and let the server pull them at its pace while the monitor
	// is recorded: the device's clock, not the test's, times the audio.
	const total = 150
	frame := make([]int16, fs)
	pos := 0
	for i := range total {
		clear(frame)
		if i >= 10 && i < 10+toneFrames {
			for j := range frame {
				frame[j] = int16(toneAmpl * math.Sin(2*math.Pi*toneHz*float64(pos)/float64(rate)))
				pos++
			}
		}
		if err := sink.WriteFrame(frame); err != nil {
			t.Fatalf("WriteFrame #%d = %v", i, err)
		}
	}
	// Stop reading 400 ms before the queue runs out: the underrun that
	// ends the playback is not one to count.
	rec := make([]int16, 0, total*fs)
	for i := range total - 20 {
		n, err := src.ReadFrame(frame)
		if err != nil || n != fs {
			t.Fatalf("ReadFrame #%d = %d, %v, want %d, nil", i, n, err, fs)
		}
		rec = append(rec, frame...)
	}
	// Underruns delay the tone but lose none of it; a wrong rate would
	// stretch or squeeze it (and drops would show in Overruns).
	worth, loud := toneWorth(rec, fs)
	lo := toneFrames - 1.5
	if st := sink.Stats(); st.Underruns > 0 {
		// After an underrun the server skips what was due while it played
		// silence: audio can get lost, never added. A starved daemon on a
		// busy machine does that; a rate error halves or doubles the tone.
		lo = toneFrames * 0.8
		t.Logf("sink Stats() = %+v: the daemon was starved; accepting %.0f..%.1f frames", st, lo, toneFrames+1.5)
	}
	if worth < lo || worth > toneFrames+1.5 {
		t.Fatalf("recording holds %.1f frames' worth of the tone, want %.1f..%.1f (sink %+v)", worth, lo, toneFrames+1.5, sink.Stats())
	}
	frac, at := bestToneWindow(rec, fs, rate, loud)
	if frac < 0.95 {
		t.Fatalf("best quarter second puts %.3f of its energy in the 1 kHz bin, want >= 0.95 (sink %+v)", frac, sink.Stats())
	}
	win := rec[at : at+rate/4]
	inBin := goertzel(win, toneHz, rate)
	for _, f := range []float64{500, 1500, 2000, 3000} {
		if r := goertzel(win, f, rate) / inBin; r > 1e-3 {
			t.Errorf("power at %v Hz is %.2g of the 1 kHz power, want < 1e-3", f, r)
		}
	}
	rms := math.Sqrt(energy(win) / float64(len(win)))
	if want := toneAmpl / math.Sqrt2; math.Abs(20*math.Log10(rms/want)) > 1 {
		t.Errorf("tone RMS %.0f, want %.0f within 1 dB", rms, want)
	}
	if st := src.Stats(); st.Overruns != 0 {
		t.Errorf("source Stats() = %+v, want no overruns", st)
	}
	if st := sink.Stats(); st.Overruns != 0 {
		t.Errorf("sink Stats() = %+v, want no overruns", st)
	}
}

func TestPulseListDevices(t *testing.T) {
	p := test.StartPulse(t)
	devs, err := ListPulseDevices(PulseServer(p.Server))
	if err != nil {
		t.Fatalf("ListPulseDevices = %v", err)
	}
	byName := map[string]PulseDeviceInfo{}
	for _, d := range devs {
		byName[d.Name] = d
	}
	tests := []struct {
		name string
		want PulseDeviceInfo
	}{
		{test.PulseSpeaker, PulseDeviceInfo{Kind: Playback, Name: test.PulseSpeaker, Description: "hardphone-speaker", Rate: 48000, Channels: 2, Default: true}},
		{test.PulseSpeakerMonitor, PulseDeviceInfo{Kind: Capture, Name: test.PulseSpeakerMonitor, MonitorOf: test.PulseSpeaker, Rate: 48000, Channels: 2}},
		{test.PulseMic, PulseDeviceInfo{Kind: Capture, Name: test.PulseMic, Description: "hardphone-mic", Rate: 48000, Channels: 2, Default: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := byName[tt.name]
			if !ok {
				t.Fatalf("ListPulseDevices() = %+v, want an entry %q", devs, tt.name)
			}
			if tt.want.Description == "" {
				tt.want.Description = got.Description // the server words monitors itself
			}
			if got != tt.want {
				t.Fatalf("ListPulseDevices()[%q] = %+v, want %+v", tt.name, got, tt.want)
			}
		})
	}
}

func TestPulseBadDevice(t *testing.T) {
	p := test.StartPulse(t)
	sinkInputs, sourceOutputs := p.Streams(t)
	tests := []struct {
		name string
		open func() error
	}{
		{"sink", func() error {
			_, err := OpenPulseSink(8000, PulseServer(p.Server), PulseDevice("no_such_sink"))
			return err
		}},
		{"source", func() error {
			_, err := OpenPulseSource(8000, PulseServer(p.Server), PulseDevice("no_such_sink"))
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.open()
			if !errors.Is(err, ErrNoDevice) || !strings.Contains(err.Error(), `"no_such_sink"`) {
				t.Fatalf("open %s no_such_sink = %v, want ErrNoDevice naming the device", tt.name, err)
			}
		})
	}
	// A refused open leaves nothing behind on the server.
	si, so := p.Streams(t)
	if !slices.Equal(si, sinkInputs) || !slices.Equal(so, sourceOutputs) {
		t.Fatalf("streams after refused opens = %q, %q, want %q, %q", si, so, sinkInputs, sourceOutputs)
	}
}

func TestPulseBadServer(t *testing.T) {
	tests := []struct {
		name string
		opt  PulseOption
		want error
	}{
		{"unknown scheme", PulseServer("http://localhost"), errBadOption},
		{"empty path", PulseServer("unix:"), errBadOption},
		{"too long", PulseServer("unix:/" + strings.Repeat("a", 2000)), errBadOption},
		{"nothing listens", PulseServer("unix:/nonexistent/hardphone/native"), nil},
		{"NUL in device", PulseDevice("a\x00b"), errBadOption},
		{"latency too low", PulseLatency(time.Millisecond), errBadOption},
		{"queue too big", PulseQueue(10000), errBadOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := OpenPulseSink(8000, tt.opt)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("OpenPulseSink(8000, %s) = %v, want %v", tt.name, err, tt.want)
			}
		})
	}
	if _, err := OpenPulseSink(11025, PulseServer("unix:/nonexistent")); !errors.Is(err, ErrUnsupportedFormat) {
		t.Fatalf("OpenPulseSink(11025) = %v, want ErrUnsupportedFormat", err)
	}
}

// TestPulseClose checks that Close removes the streams from the server,
// wakes a blocked ReadFrame, and that the devices refuse use afterwards.
func TestPulseClose(t *testing.T) {
	p := test.StartPulse(t)
	sinkInputs, sourceOutputs := p.Streams(t)
	src, sink := openPair(t, p, 16000)
	si, so := p.Streams(t)
	if len(si) != len(sinkInputs)+1 || len(so) != len(sourceOutputs)+1 {
		t.Fatalf("streams while open = %q, %q; want one more of each than %q, %q", si, so, sinkInputs, sourceOutputs)
	}
	// Stop reading so a ReadFrame on a fresh buffer blocks, then close
	// under it.
	big := make([]int16, 10*FrameSamplesAt(16000))
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := src.ReadFrame(big); err != nil {
				done <- err
				return
			}
		}
	}()
	if err := src.Close(); err != nil {
		t.Fatalf("source Close = %v", err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadFrame during Close = %v, want ErrClosed", err)
	}
	if err := sink.Close(); err != nil {
		t.Fatalf("sink Close = %v", err)
	}
	if si, so := p.Streams(t); !slices.Equal(si, sinkInputs) || !slices.Equal(so, sourceOutputs) {
		t.Fatalf("streams after Close = %q, %q, want %q, %q", si, so, sinkInputs, sourceOutputs)
	}
	if _, err := src.ReadFrame(big); !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadFrame after Close = %v, want ErrClosed", err)
	}
	if err := sink.WriteFrame(big); !errors.Is(err, ErrClosed) {
		t.Fatalf("WriteFrame after Close = %v, want ErrClosed", err)
	}
	if err := sink.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v, want ErrClosed", err)
	}
}

// TestPulseServerGone stops the daemon under open streams: both devices
// report ErrDisconnected instead of hanging.
func TestPulseServerGone(t *testing.T) {
	p := test.StartPulse(t)
	src, sink := openPair(t, p, 8000)
	frame := make([]int16, FrameSamplesAt(8000))
	if _, err := src.ReadFrame(frame); err != nil {
		t.Fatalf("ReadFrame = %v", err)
	}
	p.Stop(t)
	var err error
	for err == nil {
		_, err = src.ReadFrame(frame)
	}
	if !errors.Is(err, ErrDisconnected) {
		t.Fatalf("ReadFrame after the server stopped = %v, want ErrDisconnected", err)
	}
	for err = nil; err == nil; {
		err = sink.WriteFrame(frame)
		if err == nil {
			// The sender notices on its next send or the read loop on EOF.
			_, _ = src.ReadFrame(frame) // paces the loop; returns the same error
		}
	}
	if !errors.Is(err, ErrDisconnected) {
		t.Fatalf("WriteFrame after the server stopped = %v, want ErrDisconnected", err)
	}
	if err := src.Close(); err != nil {
		t.Fatalf("Close after disconnect = %v", err)
	}
}

// TestPulseStalled records from the monitor of a suspended sink: ReadFrame
// returns ErrStalled after its timeout, and frames once the sink resumes.
func TestPulseStalled(t *testing.T) {
	p := test.StartPulse(t)
	p.Pactl(t, "suspend-sink", test.PulseSpeaker, "1")
	src, err := OpenPulseSource(8000, PulseServer(p.Server), PulseDevice(test.PulseSpeakerMonitor),
		PulseReadTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatalf("OpenPulseSource = %v", err)
	}
	defer src.Close()
	frame := make([]int16, FrameSamplesAt(8000))
	if _, err := src.ReadFrame(frame); !errors.Is(err, ErrStalled) {
		t.Fatalf("ReadFrame from a suspended source = %v, want ErrStalled", err)
	}
	// Resuming restarts the sink's clock at once, at our stream's latency.
	p.Pactl(t, "suspend-sink", test.PulseSpeaker, "0")
	if _, err := src.ReadFrame(frame); err != nil {
		t.Fatalf("ReadFrame after resume = %v", err)
	}
}

// TestPulseServerFallback lists two bad addresses before the live one (one
// nobody listens on, one that hangs up after accepting): the device opens
// on the third, and the failed attempts leave it healthy.
func TestPulseServerFallback(t *testing.T) {
	p := test.StartPulse(t)
	dir, err := os.MkdirTemp("", "hangup-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	l, err := net.Listen("unix", dir+"/s")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	srv := "unix:" + dir + "/nobody-listens unix:" + dir + "/s " + p.Server
	src, err := OpenPulseSource(8000, PulseServer(srv), PulseDevice(test.PulseSpeakerMonitor), PulseReadTimeout(firstFrameTimeout))
	if err != nil {
		t.Fatalf("OpenPulseSource(%q) = %v", srv, err)
	}
	defer src.Close()
	if _, err := src.ReadFrame(make([]int16, FrameSamplesAt(8000))); err != nil {
		t.Fatalf("ReadFrame = %v", err)
	}
}

// TestPulseVirtualMic plays a tone with libpulse's pacat into the harness's
// microphone feed and records it with a PulseSource on the server's
// default source (no PulseDevice): the virtual microphone a call test
// speaks into.
func TestPulseVirtualMic(t *testing.T) {
	p := test.StartPulse(t)
	const rate = 16000
	src, err := OpenPulseSource(rate, PulseServer(p.Server), PulseReadTimeout(firstFrameTimeout), PulseQueue(250))
	if err != nil {
		t.Fatalf("OpenPulseSource(default) = %v", err)
	}
	defer src.Close()
	fs := FrameSamplesAt(rate)
	frame := make([]int16, fs)
	if _, err := src.ReadFrame(frame); err != nil {
		t.Fatalf("first ReadFrame = %v", err)
	}
	var raw []byte
	for i := range 10 + toneFrames + 40 {
		for j := range fs {
			v := int16(0)
			if i >= 10 && i < 10+toneFrames {
				v = int16(toneAmpl * math.Sin(2*math.Pi*toneHz*float64((i-10)*fs+j)/rate))
			}
			raw = binary.LittleEndian.AppendUint16(raw, uint16(v))
		}
	}
	w := p.Pacat(t, test.PulseMicSink, rate, 200*time.Millisecond)
	go func() {
		// The pipe holds less than the whole signal; pacat drains it at
		// the device's pace. An error here shows up as a missing tone.
		_, _ = w.Write(raw)
	}()
	rec := make([]int16, 0, 90*fs)
	for i := range 90 {
		if _, err := src.ReadFrame(frame); err != nil {
			t.Fatalf("ReadFrame #%d = %v", i, err)
		}
		rec = append(rec, frame...)
	}
	worth, loud := toneWorth(rec, fs)
	if worth < toneFrames-1.5 || worth > toneFrames+1.5 {
		t.Fatalf("recording holds %.1f frames' worth of the tone, want %d±1.5", worth, toneFrames)
	}
	if frac, _ := bestToneWindow(rec, fs, rate, loud); frac < 0.95 {
		t.Fatalf("best quarter second puts %.3f of its energy in the 1 kHz bin, want >= 0.95", frac)
	}
	// Buffered counts what waits: let frames pile up (pacat is still
	// playing its tail of silence), then read one and see the count fall by
	// a frame's worth.
	deadline := time.Now().Add(firstFrameTimeout)
	for src.Buffered() < 3*fs {
		if time.Now().After(deadline) {
			t.Fatalf("Buffered() = %d after %v, want at least %d queued", src.Buffered(), firstFrameTimeout, 3*fs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	before := src.Buffered()
	if _, err := src.ReadFrame(frame); err != nil {
		t.Fatalf("ReadFrame = %v", err)
	}
	// Capture goes on meanwhile; in the microseconds between the two calls
	// at most one 20 ms fragment can arrive, so the frame read away shows.
	if after := src.Buffered(); after > before {
		t.Fatalf("Buffered() %d before ReadFrame, %d after: want a frame (%d) fewer, give or take one fragment", before, after, fs)
	}
}
