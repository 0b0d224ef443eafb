package audio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jfreymuth/pulse/proto"
)

// Queue policy (both directions): drop the oldest samples, never block.
//
//   - PulseSink: WriteFrame copies the frame into a bounded queue and
//     returns at once; a sender goroutine hands the server as many bytes as
//     it has asked for (the protocol's REQUEST credit). When the call writes
//     faster than the device plays (clock drift, a burst out of the jitter
//     buffer), the oldest queued samples are dropped (Stats.Overruns), which
//     caps the added delay at the queue length instead of letting it grow.
//     When the device runs dry the server plays silence and reports an
//     underflow (Stats.Underruns).
//   - PulseSource: the library's read goroutine copies each audio packet into
//     a bounded queue, dropping the oldest samples if ReadFrame has fallen
//     behind (Stats.Overruns). ReadFrame blocks until a whole frame is
//     queued, at most the read timeout (then ErrStalled), so the device's
//     clock paces the caller.

// pulseSampleBytes is the size of one mono S16LE sample.
const pulseSampleBytes = 2

// pulseStream is what a PulseSource and a PulseSink share: the connection,
// the queue and the sticky error.
type pulseStream struct {
	rate  int
	kind  string       // "playback" or "capture", for messages
	log   *slog.Logger // never nil
	pc    *pulseConn   // nil until open succeeds
	index uint32       // server's stream index; written before any use by a reader goroutine

	mu     sync.Mutex // guards the fields below; never held across a server request
	q      ring
	err    error // sticky: ErrClosed or a wrapped ErrDisconnected; nil while healthy
	closed bool
	stats  Stats

	// wake (capacity 1) is signalled when samples, credit or an error
	// arrive; done is closed by Close.
	wake chan struct{}
	done chan struct{}
}

func newPulseStream(cfg *pulseConfig, rate int, kind string) pulseStream {
	return pulseStream{
		rate: rate,
		kind: kind,
		log:  cfg.log.With("component", "pulse", "stream", kind),
		q:    newRing(cfg.queueFrames * FrameSamplesAt(rate)),
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
}

func (s *pulseStream) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// broken records that the server side is gone. It is called on the
// library's read goroutine (connection error, stream killed) and is a no-op
// once the device is closed or already broken.
func (s *pulseStream) broken(why error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = fmt.Errorf("pulse %s stream: %v: %w", s.kind, why, ErrDisconnected)
		s.log.Warn("pulse stream lost", "err", why)
	}
	s.mu.Unlock()
	s.signal()
}

// Rate is the stream's sample rate in Hz.
func (s *pulseStream) Rate() int { return s.rate }

// Buffered is the number of samples waiting in the queue between the
// server connection and the call: captured and not yet read by ReadFrame,
// or written by WriteFrame and not yet asked for by the server. A call
// uses it to keep the delay the queue adds small (it fills while a call
// rings, and when the device's clock and the call's drift apart).
func (s *pulseStream) Buffered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.q.n
}

// Stats returns the loss counters since the stream was opened.
func (s *pulseStream) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// close marks the stream closed, deletes it on the server and closes the
// connection. stop runs between marking and deleting (the sink stops its
// sender there).
func (s *pulseStream) close(del proto.RequestArgs, stop func()) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	wasBroken := s.err != nil
	s.err = ErrClosed
	s.mu.Unlock()
	close(s.done)
	if stop != nil {
		stop()
	}
	var errs []error
	if !wasBroken {
		if err := s.pc.c.Request(del, nil); err != nil {
			errs = append(errs, fmt.Errorf("delete stream %d: %w", s.index, err))
		}
	}
	if err := s.pc.conn.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close pulse stream: %w", err)
	}
	return nil
}

// onMsg handles what both stream kinds receive on the read goroutine.
func (s *pulseStream) onMsg(msg any) {
	switch m := msg.(type) {
	case *proto.ConnectionClosed:
		s.broken(errors.New("server closed the connection"))
	case *proto.PlaybackStreamKilled, *proto.RecordStreamKilled:
		s.broken(errors.New("server killed the stream"))
	case *proto.PlaybackStreamSuspended:
		s.log.Info("pulse device suspended", "suspended", m.Suspended)
	case *proto.RecordStreamSuspended:
		s.log.Info("pulse device suspended", "suspended", m.Suspended)
	case *proto.PlaybackStreamMoved:
		s.log.Info("pulse stream moved", "device", m.DestName)
	case *proto.RecordStreamMoved:
		s.log.Info("pulse stream moved", "device", m.DestName)
	}
}

