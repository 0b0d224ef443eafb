package audio

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jfreymuth/pulse/proto"
)

// PulseAudio (and PipeWire's pipewire-pulse, which serves the same native
// protocol) is reached over its native protocol with the proto package of
// github.com/jfreymuth/pulse; no libpulse, no cgo. This file holds the
// connection: server address, authentication, options and device listing.
// pulse_stream.go holds the streams.
//
// Each PulseSource and PulseSink owns one connection with one stream on it,
// so the library's read loop, which calls back into us, serves exactly one
// stream and a dead connection takes down exactly one device.

const (
	// pulseDialTimeout bounds connecting to the server socket.
	pulseDialTimeout = 2 * time.Second
	// pulseRequestTimeout bounds every request/reply exchange.
	pulseRequestTimeout = 3 * time.Second
	// pulseCookieLen is the size of PulseAudio's authentication cookie
	// (PA_NATIVE_COOKIE_LENGTH).
	pulseCookieLen = 256
	// maxPulseFrame caps one frame the server sends us. The server itself
	// refuses frames past 16 MiB (FRAME_SIZE_MAX_ALLOW) and splits audio
	// into 64 KiB blocks; a device list of a few hundred devices fits in
	// 1 MiB.
	maxPulseFrame = 1 << 20
	// maxPulseServerString caps $PULSE_SERVER and PulseServer.
	maxPulseServerString = 1024
	// maxPulseName caps device and application names.
	maxPulseName = 256

	defaultPulseLatency     = 40 * time.Millisecond
	defaultPulseQueueFrames = 10
	defaultPulseReadTimeout = 2 * time.Second
	defaultPulseAppName     = "hardphone"
)

// PulseOption configures OpenPulseSource, OpenPulseSink and
// ListPulseDevices. Each option validates its argument.
type PulseOption func(*pulseConfig) error

type pulseConfig struct {
	server      string // "" means $PULSE_SERVER, else $XDG_RUNTIME_DIR/pulse/native
	device      string // "" means the server's default sink or source
	app         string
	latency     time.Duration
	queueFrames int
	readTimeout time.Duration
	log         *slog.Logger // never nil after newPulseConfig
}

func newPulseConfig(opts []PulseOption) (pulseConfig, error) {
	c := pulseConfig{
		app:         defaultPulseAppName,
		latency:     defaultPulseLatency,
		queueFrames: defaultPulseQueueFrames,
		readTimeout: defaultPulseReadTimeout,
		log:         slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return pulseConfig{}, err
		}
	}
	return c, nil
}

// PulseServer sets the server address in PulseAudio's server-string form:
// "unix:/path", "/path", "tcp:host:port", "tcp4:…", "tcp6:…", several
// separated by spaces, tried in order. Without it $PULSE_SERVER is used,
// else $XDG_RUNTIME_DIR/pulse/native, as libpulse does.
func PulseServer(addr string) PulseOption {
	return func(c *pulseConfig) error {
		if _, err := parsePulseServer(addr); err != nil {
			return err
		}
		c.server = addr
		return nil
	}
}

// PulseDevice selects the sink (for a PulseSink) or source (for a
// PulseSource) by its name as ListPulseDevices reports it, for instance
// "alsa_output.usb-Jabra…" or a sink's "NAME.monitor". "" (the default)
// means the server's default device.
func PulseDevice(name string) PulseOption {
	return func(c *pulseConfig) error {
		if err := checkPulseName("device name", name); err != nil {
			return err
		}
		c.device = name
		return nil
	}
}

// PulseAppName sets the application name a volume control shows for the
// stream. The default is "hardphone".
func PulseAppName(name string) PulseOption {
	return func(c *pulseConfig) error {
		if name == "" {
			return fmt.Errorf("application name is empty: %w", errBadOption)
		}
		if err := checkPulseName("application name", name); err != nil {
			return err
		}
		c.app = name
		return nil
	}
}

// PulseLatency sets the server-side buffering the stream asks for: the
// playback buffer target (tlength) of a PulseSink, and twice the capture
// fragment size (fragsize) of a PulseSource, which the server then delivers
// every d/2. It ranges from 10 ms to 1 s; the default is 40 ms. Lower
// values cut delay at the price of underruns on a busy machine.
func PulseLatency(d time.Duration) PulseOption {
	return func(c *pulseConfig) error {
		if d < 10*time.Millisecond || d > time.Second {
			return fmt.Errorf("latency %v outside 10ms..1s: %w", d, errBadOption)
		}
		c.latency = d
		return nil
	}
}

