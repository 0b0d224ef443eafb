//go:build linux && (amd64 || arm64 || arm || 386 || riscv64 || loong64)

// The architectures above use the generic ioctl encoding of alsa_abi.go;
// mips, powerpc and sparc encode requests differently and get
// alsa_other.go.

package audio

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// alsaPCM is one open PCM stream; ALSASource and ALSASink wrap it.
type alsaPCM struct {
	path     string
	capture  bool
	params   ALSAParams
	timeout  time.Duration
	log      *slog.Logger
	closed   atomic.Bool
	overruns atomic.Uint64
	under    atomic.Uint64

	// ioMu serialises ReadFrame/WriteFrame with Close: Close takes it
	// after waking a poll through wake, and only then closes fd.
	ioMu sync.Mutex
	fd   int // the PCM node; -1 after Close
	wake int // eventfd Close writes to; -1 after Close
	err  error
	// Guarded by ioMu: the transfer struct handed to the kernel, the
	// interleaved scratch frames it points into, and the poll set.
	x       sndXferi
	scratch []int16
	pfd     [2]unix.PollFd
}

func openALSA(device string, rate int, capture bool, opts []ALSAOption) (*alsaPCM, error) {
	if err := checkRate(rate); err != nil {
		return nil, err
	}
	cfg, err := newALSAConfig(opts)
	if err != nil {
		return nil, err
	}
	dev, err := parseALSADevice(device, alsaCardByID)
	if err != nil {
		return nil, err
	}
	p := &alsaPCM{path: dev.path(capture), capture: capture, timeout: cfg.timeout, fd: -1, wake: -1}
	kind := "playback"
	if capture {
		kind = "capture"
	}
	p.log = cfg.log.With("component", "alsa", "device", device, "stream", kind)
	fd, err := unix.Open(p.path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO) {
			return nil, fmt.Errorf("open %s: %v: %w", p.path, err, ErrNoDevice)
		}
		return nil, fmt.Errorf("open %s: %w", p.path, err)
	}
	p.fd = fd
	if err := p.setup(&cfg, rate); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", p.path, err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	p.wake = wake
	ev := int16(unix.POLLOUT)
	if capture {
		ev = unix.POLLIN
	}
	p.pfd = [2]unix.PollFd{{Fd: int32(fd), Events: ev}, {Fd: int32(wake), Events: unix.POLLIN}}
	p.scratch = make([]int16, p.params.PeriodFrames*p.params.Channels)
	p.log.Info("alsa open", "rate", p.params.Rate, "channels", p.params.Channels,
		"period_frames", p.params.PeriodFrames, "buffer_frames", p.params.BufferFrames)
	return p, nil
}