// PulseSink plays 16-bit mono frames on a PulseAudio sink. It implements
// Sink; WriteFrame never blocks on the device (see the queue policy above).
type PulseSink struct {
	pulseStream
	// credit is the number of bytes the server has requested and not yet
	// received; guarded by mu.
	credit int
	// pcm and out are the sender goroutine's scratch buffers.
	pcm        []int16
	out        []byte
	senderDone chan struct{}
}

// OpenPulseSink opens a playback stream at rate Hz (8000, 16000, 32000 or
// 48000), mono, on the sink PulseDevice names or the server's default. The
// server resamples to the device's rate.
func OpenPulseSink(rate int, opts ...PulseOption) (*PulseSink, error) {
	if err := checkRate(rate); err != nil {
		return nil, fmt.Errorf("open pulse sink: %w", err)
	}
	cfg, err := newPulseConfig(opts)
	if err != nil {
		return nil, fmt.Errorf("open pulse sink: %w", err)
	}
	s := &PulseSink{pulseStream: newPulseStream(&cfg, rate, "playback"), senderDone: make(chan struct{})}
	chunk := cfg.queueFrames * FrameSamplesAt(rate)
	s.pcm = make([]int16, chunk)
	s.out = make([]byte, chunk*pulseSampleBytes)
	pc, err := dialPulse(&cfg, s.onMsg, func(err error) { s.broken(err) })
	if err != nil {
		return nil, fmt.Errorf("open pulse sink: %w", err)
	}
	s.pc = pc
	if cfg.device != "" {
		var info proto.GetSinkInfoReply
		if err := pc.c.Request(&proto.GetSinkInfo{SinkIndex: proto.Undefined, SinkName: cfg.device}, &info); err != nil {
			pc.conn.Close()
			return nil, fmt.Errorf("open pulse sink %q on %s: %v: %w", cfg.device, pc.addr, err, ErrNoDevice)
		}
	}
	frameBytes := uint32(FrameSamplesAt(rate) * pulseSampleBytes)
	tlength := uint32(cfg.latency.Seconds()*float64(rate)) * pulseSampleBytes
	req := proto.CreatePlaybackStream{
		SampleSpec: proto.SampleSpec{Format: proto.FormatInt16LE, Channels: 1, Rate: uint32(rate)},
		ChannelMap: proto.ChannelMap{proto.ChannelMono},
		SinkIndex:  proto.Undefined,
		SinkName:   cfg.device,
		// The server never holds more than four latency targets of ours.
		BufferMaxLength:    4 * tlength,
		BufferTargetLength: tlength,
		// Playback starts once tlength is buffered, and again after an
		// underflow (the server's default prebuf).
		BufferPrebufferLength: proto.Undefined,
		BufferMinimumRequest:  frameBytes,
		SyncID:                proto.Undefined,
		ChannelVolumes:        proto.ChannelVolumes{uint32(proto.VolumeNorm)},
		AdjustLatency:         true,
		Properties:            pulseStreamProps(&cfg, "playback"),
	}
	var reply proto.CreatePlaybackStreamReply
	if err := pc.c.Request(&req, &reply); err != nil {
		pc.conn.Close()
		if errors.Is(err, proto.ErrNoSuchEntity) {
			err = fmt.Errorf("%v: %w", err, ErrNoDevice)
		}
		return nil, fmt.Errorf("open pulse sink %q: create stream: %w", cfg.device, err)
	}
	s.index = reply.StreamIndex
	s.mu.Lock()
	s.credit += int(reply.Missing)
	s.mu.Unlock()
	s.log.Info("pulse playback open", "server", pc.addr, "device", reply.SinkName, "rate", rate,
		"tlength_bytes", reply.BufferTargetLength, "sink_latency_us", uint64(reply.SinkLatency))
	go s.sender()
	return s, nil
}

func (s *PulseSink) onMsg(msg any) {
	switch m := msg.(type) {
	case *proto.Request:
		s.mu.Lock()
		// The server never asks for more than its buffer; cap anyway so a
		// bogus length cannot make the credit overflow.
		s.credit = min(s.credit+int(m.Length), 1<<24)
		s.mu.Unlock()
		s.signal()
	case *proto.Underflow:
		s.mu.Lock()
		s.stats.Underruns++
		s.mu.Unlock()
	case *proto.Overflow:
		// We only send what was asked for, so the server dropping our
		// data means it shrank its buffer under us.
		s.mu.Lock()
		s.stats.Overruns++
		s.mu.Unlock()
	default:
		s.pulseStream.onMsg(msg)
	}
}

