package media

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hardphone/hardphone/crypto/policy"
	"github.com/hardphone/hardphone/hal/audio"
)

// Security is how SRTP keys are agreed. There is no plain-RTP value.
type Security int

// The two keying methods.
const (
	// SecuritySDES carries keys in a=crypto lines (RFC 4568); it needs TLS
	// signalling.
	SecuritySDES Security = iota + 1
	// SecurityDTLS runs DTLS-SRTP on the media path (RFC 5763, RFC 5764).
	SecurityDTLS
)

func (s Security) String() string {
	switch s {
	case SecuritySDES:
		return "sdes"
	case SecurityDTLS:
		return "dtls-srtp"
	}
	return "Security(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText names the keying method in Stats JSON.
func (s Security) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads what MarshalText wrote (a control client decoding a
// call's status); "" and unknown names are the zero value (no keys yet).
func (s *Security) UnmarshalText(b []byte) error {
	switch string(b) {
	case "sdes":
		*s = SecuritySDES
	case "dtls-srtp":
		*s = SecurityDTLS
	default:
		*s = 0
	}
	return nil
}

// defaultDTMFPT is the telephone-event payload type we offer (RFC 4733
// leaves it dynamic; 101 is what most phones use).
const defaultDTMFPT = 101

// Config describes one call's media. It is copied by NewSession.
type Config struct {
	// Security selects SDES or DTLS-SRTP keying; it must be set.
	Security Security
	// SignalingTLS says the SDP travels over TLS. Both keying methods are
	// refused without it: SDES keys would cross the network in clear, and a
	// DTLS-SRTP fingerprint from an unauthenticated hop authenticates
	// whoever wrote it.
	SignalingTLS bool
	// LocalIP is put in c= and bound by the RTP and RTCP sockets. It must be
	// a specific unicast address.
	LocalIP netip.Addr
	// PortMin and PortMax bound the RTP port (even; RTCP is RTP+1 when not
	// multiplexed). Both 0: any free pair.
	PortMin, PortMax uint16
	// Codecs in preference order; nil means DefaultCodecs (G.722, PCMU,
	// PCMA).
	Codecs []Codec
	// DTMFPayloadType is the telephone-event payload type we offer, 96..127;
	// 0 selects 101. telephone-event is always offered.
	DTMFPayloadType uint8
	// Logger is required; the session adds component=media.
	Logger *slog.Logger
	// Destinations bounds where the peer's SDP may aim our media; it is
	// copied.
	Destinations DestinationPolicy

	// offerSuites replaces policy.SRTPSuites() in SDES offers. Tests use it
	// to offer the suites policy accepts but never offers; nil outside tests.
	offerSuites []policy.SRTPSuite
}

// phase is where a session is in its life.
type phase int

const (
	phaseIdle       phase = iota // nothing negotiated yet
	phaseOffered                 // our initial offer is out
	phaseNegotiated              // offer/answer done, Start not run
	phaseStarting                // Start is running
	phaseRunning                 // SRTP contexts exist, media flows
	phaseFailed                  // negotiation or Start failed: only Close is left
	phaseClosed
)

// Session is one call's media stream. Its methods are safe for concurrent
// use; the SIP layer drives offer/answer, then Start, then Close.
type Session struct {
	log    *slog.Logger
	rl     *rateLimit
	pionLF *pionLogFactory
	caps   localCaps // immutable after NewSession except through mu (key cache)
	id     *dtlsIdentity
	socks  [2]*net.UDPConn // by component; immutable
	local  [2]netip.AddrPort
	w      *wire
	st     counters
	dtls   [2]*dtlsComponent // DTLS only, by component; immutable
	cname  string

	// life is cancelled by Close; background handshakes derive from it.
	life       context.Context
	cancelLife context.CancelFunc

	mu        sync.Mutex // guards the fields below; never held across a handshake
	ph        phase
	pending   *pendingOffer
	neg       *mediaParams
	keys      map[string]sdesKey // our SDES keys, by suite name
	sessID    uint64
	sessVer   uint64
	lastMedia string // our last description without o=, to bump o= version on change
	localHold bool
	peerCert  []byte // DTLS: the verified peer certificate
	suite     string // negotiated suite or profile name, for Stats
	snd       *sender

	// Read without mu by the socket loops and the sender.
	live atomic.Pointer[liveParams]
	tx   [2]atomic.Pointer[srtpTx] // by component; nil until keys exist
	rx   [2]atomic.Pointer[srtpRx] // by component; nil until keys exist
	src  atomic.Pointer[sourceBox]
	sink atomic.Pointer[sinkBox]

	dtmfOut chan dtmfTone
	dtmfIn  chan rune

	// epoch is the origin of the arrival and playout clocks (ticksAt).
	epoch time.Time
	// jb is the jitter buffer between the RTP read loop and the playout
	// loop; it has its own mutex.
	jb jitterBuffer
	// muted replaces the source's audio with silence in the send loop.
	muted atomic.Bool
	// sendLevel is written by the send loop, recvLevel by the playout
	// loop; both are read by Stats.
	sendLevel, recvLevel *levelMeter

	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
	loops     sync.WaitGroup // socket loops, DTLS drains, background handshakes
	sending   sync.WaitGroup // the send loop
}

type sourceBox struct{ src audio.Source }
type sinkBox struct{ sink audio.Sink }

// liveParams is the immutable snapshot of mediaParams the packet paths use.
type liveParams struct {
	peer                   [2]netip.AddrPort // by component; equal when muxed
	mux                    bool
	codec                  Codec
	sendPT, recvPT         uint8
	dtmf                   bool
	dtmfSendPT, dtmfRecvPT uint8
	send                   bool
	dir                    direction
}

// NewSession validates cfg, binds the RTP and RTCP sockets and creates the
// keying material: for SDES nothing yet (keys are drawn per offered suite),
// for DTLS a fresh ECDSA P-256 self-signed certificate.
func NewSession(cfg Config) (*Session, error) {
	if cfg.Logger == nil {
		return nil, errors.New("media: config has no logger")
	}
	switch cfg.Security {
	case SecuritySDES:
		if !cfg.SignalingTLS {
			return nil, fmt.Errorf("media: sdes keys would travel over non-TLS signalling: %w: %w", ErrInsecureSignaling, ErrNotAcceptable)
		}
	case SecurityDTLS:
		if !cfg.SignalingTLS {
			return nil, fmt.Errorf("media: a dtls-srtp fingerprint from non-TLS signalling authenticates whoever sent it: %w: %w", ErrInsecureSignaling, ErrNotAcceptable)
		}
	default:
		return nil, fmt.Errorf("media: security %v not set to sdes or dtls-srtp", cfg.Security)
	}
	if !cfg.LocalIP.IsValid() || cfg.LocalIP.IsUnspecified() || cfg.LocalIP.IsMulticast() || cfg.LocalIP.Zone() != "" {
		return nil, fmt.Errorf("media: local ip %v is not a specific unicast address", cfg.LocalIP)
	}
	codecs := append([]Codec(nil), cfg.Codecs...)
	if len(codecs) == 0 {
		codecs = append(codecs, DefaultCodecs...)
	}
	seen := map[Codec]bool{}
	for _, c := range codecs {
		if !c.valid() || seen[c] {
			return nil, fmt.Errorf("media: codec list %v: %v unknown or repeated", codecs, c)
		}
		seen[c] = true
	}
	dtmfPT := cfg.DTMFPayloadType
	if dtmfPT == 0 {
		dtmfPT = defaultDTMFPT
	}
	if dtmfPT < 96 || dtmfPT > 127 {
		return nil, fmt.Errorf("media: telephone-event payload type %d outside 96..127", dtmfPT)
	}
	suites := cfg.offerSuites
	if suites == nil {
		suites = policy.SRTPSuites()
	}
	log := cfg.Logger.With("component", "media")

	rtpSock, rtcpSock, err := listenPair(cfg.LocalIP.Unmap(), cfg.PortMin, cfg.PortMax)
	if err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	s := &Session{
		log:     log,
		rl:      newRateLimit(log, 10*time.Second),
		pionLF:  &pionLogFactory{log: log},
		socks:   [2]*net.UDPConn{rtpSock, rtcpSock},
		keys:    map[string]sdesKey{},
		dtmfOut: make(chan dtmfTone, dtmfQueueLen),
		dtmfIn:  make(chan rune, dtmfQueueLen),
		done:    make(chan struct{}),
		sessID:  randUint64() >> 2, // RFC 4566 §5.2: fits a 63-bit NTP-style value
		sessVer: 1,
		cname:   fmt.Sprintf("%016x@hardphone", randUint64()),
		epoch:   time.Now(),
		jb:      jitterBuffer{wake: make(chan struct{}, 1)},

		sendLevel: newLevelMeter(),
		recvLevel: newLevelMeter(),
	}
	s.life, s.cancelLife = context.WithCancel(context.Background())
	for c, sock := range s.socks {
		s.local[c] = sock.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	s.w = &wire{socks: s.socks, st: &s.st}
	s.caps = localCaps{
		security:    cfg.Security,
		addr:        cfg.LocalIP.Unmap(),
		rtpPort:     s.local[compRTP].Port(),
		codecs:      codecs,
		dtmfPT:      dtmfPT,
		offerSuites: append([]policy.SRTPSuite(nil), suites...),
		key:         s.sdesKey,
		dest:        cfg.Destinations.copy(),
		portMin:     cfg.PortMin,
		portMax:     cfg.PortMax,
	}
	if cfg.Security == SecurityDTLS {
		if s.id, err = newDTLSIdentity(); err != nil {
			s.closeSockets()
			return nil, fmt.Errorf("media: %w", err)
		}
		s.caps.fp = s.id.fp
		for c := range s.dtls {
			s.dtls[c] = newDTLSComponent(component(c), s.w, s.socks[c].LocalAddr(), &s.st, s.peerAddr)
		}
	}
	// The sockets listen from now on, so a DTLS ClientHello that overtakes
	// the SDP answer is kept.
	for c := range s.socks {
		s.loops.Add(1)
		go s.readLoop(component(c))
	}
	log.Info("media session created", "security", cfg.Security, "local", s.local[compRTP])
	return s, nil
}

func randUint64() uint64 {
	var b [8]byte
	// crypto/rand.Read does not fail on supported platforms (Go 1.24+).
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:])
}

// sdesKey returns our key for suite, drawing it on first use. s.mu is held.
func (s *Session) sdesKey(suite policy.SRTPSuite) (sdesKey, error) {
	if k, ok := s.keys[suite.SDESName]; ok {
		return k, nil
	}
	k, err := newSDESKey(suite)
	if err != nil {
		return sdesKey{}, err
	}
	s.keys[suite.SDESName] = k
	return k, nil
}

// peerAddr is the SDP peer address of a component, once negotiated.
func (s *Session) peerAddr(c component) (netip.AddrPort, bool) {
	lp := s.live.Load()
	if lp == nil {
		return netip.AddrPort{}, false
	}
	return lp.peer[c], true
}

// describe wraps our m= sections in a session description. The o= version
// goes up whenever the description changes (RFC 3264 §8).
func (s *Session) describe(media []sdpMedia) []byte {
	addrType := "IP4"
	if s.caps.addr.Is6() {
		addrType = "IP6"
	}
	sd := &sdpSession{
		Origin: sdpOrigin{User: "hardphone", SessID: strconv.FormatUint(s.sessID, 10), SessVersion: "0",
			NetType: "IN", AddrType: addrType, Addr: s.caps.addr.String()},
		Name:  "hardphone",
		Conn:  &sdpConn{NetType: "IN", AddrType: addrType, Addr: s.caps.addr.String()},
		Other: []sdpLine{{Type: 't', Value: "0 0"}},
		Media: media,
	}
	key := string(sd.marshal())
	if s.lastMedia != "" && key != s.lastMedia {
		s.sessVer++
	}
	s.lastMedia = key
	sd.Origin.SessVersion = strconv.FormatUint(s.sessVer, 10)
	return sd.marshal()
}

// Offer returns our initial SDP offer.
func (s *Session) Offer() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.want(phaseIdle); err != nil {
		return nil, fmt.Errorf("media offer: %w", err)
	}
	m, po, err := buildOffer(&s.caps, dirSendRecv, nil)
	if err != nil {
		return nil, fmt.Errorf("media offer: %w", err)
	}
	s.pending, s.ph = po, phaseOffered
	return s.describe([]sdpMedia{m}), nil
}