// setup checks the node and the protocol, then negotiates the hardware
// and software parameters and prepares the stream.
func (p *alsaPCM) setup(cfg *alsaConfig, rate int) error {
	var st unix.Stat_t
	if err := unix.Fstat(p.fd, &st); err != nil {
		return fmt.Errorf("fstat: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		return fmt.Errorf("not a character device: %w", ErrNoDevice)
	}
	var ver int32
	if err := ioctl(p.fd, ioctlPVersion, unsafe.Pointer(&ver)); err != nil {
		return fmt.Errorf("PVERSION: %w (not an ALSA PCM node?)", err)
	}
	if m := sndrvProtocolMajor(ver); m != 2 {
		return fmt.Errorf("PCM protocol %d.%d.%d, want 2.x: %w", m, ver>>8&0xff, ver&0xff, ErrUnsupported)
	}
	hw, err := p.negotiate(cfg, rate)
	if err != nil {
		return err
	}
	if err := ioctl(p.fd, ioctlHWParams, unsafe.Pointer(hw)); err != nil {
		return fmt.Errorf("HW_PARAMS: %w", err)
	}
	got, err := readParams(hw)
	if err != nil {
		return err
	}
	if got.Rate != rate {
		return fmt.Errorf("card set %d Hz for %d Hz: %w", got.Rate, rate, ErrUnsupportedFormat)
	}
	p.params = got
	sw := sndPCMSwParams{
		periodStep:     1,
		availMin:       uint(got.PeriodFrames),
		xferAlign:      1,
		startThreshold: 1, // capture starts with the first read
		// Stop (xrun) when the buffer is entirely full (capture) or
		// empty (playback).
		stopThreshold: uint(got.BufferFrames),
	}
	if !p.capture {
		sw.startThreshold = uint(min(2*got.PeriodFrames, got.BufferFrames))
	}
	if err := ioctl(p.fd, ioctlSWParams, unsafe.Pointer(&sw)); err != nil {
		return fmt.Errorf("SW_PARAMS: %w", err)
	}
	if err := ioctl(p.fd, ioctlPrepare, nil); err != nil {
		return fmt.Errorf("PREPARE: %w", err)
	}
	return nil
}

// negotiate narrows the parameters step by step with HW_REFINE, the way
// alsa-lib's snd_pcm_hw_params_set_* calls do: access, format and rate
// must be supported as asked; the channel count falls back from 1 to 2;
// period and buffer sizes move to the nearest value the card allows.
func (p *alsaPCM) negotiate(cfg *alsaConfig, rate int) (*sndPCMHwParams, error) {
	hw := anyHWParams()
	if err := ioctl(p.fd, ioctlHWRefine, unsafe.Pointer(hw)); err != nil {
		return nil, fmt.Errorf("HW_REFINE: %w", err)
	}
	switch {
	case !hw.maskHas(hwParamAccess, accessRWInterleaved):
		return nil, fmt.Errorf("no interleaved read/write access: %w", ErrUnsupportedFormat)
	case !hw.maskHas(hwParamFormat, formatS16LE):
		return nil, fmt.Errorf("no S16_LE sample format: %w", ErrUnsupportedFormat)
	}
	hw.setMask(hwParamAccess, accessRWInterleaved)
	hw.setMask(hwParamFormat, formatS16LE)
	hw.setMask(hwParamSubformat, subformatStd)
	if lo, hi, ok := hw.interval(hwParamRate).bounds(); !ok || uint32(rate) < lo || uint32(rate) > hi {
		return nil, fmt.Errorf("rate %d Hz not in the card's %d..%d: %w", rate, lo, hi, ErrUnsupportedFormat)
	}
	hw.setInterval(hwParamRate, uint32(rate), uint32(rate))
	if err := ioctl(p.fd, ioctlHWRefine, unsafe.Pointer(hw)); err != nil {
		return nil, fmt.Errorf("rate %d Hz, S16_LE, interleaved: %w: %w", rate, err, ErrUnsupportedFormat)
	}
	var chosen bool
	for _, ch := range []uint32{1, 2} {
		try := *hw
		try.setInterval(hwParamChannels, ch, ch)
		if ioctl(p.fd, ioctlHWRefine, unsafe.Pointer(&try)) == nil {
			*hw, chosen = try, true
			break
		}
	}
	if !chosen {
		return nil, fmt.Errorf("neither 1 nor 2 channels at %d Hz: %w", rate, ErrUnsupportedFormat)
	}
	period, buffer := alsaBufferFrames(cfg, rate)
	// Period and buffer: the nearest allowed value, else whatever the
	// kernel picks when it fixes the parameters (HW_PARAMS).
	for _, step := range []struct {
		param int
		want  uint32
	}{{hwParamPeriodSize, period}, {hwParamBufferSize, buffer}} {
		lo, hi, ok := hw.interval(step.param).bounds()
		if !ok {
			continue
		}
		v := clampTo(step.want, lo, hi)
		try := *hw
		try.setInterval(step.param, v, v)
		if ioctl(p.fd, ioctlHWRefine, unsafe.Pointer(&try)) == nil {
			*hw = try
			if step.param == hwParamPeriodSize {
				buffer = max(buffer, 2*v)
			}
			continue
		}
		// A card that needs, say, a power of two: take the largest value
		// at or below the target (HW_PARAMS picks the top of the buffer
		// range and the bottom of the period range).
		try = *hw
		try.setInterval(step.param, lo, max(lo, v))
		if ioctl(p.fd, ioctlHWRefine, unsafe.Pointer(&try)) == nil {
			*hw = try
		}
	}
	return hw, nil
}

// readParams reads the fixed values back after HW_PARAMS.
func readParams(hw *sndPCMHwParams) (ALSAParams, error) {
	var out ALSAParams
	for _, f := range []struct {
		param int
		dst   *int
		name  string
	}{
		{hwParamRate, &out.Rate, "rate"},
		{hwParamChannels, &out.Channels, "channels"},
		{hwParamPeriodSize, &out.PeriodFrames, "period size"},
		{hwParamBufferSize, &out.BufferFrames, "buffer size"},
	} {
		v, ok := hw.interval(f.param).single()
		if !ok || v == 0 {
			iv := hw.interval(f.param)
			return ALSAParams{}, fmt.Errorf("HW_PARAMS left %s at [%d, %d]: %w", f.name, iv.min, iv.max, errProtocol)
		}
		*f.dst = int(v)
	}
	if out.Channels > 2 || out.PeriodFrames > 1<<20 || out.BufferFrames > 1<<24 {
		return ALSAParams{}, fmt.Errorf("HW_PARAMS chose %+v: %w", out, errProtocol)
	}
	return out, nil
}

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
	if e != 0 {
		return e
	}
	return nil
}