// sender moves queued samples to the server whenever it has credit.
func (s *PulseSink) sender() {
	defer close(s.senderDone)
	for {
		select {
		case <-s.wake:
		case <-s.done:
			return
		}
		for {
			s.mu.Lock()
			if s.err != nil {
				s.mu.Unlock()
				return
			}
			k := min(s.credit/pulseSampleBytes, s.q.n, len(s.pcm))
			n := s.q.pop(s.pcm[:k])
			s.credit -= n * pulseSampleBytes
			s.mu.Unlock()
			if n == 0 {
				break
			}
			for i, v := range s.pcm[:n] {
				binary.LittleEndian.PutUint16(s.out[2*i:], uint16(v))
			}
			if err := s.pc.c.Send(s.index, s.out[:n*pulseSampleBytes]); err != nil {
				s.broken(err)
				return
			}
		}
	}
}

// WriteFrame queues buf for playback and returns without waiting for the
// device. It returns ErrClosed after Close and an error wrapping
// ErrDisconnected once the server has dropped the stream.
func (s *PulseSink) WriteFrame(buf []int16) error {
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return err
	}
	if d := s.q.push(buf); d > 0 {
		s.stats.Overruns++
		s.stats.Dropped += uint64(d)
	}
	s.mu.Unlock()
	s.signal()
	return nil
}

// Close stops playback at once (queued audio is discarded), deletes the
// stream on the server and closes the connection. A second Close returns
// ErrClosed.
func (s *PulseSink) Close() error {
	return s.close(&proto.DeletePlaybackStream{StreamIndex: s.index}, func() {
		// A server that stopped reading would hold the sender (and the
		// delete request) in a socket write forever: bound both.
		_ = s.pc.conn.SetWriteDeadline(time.Now().Add(pulseRequestTimeout)) // only fails on a closed conn
		<-s.senderDone
	})
}

// PulseSource records 16-bit mono frames from a PulseAudio source (a
// microphone, or a sink's monitor). It implements Source.
type PulseSource struct {
	pulseStream
	timeout time.Duration
	// timer bounds ReadFrame's wait; only ReadFrame touches it.
	timer *time.Timer
	// conv is the read goroutine's scratch buffer; odd holds a sample's
	// first byte when a packet ends mid-sample (oddSet says whether).
	conv   []int16
	odd    byte
	oddSet bool
}

// OpenPulseSource opens a record stream at rate Hz (8000, 16000, 32000 or
// 48000), mono, on the source PulseDevice names or the server's default.
func OpenPulseSource(rate int, opts ...PulseOption) (*PulseSource, error) {
	if err := checkRate(rate); err != nil {
		return nil, fmt.Errorf("open pulse source: %w", err)
	}
	cfg, err := newPulseConfig(opts)
	if err != nil {
		return nil, fmt.Errorf("open pulse source: %w", err)
	}
	t := time.NewTimer(time.Hour)
	t.Stop()
	s := &PulseSource{
		pulseStream: newPulseStream(&cfg, rate, "capture"),
		timeout:     cfg.readTimeout,
		timer:       t,
		conv:        make([]int16, 2048),
	}
	pc, err := dialPulse(&cfg, s.onMsg, func(err error) { s.broken(err) })
	if err != nil {
		return nil, fmt.Errorf("open pulse source: %w", err)
	}
	s.pc = pc
	if cfg.device != "" {
		var info proto.GetSourceInfoReply
		if err := pc.c.Request(&proto.GetSourceInfo{SourceIndex: proto.Undefined, SourceName: cfg.device}, &info); err != nil {
			pc.conn.Close()
			return nil, fmt.Errorf("open pulse source %q on %s: %v: %w", cfg.device, pc.addr, err, ErrNoDevice)
		}
	}
	frag := uint32((cfg.latency/2).Seconds()*float64(rate)) * pulseSampleBytes
	req := proto.CreateRecordStream{
		SampleSpec:         proto.SampleSpec{Format: proto.FormatInt16LE, Channels: 1, Rate: uint32(rate)},
		ChannelMap:         proto.ChannelMap{proto.ChannelMono},
		SourceIndex:        proto.Undefined,
		SourceName:         cfg.device,
		BufferMaxLength:    uint32(cfg.queueFrames*FrameSamplesAt(rate)) * pulseSampleBytes,
		BufferFragSize:     frag,
		AdjustLatency:      true,
		Properties:         pulseStreamProps(&cfg, "capture"),
		DirectOnInputIndex: proto.Undefined,
		ChannelVolumes:     proto.ChannelVolumes{uint32(proto.VolumeNorm)},
	}
	var reply proto.CreateRecordStreamReply
	if err := pc.c.Request(&req, &reply); err != nil {
		pc.conn.Close()
		if errors.Is(err, proto.ErrNoSuchEntity) {
			err = fmt.Errorf("%v: %w", err, ErrNoDevice)
		}
		return nil, fmt.Errorf("open pulse source %q: create stream: %w", cfg.device, err)
	}
	s.index = reply.StreamIndex
	s.log.Info("pulse capture open", "server", pc.addr, "device", reply.SourceName, "rate", rate,
		"fragsize_bytes", reply.BufferFragSize, "source_latency_us", uint64(reply.SourceLatency))
	return s, nil
}