// SetAnswer checks the peer's answer to our offer or re-offer. An error
// means the call must be torn down: for the initial offer the session is
// failed, and nothing was or will be sent.
func (s *Session) SetAnswer(body []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ph == phaseClosed {
		return ErrClosed
	}
	po := s.pending
	if po == nil || (s.ph != phaseOffered && s.ph != phaseNegotiated && s.ph != phaseRunning) {
		return fmt.Errorf("media set answer: no offer outstanding: %w", errState)
	}
	s.pending = nil
	initial := s.ph == phaseOffered
	p, err := s.checkAnswer(body, po)
	if err != nil {
		if initial {
			s.ph = phaseFailed
		}
		s.log.Warn("sdp answer refused", "err", err)
		return fmt.Errorf("media set answer: %w", err)
	}
	if initial {
		s.ph = phaseNegotiated
	}
	s.localHold = po.hold
	if err := s.apply(p, initial); err != nil {
		return fmt.Errorf("media set answer: %w", err)
	}
	return nil
}

func (s *Session) checkAnswer(body []byte, po *pendingOffer) (mediaParams, error) {
	sd, err := parseSDP(body)
	if err != nil {
		return mediaParams{}, fmt.Errorf("%w: %w", err, ErrNotAcceptable)
	}
	return acceptAnswer(sd, po, &s.caps, s.peerCert)
}