// xfer moves up to frames interleaved frames between scratch, from sample
// off on, and the card.
func (p *alsaPCM) xfer(off, frames int) (int, error) {
	req := uintptr(ioctlWriteI)
	if p.capture {
		req = ioctlReadI
	}
	p.x = sndXferi{buf: unsafe.Pointer(&p.scratch[off]), frames: uint(frames)}
	if err := ioctl(p.fd, req, unsafe.Pointer(&p.x)); err != nil {
		return 0, err
	}
	if p.x.result < 0 || p.x.result > frames {
		return 0, fmt.Errorf("kernel moved %d of %d frames: %w", p.x.result, frames, errProtocol)
	}
	return p.x.result, nil
}

// transfer moves exactly frames frames (at most one period) between
// scratch and the card, recovering from xruns and waiting for the card
// when it has no room or data. It is called with ioMu held.
func (p *alsaPCM) transfer(frames int) error {
	ch := p.params.Channels
	done := 0
	for done < frames {
		n, err := p.xfer(done*ch, frames-done)
		switch {
		case err == nil:
			done += n
		case errors.Is(err, unix.EAGAIN):
			if err := p.wait(); err != nil {
				return err
			}
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EPIPE), errors.Is(err, unix.ESTRPIPE):
			// EPIPE: xrun; ESTRPIPE: the system suspended the card.
			// Either way prepare and go on, as snd_pcm_recover does.
			if p.capture {
				p.overruns.Add(1)
			} else {
				p.under.Add(1)
			}
			if err := ioctl(p.fd, ioctlPrepare, nil); err != nil {
				return p.fail(fmt.Errorf("PREPARE after xrun: %w", err))
			}
		default:
			return p.fail(err)
		}
	}
	return nil
}

// wait polls until the card can move audio, Close wakes it, or the
// timeout passes.
func (p *alsaPCM) wait() error {
	deadline := time.Now().Add(p.timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("alsa %s: no room or data in %v: %w", p.path, p.timeout, ErrStalled)
		}
		p.pfd[0].Revents, p.pfd[1].Revents = 0, 0
		_, err := unix.Poll(p.pfd[:], int(left/time.Millisecond)+1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return p.fail(fmt.Errorf("poll: %w", err))
		}
		if p.pfd[1].Revents != 0 || p.closed.Load() {
			return ErrClosed
		}
		if p.pfd[0].Revents&(unix.POLLNVAL|unix.POLLHUP) != 0 {
			return p.fail(errors.New("device gone"))
		}
		// POLLERR means an xrun: the next transfer reports EPIPE.
		if p.pfd[0].Revents != 0 {
			return nil
		}
	}
}

// fail records a fatal device error; an unplugged card reports ENODEV.
func (p *alsaPCM) fail(err error) error {
	p.err = fmt.Errorf("alsa %s: %v: %w", p.path, err, ErrDisconnected)
	p.log.Error("alsa device lost", "err", err)
	return p.err
}

func (p *alsaPCM) check() error {
	if p.closed.Load() {
		return ErrClosed
	}
	return p.err
}

func (p *alsaPCM) close() error {
	if p.closed.Swap(true) {
		return ErrClosed
	}
	one := [8]byte{1}
	_, _ = unix.Write(p.wake, one[:]) // the eventfd counter cannot overflow from one write
	p.ioMu.Lock()
	defer p.ioMu.Unlock()
	// DROP stops the card at once; its error only matters on a card that
	// is already gone.
	_ = ioctl(p.fd, ioctlDrop, nil)
	err := unix.Close(p.fd)
	unix.Close(p.wake)
	p.fd, p.wake = -1, -1
	if err != nil {
		return fmt.Errorf("close %s: %w", p.path, err)
	}
	return nil
}