// PulseQueue sets the capacity, in 20 ms frames, of the queue between the
// server connection and ReadFrame/WriteFrame: 2 to 250, default 10
// (200 ms). When it is full the oldest samples are dropped and counted in
// Stats.Overruns, so a stalled consumer never grows memory or delay past it.
func PulseQueue(frames int) PulseOption {
	return func(c *pulseConfig) error {
		if frames < 2 || frames > 250 {
			return fmt.Errorf("queue of %d frames outside 2..250: %w", frames, errBadOption)
		}
		c.queueFrames = frames
		return nil
	}
}

// PulseReadTimeout sets how long PulseSource.ReadFrame waits for a frame
// before it returns ErrStalled: 20 ms to 60 s, default 2 s.
func PulseReadTimeout(d time.Duration) PulseOption {
	return func(c *pulseConfig) error {
		if d < FrameDuration*time.Millisecond || d > time.Minute {
			return fmt.Errorf("read timeout %v outside 20ms..1m: %w", d, errBadOption)
		}
		c.readTimeout = d
		return nil
	}
}

// PulseLogger sets the logger; the device adds component=pulse. Without it
// nothing is logged.
func PulseLogger(l *slog.Logger) PulseOption {
	return func(c *pulseConfig) error {
		if l == nil {
			return fmt.Errorf("nil logger: %w", errBadOption)
		}
		c.log = l
		return nil
	}
}

func checkPulseName(what, s string) error {
	if len(s) > maxPulseName {
		return fmt.Errorf("%s of %d bytes, limit %d: %w", what, len(s), maxPulseName, errBadOption)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%s holds a NUL byte: %w", what, errBadOption)
	}
	return nil
}

// pulseAddr is one entry of a server string.
type pulseAddr struct {
	network string // "unix", "tcp", "tcp4" or "tcp6"
	addr    string
	host    string // "{host}" prefix: only use on that host; "" for any
}

// parsePulseServer splits a server string into addresses. Entries it does
// not understand are an error rather than skipped, so a typo is reported.
func parsePulseServer(s string) ([]pulseAddr, error) {
	if len(s) > maxPulseServerString {
		return nil, fmt.Errorf("server string of %d bytes, limit %d: %w", len(s), maxPulseServerString, errBadOption)
	}
	var out []pulseAddr
	for _, f := range strings.Fields(s) {
		var a pulseAddr
		if f[0] == '{' {
			end := strings.IndexByte(f, '}')
			if end < 0 {
				return nil, fmt.Errorf("server %q: unterminated {host}: %w", f, errBadOption)
			}
			a.host, f = f[1:end], f[end+1:]
		}
		switch {
		case strings.HasPrefix(f, "/"):
			a.network, a.addr = "unix", f
		case strings.HasPrefix(f, "unix:"):
			a.network, a.addr = "unix", f[len("unix:"):]
		case strings.HasPrefix(f, "tcp4:"), strings.HasPrefix(f, "tcp6:"):
			a.network, a.addr = f[:4], f[5:]
		case strings.HasPrefix(f, "tcp:"):
			a.network, a.addr = "tcp", f[len("tcp:"):]
		default:
			return nil, fmt.Errorf("server %q: want unix:PATH, /PATH or tcp:HOST:PORT: %w", f, errBadOption)
		}
		if a.addr == "" {
			return nil, fmt.Errorf("server %q: empty address: %w", f, errBadOption)
		}
		if a.network != "unix" {
			if _, _, err := net.SplitHostPort(a.addr); err != nil {
				// libpulse's default port for a bare host.
				a.addr = net.JoinHostPort(strings.Trim(a.addr, "[]"), "4713")
			}
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty server string: %w", errBadOption)
	}
	return out, nil
}

// pulseServerAddrs resolves where to connect: the option, else
// $PULSE_SERVER, else the per-user socket under $XDG_RUNTIME_DIR.
func pulseServerAddrs(explicit string) ([]pulseAddr, error) {
	s := explicit
	if s == "" {
		s = os.Getenv("PULSE_SERVER")
	}
	if s != "" {
		return parsePulseServer(s)
	}
	rt := os.Getenv("XDG_RUNTIME_DIR")
	if rt == "" {
		return nil, fmt.Errorf("no PulseAudio server: set PULSE_SERVER or XDG_RUNTIME_DIR: %w", ErrNoDevice)
	}
	return []pulseAddr{{network: "unix", addr: filepath.Join(rt, "pulse", "native")}}, nil
}

// pulseCookie reads the 256-byte authentication cookie from $PULSE_COOKIE
// or ~/.config/pulse/cookie. Without one it sends zeros, which a server
// with auth-anonymous=1 (or a per-user socket with peer-credential
// authentication) accepts.
func pulseCookie() ([]byte, error) {
	path := os.Getenv("PULSE_COOKIE")
	if path == "" {
		home := os.Getenv("HOME")
		if home == "" {
			return make([]byte, pulseCookieLen), nil
		}
		path = filepath.Join(home, ".config", "pulse", "cookie")
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return make([]byte, pulseCookieLen), nil
	}
	if err != nil {
		return nil, fmt.Errorf("pulse cookie: %w", err)
	}
	defer f.Close()
	b := make([]byte, pulseCookieLen+1)
	n, err := io.ReadFull(f, b)
	if n != pulseCookieLen || !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("pulse cookie %s: want exactly %d bytes: %w", path, pulseCookieLen, errBadOption)
	}
	return b[:pulseCookieLen], nil
}