// Answer answers the peer's initial offer. An error wraps ErrNotAcceptable
// when the offer has no acceptable crypto or codec (the SIP layer sends 488);
// the session stays unnegotiated and can only be closed.
func (s *Session) Answer(offer []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.want(phaseIdle); err != nil {
		return nil, fmt.Errorf("media answer: %w", err)
	}
	sd, err := parseSDP(offer)
	if err != nil {
		return nil, fmt.Errorf("media answer: %w: %w", err, ErrNotAcceptable)
	}
	p, media, err := answerOffer(sd, &s.caps, nil, nil, false)
	if err != nil {
		s.log.Warn("sdp offer refused", "err", err)
		return nil, fmt.Errorf("media answer: %w", err)
	}
	s.ph = phaseNegotiated
	if err := s.apply(p, true); err != nil {
		return nil, fmt.Errorf("media answer: %w", err)
	}
	return s.describe(media), nil
}

// Reoffer returns a re-INVITE offer that keeps the negotiated security:
// hold sends a=sendonly, unhold a=sendrecv. A newer Reoffer replaces one
// whose answer never came (a rejected re-INVITE leaves the session as it was).
func (s *Session) Reoffer(hold bool) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ph == phaseClosed {
		return nil, ErrClosed
	}
	if s.ph != phaseRunning && s.ph != phaseNegotiated {
		return nil, fmt.Errorf("media re-offer in phase %d: %w", s.ph, errState)
	}
	dir := dirSendRecv
	if hold {
		dir = dirSend
	}
	m, po, err := buildOffer(&s.caps, dir, s.neg)
	if err != nil {
		return nil, fmt.Errorf("media re-offer: %w", err)
	}
	po.hold = hold
	s.pending = po
	return s.describe([]sdpMedia{m}), nil
}