func (s *PulseSource) onMsg(msg any) {
	switch m := msg.(type) {
	case *proto.DataPacket:
		s.onData(m.Data)
	case *proto.Overflow:
		s.mu.Lock()
		s.stats.Overruns++
		s.mu.Unlock()
	default:
		s.pulseStream.onMsg(msg)
	}
}

// onData queues one audio packet. It runs on the read goroutine; data is
// only valid during the call.
func (s *PulseSource) onData(data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return
	}
	if s.oddSet && len(data) > 0 {
		s.conv[0] = int16(uint16(s.odd) | uint16(data[0])<<8)
		s.pushLocked(s.conv[:1])
		data, s.oddSet = data[1:], false
	}
	for len(data) >= pulseSampleBytes {
		k := min(len(data)/pulseSampleBytes, len(s.conv))
		for i := range k {
			s.conv[i] = int16(binary.LittleEndian.Uint16(data[2*i:]))
		}
		s.pushLocked(s.conv[:k])
		data = data[k*pulseSampleBytes:]
	}
	if len(data) == 1 {
		s.odd, s.oddSet = data[0], true
	}
	s.signal()
}

func (s *PulseSource) pushLocked(p []int16) {
	if d := s.q.push(p); d > 0 {
		s.stats.Overruns++
		s.stats.Dropped += uint64(d)
	}
}

// ReadFrame waits until len(buf) samples (capped at the queue size) have
// been captured, fills buf and returns their count. It returns ErrStalled
// after the read timeout without a full frame, ErrClosed after Close, and
// an error wrapping ErrDisconnected once the server has dropped the stream.
func (s *PulseSource) ReadFrame(buf []int16) (int, error) {
	want := min(len(buf), len(s.q.buf))
	if want == 0 {
		return 0, nil
	}
	armed := false
	defer func() {
		if armed {
			s.timer.Stop()
		}
	}()
	for {
		s.mu.Lock()
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return 0, err
		}
		if s.q.n >= want {
			n := s.q.pop(buf[:want])
			s.mu.Unlock()
			return n, nil
		}
		s.mu.Unlock()
		if !armed {
			s.timer.Reset(s.timeout)
			armed = true
		}
		select {
		case <-s.wake:
		case <-s.done:
		case <-s.timer.C:
			armed = false
			return 0, fmt.Errorf("pulse capture: no frame in %v: %w", s.timeout, ErrStalled)
		}
	}
}

// Close stops recording, deletes the stream on the server and closes the
// connection; a ReadFrame waiting in another goroutine returns ErrClosed.
// A second Close returns ErrClosed.
func (s *PulseSource) Close() error {
	return s.close(&proto.DeleteRecordStream{StreamIndex: s.index}, nil)
}

// pulseStreamProps labels the stream: media.role "phone" lets the server's
// policy modules treat it as a call (module-role-cork pauses music while a
// phone stream runs, module-intended-roles routes it to a headset).
func pulseStreamProps(cfg *pulseConfig, kind string) proto.PropList {
	return proto.PropList{
		"media.name":       proto.PropListString(cfg.app + " " + kind),
		"media.role":       proto.PropListString("phone"),
		"application.name": proto.PropListString(cfg.app),
	}
}