func (p *alsaPCM) stats() Stats {
	return Stats{Overruns: p.overruns.Load(), Underruns: p.under.Load()}
}

// alsaCardByID resolves a card ID through /proc/asound/ID, a symlink to
// cardN.
func alsaCardByID(id string) (int, error) {
	target, err := os.Readlink(filepath.Join("/proc/asound", id))
	if err != nil {
		return 0, fmt.Errorf("card %q: %v: %w", id, err, ErrNoDevice)
	}
	n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(target), "card"))
	if err != nil || n < 0 || n > maxALSACard {
		return 0, fmt.Errorf("card %q links to %q: %w", id, target, ErrNoDevice)
	}
	return n, nil
}

// ALSASource records 16-bit mono frames from an ALSA capture device. It
// implements Source.
type ALSASource struct{ p *alsaPCM }

// OpenALSASource opens the capture side of device ("hw:C,D") at rate Hz.
func OpenALSASource(device string, rate int, opts ...ALSAOption) (*ALSASource, error) {
	p, err := openALSA(device, rate, true, opts)
	if err != nil {
		return nil, fmt.Errorf("open alsa source %s: %w", device, err)
	}
	return &ALSASource{p: p}, nil
}

// ReadFrame fills buf with len(buf) samples, waiting for the card.
func (s *ALSASource) ReadFrame(buf []int16) (int, error) {
	p := s.p
	p.ioMu.Lock()
	defer p.ioMu.Unlock()
	if err := p.check(); err != nil {
		return 0, err
	}
	ch := p.params.Channels
	got := 0
	for got < len(buf) {
		n := min(len(buf)-got, p.params.PeriodFrames)
		if err := p.transfer(n); err != nil {
			return got, err
		}
		if ch == 1 {
			copy(buf[got:got+n], p.scratch[:n])
		} else {
			for i := range n {
				buf[got+i] = int16((int32(p.scratch[2*i]) + int32(p.scratch[2*i+1])) / 2)
			}
		}
		got += n
	}
	return got, nil
}

// Rate is the sample rate in Hz.
func (s *ALSASource) Rate() int { return s.p.params.Rate }

// Params reports what the card agreed to.
func (s *ALSASource) Params() ALSAParams { return s.p.params }

// Stats counts capture overruns (the kernel buffer filled up).
func (s *ALSASource) Stats() Stats { return s.p.stats() }

// Close stops capture and closes the device; a ReadFrame waiting in
// another goroutine returns ErrClosed.
func (s *ALSASource) Close() error { return s.p.close() }

// ALSASink plays 16-bit mono frames on an ALSA playback device. It
// implements Sink.
type ALSASink struct{ p *alsaPCM }

// OpenALSASink opens the playback side of device ("hw:C,D") at rate Hz.
func OpenALSASink(device string, rate int, opts ...ALSAOption) (*ALSASink, error) {
	p, err := openALSA(device, rate, false, opts)
	if err != nil {
		return nil, fmt.Errorf("open alsa sink %s: %w", device, err)
	}
	return &ALSASink{p: p}, nil
}

// WriteFrame queues buf on the card, waiting while its buffer is full.
func (s *ALSASink) WriteFrame(buf []int16) error {
	p := s.p
	p.ioMu.Lock()
	defer p.ioMu.Unlock()
	if err := p.check(); err != nil {
		return err
	}
	ch := p.params.Channels
	for len(buf) > 0 {
		n := min(len(buf), p.params.PeriodFrames)
		if ch == 1 {
			copy(p.scratch, buf[:n])
		} else {
			for i, v := range buf[:n] {
				p.scratch[2*i], p.scratch[2*i+1] = v, v
			}
		}
		if err := p.transfer(n); err != nil {
			return err
		}
		buf = buf[n:]
	}
	return nil
}

// Rate is the sample rate in Hz.
func (s *ALSASink) Rate() int { return s.p.params.Rate }

// Params reports what the card agreed to.
func (s *ALSASink) Params() ALSAParams { return s.p.params }

// Stats counts playback underruns (the card ran dry).
func (s *ALSASink) Stats() Stats { return s.p.stats() }

// Close stops playback at once (queued audio is dropped) and closes the
// device.
func (s *ALSASink) Close() error { return s.p.close() }