// AnswerReoffer answers the peer's re-INVITE offer. It must keep the
// negotiated security (same transport, same suite or the same verified
// certificate and DTLS role); otherwise the error wraps ErrNotAcceptable and
// the session goes on unchanged. A sendonly or inactive offer puts us on
// hold: we stop sending audio and answer recvonly or inactive.
func (s *Session) AnswerReoffer(offer []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ph == phaseClosed {
		return nil, ErrClosed
	}
	if s.ph != phaseRunning && s.ph != phaseNegotiated {
		return nil, fmt.Errorf("media answer re-offer in phase %d: %w", s.ph, errState)
	}
	sd, err := parseSDP(offer)
	if err != nil {
		return nil, fmt.Errorf("media answer re-offer: %w: %w", err, ErrNotAcceptable)
	}
	p, media, err := answerOffer(sd, &s.caps, s.neg, s.peerCert, s.localHold)
	if err != nil {
		s.log.Warn("sdp re-offer refused", "err", err)
		return nil, fmt.Errorf("media answer re-offer: %w", err)
	}
	// Glare resolved in the peer's favour: our own re-offer is void.
	s.pending = nil
	if err := s.apply(p, false); err != nil {
		return nil, fmt.Errorf("media answer re-offer: %w", err)
	}
	return s.describe(media), nil
}