// pulseConn is one authenticated connection to the server.
type pulseConn struct {
	conn net.Conn
	c    *proto.Client
	addr string // for messages
}

// dialPulse connects and authenticates. onMsg receives the server's
// unsolicited messages and audio data on the library's read goroutine;
// onErr is called once when the connection breaks. Both are installed
// before the read goroutine starts.
func dialPulse(cfg *pulseConfig, onMsg func(any), onErr func(error)) (*pulseConn, error) {
	addrs, err := pulseServerAddrs(cfg.server)
	if err != nil {
		return nil, err
	}
	cookie, err := pulseCookie()
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname() // only used to match {host} prefixes
	var errs []error
	for _, a := range addrs {
		if a.host != "" && a.host != host {
			continue
		}
		pc, err := dialPulseAddr(cfg, a, cookie, onMsg, onErr)
		if err == nil {
			return pc, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("no PulseAudio server address for host %q: %w", host, ErrNoDevice)
	}
	return nil, fmt.Errorf("connect to PulseAudio: %w", errors.Join(errs...))
}

func dialPulseAddr(cfg *pulseConfig, a pulseAddr, cookie []byte, onMsg func(any), onErr func(error)) (*pulseConn, error) {
	conn, err := net.DialTimeout(a.network, a.addr, pulseDialTimeout)
	if err != nil {
		return nil, fmt.Errorf("dial %s:%s: %w", a.network, a.addr, err)
	}
	// Only the connection dialPulse returns may report its end: a failed
	// attempt at an earlier address must not mark the stream broken.
	var kept atomic.Bool
	fr := &frameReader{r: conn, max: maxPulseFrame, onErr: func(err error) {
		if kept.Load() {
			onErr(err)
		}
	}}
	c := &proto.Client{Callback: func(msg any) {
		if kept.Load() {
			onMsg(msg)
		}
	}}
	c.SetTimeout(pulseRequestTimeout)
	c.Open(struct {
		io.Reader
		io.Writer
	}{fr, conn})
	pc := &pulseConn{conn: conn, c: c, addr: a.network + ":" + a.addr}
	var auth proto.AuthReply
	if err := c.Request(&proto.Auth{Version: c.Version(), Cookie: cookie}, &auth); err != nil {
		conn.Close()
		return nil, fmt.Errorf("authenticate to %s: %w", pc.addr, err)
	}
	c.SetVersion(auth.Version)
	// Protocol 13 carries the property lists and adjust-latency flag the
	// streams rely on; every server since PulseAudio 0.9.11 speaks it.
	if v := c.Version().Version(); v < 13 {
		conn.Close()
		return nil, fmt.Errorf("server %s speaks protocol %d, want 13 or later: %w", pc.addr, v, ErrUnsupported)
	}
	props := proto.PropList{
		"application.name":       proto.PropListString(cfg.app),
		"application.process.id": proto.PropListString(strconv.Itoa(os.Getpid())),
	}
	if err := c.Request(&proto.SetClientName{Props: props}, &proto.SetClientNameReply{}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("set client name on %s: %w", pc.addr, err)
	}
	kept.Store(true)
	return pc, nil
}

// DeviceKind says which way audio flows through a device.
type DeviceKind int

const (
	// Playback devices (PulseAudio sinks) take audio out to a speaker.
	Playback DeviceKind = iota + 1
	// Capture devices (PulseAudio sources) bring audio in from a
	// microphone, or from a sink's monitor.
	Capture
)

func (k DeviceKind) String() string {
	switch k {
	case Playback:
		return "playback"
	case Capture:
		return "capture"
	}
	return "DeviceKind(" + strconv.Itoa(int(k)) + ")"
}

// PulseDeviceInfo describes one sink or source the server offers.
type PulseDeviceInfo struct {
	Kind DeviceKind
	// Name is what PulseDevice takes.
	Name string
	// Description is the human-readable name a desktop shows.
	Description string
	// MonitorOf names the sink a capture device monitors (it hears what
	// is played there); "" for a real input.
	MonitorOf string
	// Rate (Hz) and Channels are the device's native format; streams at
	// other rates are resampled by the server.
	Rate, Channels int
	// Default is set on the server's default sink and default source.
	Default bool
}

// ListPulseDevices lists the server's sinks, then its sources. Only
// PulseServer, PulseAppName and PulseLogger apply.
func ListPulseDevices(opts ...PulseOption) ([]PulseDeviceInfo, error) {
	cfg, err := newPulseConfig(opts)
	if err != nil {
		return nil, fmt.Errorf("list pulse devices: %w", err)
	}
	pc, err := dialPulse(&cfg, func(any) {}, func(error) {})
	if err != nil {
		return nil, fmt.Errorf("list pulse devices: %w", err)
	}
	defer pc.conn.Close()
	var srv proto.GetServerInfoReply
	if err := pc.c.Request(&proto.GetServerInfo{}, &srv); err != nil {
		return nil, fmt.Errorf("list pulse devices: server info: %w", err)
	}
	var sinks proto.GetSinkInfoListReply
	if err := pc.c.Request(&proto.GetSinkInfoList{}, &sinks); err != nil {
		return nil, fmt.Errorf("list pulse devices: sinks: %w", err)
	}
	var sources proto.GetSourceInfoListReply
	if err := pc.c.Request(&proto.GetSourceInfoList{}, &sources); err != nil {
		return nil, fmt.Errorf("list pulse devices: sources: %w", err)
	}
	out := make([]PulseDeviceInfo, 0, len(sinks)+len(sources))
	for _, s := range sinks {
		out = append(out, PulseDeviceInfo{
			Kind: Playback, Name: s.SinkName, Description: s.Device,
			Rate: int(s.Rate), Channels: int(s.Channels),
			Default: s.SinkName == srv.DefaultSinkName,
		})
	}
	for _, s := range sources {
		d := PulseDeviceInfo{
			Kind: Capture, Name: s.SourceName, Description: s.Device,
			Rate: int(s.Rate), Channels: int(s.Channels),
			Default: s.SourceName == srv.DefaultSourceName,
		}
		// For a source, the reply's "monitor" fields name the sink it
		// monitors (monitor_of_sink in the protocol).
		if s.MonitorSourceIndex != proto.Undefined {
			d.MonitorOf = s.MonitorSourceName
		}
		out = append(out, d)
	}
	return out, nil
}

// frameReader sits between the socket and the library's parser and
// enforces the framing of the native protocol (pulsecore/pstream.c), so
// that a length field can never make the parser allocate or wait for more
// than maxPulseFrame bytes. Every frame is a 20-byte descriptor followed by
// its payload:
//
//	 0 length    uint32 BE  payload bytes that follow
//	 4 channel   uint32 BE  0xFFFFFFFF: a command (tagstruct); else the stream index
//	 8 offset    uint64 BE  seek offset of an audio packet
//	16 flags     uint32 BE  seek mode; bit 31 PA_FLAG_SHMDATA: payload is a
//	                        shared-memory reference (never negotiated here)
//
// It is used by the library's one read goroutine only.
type frameReader struct {
	r     io.Reader
	max   uint32
	desc  [20]byte
	descN int    // descriptor bytes collected so far
	left  uint32 // payload bytes of the current frame not yet passed on
	err   error  // sticky; onErr has been called
	onErr func(error)
}

const pulseFlagSHMData = 1 << 31

func (f *frameReader) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n, err := f.r.Read(p)
	for i := 0; i < n; {
		if f.left > 0 {
			k := min(uint32(n-i), f.left)
			i += int(k)
			f.left -= k
			continue
		}
		k := copy(f.desc[f.descN:], p[i:n])
		f.descN += k
		i += k
		if f.descN < len(f.desc) {
			continue
		}
		f.descN = 0
		length := be32(f.desc[0:4])
		flags := be32(f.desc[16:20])
		switch {
		case length > f.max:
			return 0, f.fail(fmt.Errorf("frame of %d bytes, limit %d: %w", length, f.max, errProtocol))
		case flags&pulseFlagSHMData != 0:
			return 0, f.fail(fmt.Errorf("shared-memory frame on a connection without shm: %w", errProtocol))
		}
		f.left = length
	}
	if err != nil {
		return n, f.fail(err)
	}
	return n, nil
}

func (f *frameReader) fail(err error) error {
	f.err = err
	f.onErr(err)
	return err
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