// apply commits negotiated parameters. In a running SDES session a new peer
// key (a re-offer may rekey, RFC 4568) gets a fresh receive context. s.mu
// is held.
func (s *Session) apply(p mediaParams, initial bool) error {
	if !initial && s.ph == phaseRunning && s.caps.security == SecuritySDES && !p.remoteKey.equal(s.neg.remoteKey) {
		rx, err := newSRTPRx(p.remoteKey.Suite, p.remoteKey.Key, p.remoteKey.Salt, p.remoteKey.MKI)
		if err != nil {
			return err
		}
		s.rx[compRTP].Store(rx)
		s.rx[compRTCP].Store(rx)
		s.log.Info("srtp peer key changed by re-offer")
	}
	old := s.neg
	s.neg = &p
	s.live.Store(&liveParams{
		peer: [2]netip.AddrPort{p.remoteRTP, p.remoteRTCP}, mux: p.mux,
		codec: p.codec, sendPT: p.sendPT, recvPT: p.recvPT,
		dtmf: p.dtmf, dtmfSendPT: p.dtmfSendPT, dtmfRecvPT: p.dtmfRecvPT,
		send: p.dir&dirSend != 0, dir: p.dir,
	})
	if old == nil || old.dir != p.dir {
		s.log.Info("media negotiated", "stream", p)
	}
	return nil
}

// want checks the phase under s.mu.
func (s *Session) want(ph phase) error {
	if s.ph == phaseClosed {
		return ErrClosed
	}
	if s.ph != ph {
		return fmt.Errorf("phase %d, want %d: %w", s.ph, ph, errState)
	}
	return nil
}

// SetSource sets where our audio comes from, in 20 ms frames at the
// source's rate: its Rate() if it has one (every hal/audio device and WAV
// file does: 8, 16, 32 or 48 kHz), else 8 kHz. The send loop converts it to
// the negotiated codec's rate. nil sends silence, and so does a source
// after io.EOF or an error.
func (s *Session) SetSource(src audio.Source) {
	if src == nil {
		s.src.Store(nil)
		return
	}
	s.src.Store(&sourceBox{src: src})
}

// SetSink sets where decoded received audio goes, after the jitter buffer
// and loss concealment: one 20 ms frame every 20 ms from Start on
// (silence while nothing arrives), at the sink's rate (its Rate(), else
// 8 kHz), converted from the codec's. nil discards it. WriteFrame runs on
// the playout clock: it must not block.
func (s *Session) SetSink(dst audio.Sink) {
	if dst == nil {
		s.sink.Store(nil)
		return
	}
	s.sink.Store(&sinkBox{sink: dst})
}

// SendDTMF queues an RFC 4733 event for digit (0-9, *, #, A-D) lasting d
// (40 ms to 5 s). Digits play in order; it returns once queued.
func (s *Session) SendDTMF(digit rune, d time.Duration) error {
	ev, ok := dtmfEventCode(digit)
	if !ok {
		return fmt.Errorf("media send dtmf %q: %w", digit, errBadDigit)
	}
	if d < minDTMF || d > maxDTMF {
		return fmt.Errorf("media send dtmf: duration %v outside %v..%v: %w", d, minDTMF, maxDTMF, errBadDuration)
	}
	s.mu.Lock()
	err := s.want(phaseRunning)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("media send dtmf: %w", err)
	}
	lp := s.live.Load()
	switch {
	case !lp.dtmf:
		return fmt.Errorf("media send dtmf: %w", errNoDTMF)
	case !lp.send:
		return fmt.Errorf("media send dtmf while %s: %w", lp.dir, errNotSending)
	}
	frames := int((d + frameMillis*time.Millisecond - 1) / (frameMillis * time.Millisecond))
	select {
	case s.dtmfOut <- dtmfTone{event: ev, frames: frames}:
		return nil
	default:
		return fmt.Errorf("media send dtmf: %w", errDTMFBusy)
	}
}

// Mute stops sending the source's audio: while muted, the send loop goes on
// reading the source (so a microphone's queue does not fill and play stale
// audio on unmute) and sends encoded silence in its place. The packets keep
// flowing, so the peer's inactivity timeout and SRTCP reports go on as in
// any call; nothing of the muted audio leaves the phone. It may be called in
// any phase, and holds until Unmute.
func (s *Session) Mute() {
	if !s.muted.Swap(true) {
		s.log.Info("microphone muted")
	}
}

// Unmute sends the source's audio again from the next frame.
func (s *Session) Unmute() {
	if s.muted.Swap(false) {
		s.log.Info("microphone unmuted")
	}
}

// Muted reports whether Mute is in effect.
func (s *Session) Muted() bool { return s.muted.Load() }

// currentCodec is the negotiated codec, PCMU before negotiation.
func (s *Session) currentCodec() Codec {
	if lp := s.live.Load(); lp != nil {
		return lp.codec
	}
	return PCMU
}

// DTMF delivers received RFC 4733 digits, each once. It is closed by Close.
func (s *Session) DTMF() <-chan rune { return s.dtmfIn }

// Stats returns the session's counters.
func (s *Session) Stats() Stats {
	st := s.st.snapshot()
	st.Security = s.caps.security
	s.mu.Lock()
	st.Suite = s.suite
	if s.neg != nil {
		st.Codec = s.neg.codec.String()
		st.SampleRate = s.neg.codec.Rate()
		st.Direction = s.neg.dir.String()
	}
	s.mu.Unlock()
	s.jb.snapshot(&st)
	st.Muted = s.muted.Load()
	st.SendLevel = s.sendLevel.level()
	st.RecvLevel = s.recvLevel.level()
	return st
}

// RemoteAddrs returns the peer's RTP address and, without rtcp-mux, its
// RTCP address, as the SDP gives them: the pinholes the call needs. It is
// nil before negotiation.
func (s *Session) RemoteAddrs() []netip.AddrPort {
	lp := s.live.Load()
	if lp == nil {
		return nil
	}
	if lp.mux {
		return []netip.AddrPort{lp.peer[compRTP]}
	}
	return []netip.AddrPort{lp.peer[compRTP], lp.peer[compRTCP]}
}

// LocalAddrs returns our RTP address and, unless rtcp-mux was negotiated,
// our RTCP address.
func (s *Session) LocalAddrs() []netip.AddrPort {
	if lp := s.live.Load(); lp != nil && lp.mux {
		return []netip.AddrPort{s.local[compRTP]}
	}
	return []netip.AddrPort{s.local[compRTP], s.local[compRTCP]}
}

// Close stops the media: it sends an SRTCP BYE if the call ran, closes the
// DTLS associations (close_notify) and the sockets, and waits for every
// goroutine. It is idempotent.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.ph = phaseClosed
		snd := s.snd
		s.mu.Unlock()
		close(s.done)
		s.cancelLife()
		s.sending.Wait()
		if snd != nil {
			snd.bye()
		}
		for _, d := range s.dtls {
			if d != nil {
				d.shutdown()
			}
		}
		s.closeErr = s.closeSockets()
		s.loops.Wait()
		close(s.dtmfIn)
		st := s.Stats()
		s.log.Info("media closed", "packets_sent", st.PacketsSent, "packets_received", st.PacketsReceived,
			"auth_failures", st.AuthFailures, "replays", st.Replays)
	})
	return s.closeErr
}

func (s *Session) closeSockets() error {
	var errs []error
	for _, sock := range s.socks {
		if sock == nil {
			continue
		}
		if err := sock.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("media close: %w", err)
	}
	return nil
}
