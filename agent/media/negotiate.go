package media

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"

	"github.com/hardphone/hardphone/crypto/policy"
)

// Transport protocols of an m= line.
const (
	protoAVP       = "RTP/AVP"           // RFC 3551: plain RTP, always refused
	protoAVPF      = "RTP/AVPF"          // RFC 4585: plain RTP, always refused
	protoSAVP      = "RTP/SAVP"          // RFC 3711 §12, keyed by SDES (RFC 4568)
	protoSAVPF     = "RTP/SAVPF"         // RFC 5124
	protoDTLSSAVP  = "UDP/TLS/RTP/SAVP"  // RFC 5764 §8
	protoDTLSSAVPF = "UDP/TLS/RTP/SAVPF" // RFC 5764 §8
)

// localCaps is what this side offers and accepts; it is the input of every
// offer/answer step, which are pure functions of it and the SDP.
type localCaps struct {
	security Security
	addr     netip.Addr
	rtpPort  uint16
	codecs   []Codec
	dtmfPT   uint8
	// offerSuites are the SDES suites we offer, in order:
	// policy.SRTPSuites() outside tests.
	offerSuites []policy.SRTPSuite
	// key returns our SDES key for a suite, the same one every time within
	// a session so re-offers keep it.
	key func(policy.SRTPSuite) (sdesKey, error)
	// fp is our DTLS certificate's fingerprint.
	fp fingerprint
	// dest bounds where the peer may aim our media; portMin..portMax is our
	// own RTP range (0, 0: any).
	dest             DestinationPolicy
	portMin, portMax uint16
}

// mediaParams is the outcome of one offer/answer exchange for the audio
// stream: where to send, how to encode, and the agreed security.
type mediaParams struct {
	proto                 string
	remoteRTP, remoteRTCP netip.AddrPort
	mux                   bool
	codec                 Codec
	// sendPT is the payload type the peer asked to receive the codec with;
	// recvPT the one we asked for.
	sendPT, recvPT         uint8
	dtmf                   bool
	dtmfSendPT, dtmfRecvPT uint8
	// dir is our direction: dirSend set means we send audio.
	dir direction
	// SDES: the peer's tag, our key, the peer's key.
	tag                 uint32
	localKey, remoteKey sdesKey
	// DTLS: the peer's fingerprints (one hash) and our role.
	fps        []fingerprint
	dtlsClient bool
}

// LogValue describes the stream without key material.
func (p mediaParams) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("proto", p.proto),
		slog.String("peer", p.remoteRTP.String()),
		slog.Bool("rtcp_mux", p.mux),
		slog.String("codec", p.codec.String()),
		slog.String("direction", p.dir.String()),
	}
	if p.localKey.Suite.SDESName != "" {
		attrs = append(attrs, slog.String("suite", p.localKey.Suite.SDESName))
	} else {
		attrs = append(attrs, slog.String("setup", map[bool]string{true: "active", false: "passive"}[p.dtlsClient]))
	}
	return slog.GroupValue(attrs...)
}

// pendingOffer is what we offered, to check the answer against.
type pendingOffer struct {
	proto   string
	cryptos map[uint32]sdesKey // SDES: tag -> our key on that line
	codecs  []Codec
	dtmfPT  uint8
	dir     direction
	mux     bool
	hold    bool
	// prev is the session being modified, nil for the initial offer.
	prev *mediaParams
}

func notAcceptable(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, ErrNotAcceptable)...)
}

// buildOffer describes our audio stream for an initial offer (prev nil) or a
// re-offer. A re-offer keeps the negotiated security: the same transport
// protocol and, for SDES, the one negotiated suite under the same tag with
// the same key; for DTLS, the same certificate fingerprint and
// a=setup:actpass (RFC 5763 §5: the offerer MUST use actpass).
func buildOffer(c *localCaps, dir direction, prev *mediaParams) (sdpMedia, *pendingOffer, error) {
	po := &pendingOffer{codecs: c.codecs, dtmfPT: c.dtmfPT, dir: dir, mux: true, prev: prev}
	switch {
	case prev != nil:
		po.proto, po.mux = prev.proto, prev.mux
	case c.security == SecuritySDES:
		po.proto = protoSAVP
	default:
		po.proto = protoDTLSSAVP
	}
	m := audioMedia(c, po.proto, c.codecs, c.dtmfPT, true, dir, po.mux)
	switch c.security {
	case SecuritySDES:
		po.cryptos = map[uint32]sdesKey{}
		if prev != nil {
			po.cryptos[prev.tag] = prev.localKey
			m.Attrs = append(m.Attrs, sdpAttr{Name: "crypto", Value: prev.localKey.cryptoLine(prev.tag), HasValue: true})
			break
		}
		// RFC 4568: one a=crypto line per suite, preferred first, each with
		// its own fresh key; tags 1..n.
		for i, suite := range c.offerSuites {
			k, err := c.key(suite)
			if err != nil {
				return sdpMedia{}, nil, err
			}
			tag := uint32(i + 1)
			po.cryptos[tag] = k
			m.Attrs = append(m.Attrs, sdpAttr{Name: "crypto", Value: k.cryptoLine(tag), HasValue: true})
		}
	case SecurityDTLS:
		m.Attrs = append(m.Attrs,
			sdpAttr{Name: "fingerprint", Value: c.fp.String(), HasValue: true},
			sdpAttr{Name: "setup", Value: "actpass", HasValue: true})
	}
	return m, po, nil
}

// audioMedia builds the m=audio section common to offers and answers.
func audioMedia(c *localCaps, proto string, codecs []Codec, dtmfPT uint8, dtmf bool, dir direction, mux bool) sdpMedia {
	m := sdpMedia{Media: "audio", Port: int(c.rtpPort), Proto: proto}
	for _, cd := range codecs {
		m.Formats = append(m.Formats, strconv.Itoa(int(cd)))
	}
	if dtmf {
		m.Formats = append(m.Formats, strconv.Itoa(int(dtmfPT)))
	}
	for _, cd := range codecs {
		m.Attrs = append(m.Attrs, sdpAttr{Name: "rtpmap", Value: fmt.Sprintf("%d %s/%d", cd, cd, rtpClock), HasValue: true})
	}
	if dtmf {
		m.Attrs = append(m.Attrs,
			sdpAttr{Name: "rtpmap", Value: fmt.Sprintf("%d telephone-event/%d", dtmfPT, rtpClock), HasValue: true},
			// RFC 4733 §3.2: events 0-15 are the DTMF digits.
			sdpAttr{Name: "fmtp", Value: fmt.Sprintf("%d 0-15", dtmfPT), HasValue: true})
	}
	m.Attrs = append(m.Attrs, sdpAttr{Name: "ptime", Value: strconv.Itoa(frameMillis), HasValue: true})
	if mux {
		m.Attrs = append(m.Attrs, sdpAttr{Name: "rtcp-mux"})
	}
	m.Attrs = append(m.Attrs, sdpAttr{Name: dir.String()})
	return m
}

// payloadTypes lists the formats of m as RTP payload types, skipping
// anything that is not one.
func payloadTypes(m *sdpMedia) []uint8 {
	var out []uint8
	for _, f := range m.Formats {
		if n, err := parseDecimal(f, 127); err == nil {
			out = append(out, uint8(n))
		}
	}
	return out
}

// rtpmap returns encoding name, clock rate and channels for pt, if m maps it.
func rtpmap(m *sdpMedia, pt uint8) (name string, rate, channels int, ok bool) {
	prefix := strconv.Itoa(int(pt)) + " "
	for _, v := range attrValues(m.Attrs, "rtpmap") {
		rest, found := strings.CutPrefix(v, prefix)
		if !found {
			continue
		}
		parts := strings.Split(strings.TrimSpace(rest), "/")
		if len(parts) < 2 || len(parts) > 3 {
			return "", 0, 0, false
		}
		r, err := parseDecimal(parts[1], 1000000)
		if err != nil {
			return "", 0, 0, false
		}
		ch := 1
		if len(parts) == 3 {
			if ch, err = parseDecimal(parts[2], 255); err != nil {
				return "", 0, 0, false
			}
		}
		return parts[0], r, ch, true
	}
	return "", 0, 0, false
}

// codecOf says which of our codecs pt carries in m: by rtpmap if present,
// else by the static assignment of RFC 3551 §6. Every codec we carry runs
// an 8000 Hz RTP clock; "G722/16000", which a few peers write, is not
// taken: RFC 3551 §4.5.2 fixes G.722's clock at 8000 Hz, and a peer that
// thinks otherwise would stamp its packets at twice the rate we play them.
func codecOf(m *sdpMedia, pt uint8) (Codec, bool) {
	if name, rate, ch, ok := rtpmap(m, pt); ok {
		c, known := codecByName(name)
		return c, known && rate == rtpClock && ch == 1
	}
	c := Codec(pt)
	return c, c.valid()
}

// telephoneEvent finds the RFC 4733 telephone-event/8000 payload type.
func telephoneEvent(m *sdpMedia) (uint8, bool) {
	for _, pt := range payloadTypes(m) {
		if name, rate, _, ok := rtpmap(m, pt); ok && strings.EqualFold(name, "telephone-event") && rate == rtpClock {
			return pt, true
		}
	}
	return 0, false
}

// remoteAddrs resolves where the peer receives RTP and RTCP. An
// unspecified c= address (0.0.0.0, RFC 3264 §8.4 old-style hold) is only
// taken in a re-offer, where it keeps the previous addresses and stops us
// sending; ok reports whether the peer receives at all.
func remoteAddrs(sd *sdpSession, m *sdpMedia, c *localCaps, mux bool, prev *mediaParams) (rtp, rtcp netip.AddrPort, receives bool, err error) {
	rtp, rtcp, receives, err = peerAddrs(sd, m, c.addr, mux, prev)
	if err != nil || !receives {
		return rtp, rtcp, receives, err
	}
	for _, ap := range []netip.AddrPort{rtp, rtcp} {
		if err := c.dest.checkDestination(ap, c.portMin, c.portMax); err != nil {
			return rtp, rtcp, false, err
		}
	}
	return rtp, rtcp, true, nil
}

// peerAddrs reads the peer's RTP and RTCP addresses from the SDP.
func peerAddrs(sd *sdpSession, m *sdpMedia, local netip.Addr, mux bool, prev *mediaParams) (rtp, rtcp netip.AddrPort, receives bool, err error) {
	addr, err := sd.connAddr(m)
	if err != nil {
		return rtp, rtcp, false, err
	}
	if addr.IsUnspecified() {
		if prev == nil {
			return rtp, rtcp, false, notAcceptable("c= address %s names no peer", addr)
		}
		return prev.remoteRTP, prev.remoteRTCP, false, nil
	}
	if addr.Is4() != local.Is4() {
		return rtp, rtcp, false, notAcceptable("peer address %s and local address %s are different IP families", addr, local)
	}
	if m.PortCount > 1 {
		return rtp, rtcp, false, notAcceptable("m= port count %d: one RTP session only", m.PortCount)
	}
	rtp = netip.AddrPortFrom(addr, uint16(m.Port))
	if mux {
		return rtp, rtp, true, nil
	}
	// RFC 3605 §2.1: a=rtcp:<port> [IN IP4 <addr>]; otherwise RTP port + 1
	// (RFC 3550 §11).
	if v, ok := findAttr(m.Attrs, "rtcp"); ok {
		f := strings.Fields(v)
		p, perr := parseDecimal(firstOr(f, ""), 65535)
		if perr != nil || p == 0 || (len(f) != 1 && len(f) != 4) {
			return rtp, rtcp, false, notAcceptable("a=rtcp:%s", v)
		}
		ra := addr
		if len(f) == 4 {
			c := sdpConn{f[1], f[2], f[3]}
			ra, err = sd.connAddr(&sdpMedia{Media: m.Media, Conn: &c})
			if err != nil || ra.IsUnspecified() || ra.Is4() != local.Is4() {
				return rtp, rtcp, false, notAcceptable("a=rtcp address %q", v)
			}
		}
		return rtp, netip.AddrPortFrom(ra, uint16(p)), true, nil
	}
	if m.Port == 65535 {
		return rtp, rtcp, false, notAcceptable("rtp port 65535 leaves no rtcp port")
	}
	return rtp, netip.AddrPortFrom(addr, uint16(m.Port+1)), true, nil
}

func firstOr(f []string, def string) string {
	if len(f) == 0 {
		return def
	}
	return f[0]
}

// setupAttr reads a=setup at media then session level (RFC 4145 §4).
func setupAttr(sd *sdpSession, m *sdpMedia, def string) string {
	if v, ok := findAttr(m.Attrs, "setup"); ok {
		return strings.TrimSpace(v)
	}
	if v, ok := findAttr(sd.Attrs, "setup"); ok {
		return strings.TrimSpace(v)
	}
	return def
}

// fingerprintValues reads a=fingerprint at media level, else session level
// (RFC 8122 §5: either is allowed; the media level wins).
func fingerprintValues(sd *sdpSession, m *sdpMedia) []string {
	if v := attrValues(m.Attrs, "fingerprint"); len(v) > 0 {
		return v
	}
	return attrValues(sd.Attrs, "fingerprint")
}

// checkProto refuses every transport protocol that is not SRTP keyed the
// way we are configured.
func checkProto(sec Security, proto string) error {
	switch proto {
	case protoSAVP, protoSAVPF:
		if sec == SecuritySDES {
			return nil
		}
		return notAcceptable("m= proto %s is SDES-keyed SRTP; this phone is configured for DTLS-SRTP", proto)
	case protoDTLSSAVP, protoDTLSSAVPF:
		if sec == SecurityDTLS {
			return nil
		}
		return notAcceptable("m= proto %s is DTLS-SRTP; this phone is configured for SDES", proto)
	case protoAVP, protoAVPF:
		return notAcceptable("m= proto %s is plain RTP: SRTP is mandatory", proto)
	}
	return notAcceptable("m= proto %q is not SRTP", proto)
}

// acceptAnswer checks the peer's answer to our offer po and returns the
// negotiated stream. Anything not offered is refused: another transport, a
// crypto tag or suite we did not offer (baresip may answer an unoffered
// suite), a codec we did not list, actpass in an answer.
func acceptAnswer(sd *sdpSession, po *pendingOffer, c *localCaps, peerCert []byte) (mediaParams, error) {
	if len(sd.Media) != 1 {
		return mediaParams{}, notAcceptable("answer has %d m= lines, we offered 1", len(sd.Media))
	}
	m := &sd.Media[0]
	if m.Media != "audio" {
		return mediaParams{}, notAcceptable("answer m=%s, we offered audio", m.Media)
	}
	if m.Port == 0 {
		return mediaParams{}, notAcceptable("peer rejected the audio stream (port 0)")
	}
	if m.Proto != po.proto {
		if err := checkProto(c.security, m.Proto); err != nil {
			return mediaParams{}, fmt.Errorf("answer: %w", err)
		}
		return mediaParams{}, notAcceptable("answer m= proto %s, we offered %s", m.Proto, po.proto)
	}
	p := mediaParams{proto: m.Proto, mux: po.mux && hasAttr(m.Attrs, "rtcp-mux")}
	if po.prev != nil && p.mux != po.prev.mux {
		return mediaParams{}, fmt.Errorf("answer changes rtcp-mux: %w: %w", errSecurityKept, ErrNotAcceptable)
	}
	var (
		receives bool
		err      error
	)
	p.remoteRTP, p.remoteRTCP, receives, err = remoteAddrs(sd, m, c, p.mux, po.prev)
	if err != nil {
		return mediaParams{}, fmt.Errorf("answer: %w", err)
	}
	found := false
	for _, pt := range payloadTypes(m) {
		cd, ok := codecOf(m, pt)
		if ok && containsCodec(po.codecs, cd) {
			p.codec, p.sendPT, p.recvPT, found = cd, pt, uint8(cd), true
			break
		}
	}
	if !found {
		return mediaParams{}, notAcceptable("answer formats %v hold no codec we offered", m.Formats)
	}
	if pt, ok := telephoneEvent(m); ok {
		p.dtmf, p.dtmfSendPT, p.dtmfRecvPT = true, pt, po.dtmfPT
	}
	peerDir := sd.mediaDirection(m)
	if !receives {
		peerDir &^= dirRecv
	}
	p.dir = po.dir & peerDir.reverse()

	switch c.security {
	case SecuritySDES:
		lines := attrValues(m.Attrs, "crypto")
		if len(lines) != 1 {
			return mediaParams{}, notAcceptable("answer has %d a=crypto lines, want exactly 1", len(lines))
		}
		ca, err := parseCrypto(lines[0])
		if err != nil {
			return mediaParams{}, fmt.Errorf("answer: %w: %w", err, ErrNotAcceptable)
		}
		ours, offered := po.cryptos[ca.Tag]
		if !offered {
			return mediaParams{}, notAcceptable("answer selects a=crypto tag %d, which we did not offer", ca.Tag)
		}
		if ca.Suite != ours.Suite.SDESName {
			return mediaParams{}, notAcceptable("answer tag %d carries %s, we offered %s under that tag", ca.Tag, ca.Suite, ours.Suite.SDESName)
		}
		theirs, err := acceptCrypto(ca)
		if err != nil {
			return mediaParams{}, fmt.Errorf("answer a=crypto: %w: %w", err, ErrNotAcceptable)
		}
		if theirs.equal(ours) {
			return mediaParams{}, notAcceptable("answer reflects our own SRTP key")
		}
		p.tag, p.localKey, p.remoteKey = ca.Tag, ours, theirs
	case SecurityDTLS:
		fps, err := acceptFingerprints(fingerprintValues(sd, m))
		if err != nil {
			return mediaParams{}, fmt.Errorf("answer: %w", err)
		}
		p.fps = fps
		// RFC 4145 §4: absent, the answer's setup is passive.
		switch s := setupAttr(sd, m, "passive"); s {
		case "active":
			p.dtlsClient = false
		case "passive":
			p.dtlsClient = true
		case "actpass":
			// RFC 5763 §5 forbids actpass in an answer, but baresip sends it
			// in answers to re-offers. On a renegotiation it can only mean
			// "unchanged": keep the role, and keepsDTLS below still demands
			// the same verified certificate and address.
			if po.prev == nil {
				return mediaParams{}, notAcceptable("answer a=setup:actpass, want active or passive")
			}
			p.dtlsClient = po.prev.dtlsClient
		default:
			// RFC 5763 §5: the answerer MUST use active or passive.
			return mediaParams{}, notAcceptable("answer a=setup:%s, want active or passive", s)
		}
		if err := keepsDTLS(&p, po.prev, peerCert); err != nil {
			return mediaParams{}, err
		}
	}
	return p, nil
}

// keepsDTLS checks that a renegotiation leaves the DTLS association as it
// is: same role, same peer certificate, same transport address.
func keepsDTLS(p, prev *mediaParams, peerCert []byte) error {
	if prev == nil {
		return nil
	}
	if p.dtlsClient != prev.dtlsClient {
		return fmt.Errorf("dtls role changes to %s: %w: %w", role(p.dtlsClient), errSecurityKept, ErrNotAcceptable)
	}
	if p.remoteRTP != prev.remoteRTP || p.remoteRTCP != prev.remoteRTCP {
		return fmt.Errorf("dtls-srtp media moves from %s to %s, which would need a new association: %w: %w",
			prev.remoteRTP, p.remoteRTP, errSecurityKept, ErrNotAcceptable)
	}
	if peerCert != nil {
		if err := matchFingerprint(peerCert, p.fps); err != nil {
			return fmt.Errorf("a=fingerprint no longer matches the verified peer certificate: %w: %w", errSecurityKept, ErrNotAcceptable)
		}
	} else if !sameFingerprints(p.fps, prev.fps) {
		return fmt.Errorf("a=fingerprint changes: %w: %w", errSecurityKept, ErrNotAcceptable)
	}
	return nil
}

func sameFingerprints(a, b []fingerprint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Hash != b[i].Hash || string(a[i].Value) != string(b[i].Value) {
			return false
		}
	}
	return true
}

func hasAttr(attrs []sdpAttr, name string) bool {
	_, ok := findAttr(attrs, name)
	return ok
}

func containsCodec(cs []Codec, c Codec) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}

// answerOffer answers a peer's offer: the initial one (prev nil) or a
// re-offer, which must keep the negotiated security. It returns the
// negotiated stream and the answer's m= sections: the first acceptable
// audio stream is taken, every other m= line is refused with port 0
// (RFC 3264 §6: the answer has as many m= lines as the offer).
func answerOffer(sd *sdpSession, c *localCaps, prev *mediaParams, peerCert []byte, localHold bool) (mediaParams, []sdpMedia, error) {
	var (
		chosen = -1
		params mediaParams
		ans    sdpMedia
		errs   []error
	)
	for i := range sd.Media {
		m := &sd.Media[i]
		if m.Media != "audio" || m.Port == 0 || chosen >= 0 {
			continue
		}
		p, a, err := answerAudio(sd, m, c, prev, peerCert, localHold)
		if err != nil {
			errs = append(errs, fmt.Errorf("m= line %d: %w", i+1, err))
			continue
		}
		chosen, params, ans = i, p, a
	}
	if chosen < 0 {
		if len(errs) == 0 {
			return mediaParams{}, nil, notAcceptable("offer has no audio stream")
		}
		return mediaParams{}, nil, errors.Join(errs...)
	}
	out := make([]sdpMedia, len(sd.Media))
	for i := range sd.Media {
		if i == chosen {
			out[i] = ans
			continue
		}
		m := sd.Media[i]
		out[i] = sdpMedia{Media: m.Media, Port: 0, Proto: m.Proto, Formats: append([]string(nil), m.Formats...)}
	}
	return params, out, nil
}

func answerAudio(sd *sdpSession, m *sdpMedia, c *localCaps, prev *mediaParams, peerCert []byte, localHold bool) (mediaParams, sdpMedia, error) {
	if err := checkProto(c.security, m.Proto); err != nil {
		return mediaParams{}, sdpMedia{}, err
	}
	if prev != nil && m.Proto != prev.proto {
		return mediaParams{}, sdpMedia{}, fmt.Errorf("re-offer proto %s, negotiated %s: %w: %w", m.Proto, prev.proto, errSecurityKept, ErrNotAcceptable)
	}
	p := mediaParams{proto: m.Proto, mux: hasAttr(m.Attrs, "rtcp-mux")}
	if prev != nil {
		if prev.mux && !p.mux {
			return mediaParams{}, sdpMedia{}, fmt.Errorf("re-offer drops rtcp-mux: %w: %w", errSecurityKept, ErrNotAcceptable)
		}
		// RFC 5761 §5.1: the answerer may decline mux; we do once the
		// session runs without it.
		p.mux = prev.mux
	}
	var (
		receives bool
		err      error
	)
	p.remoteRTP, p.remoteRTCP, receives, err = remoteAddrs(sd, m, c, p.mux, prev)
	if err != nil {
		return mediaParams{}, sdpMedia{}, err
	}
	pts := payloadTypes(m)
	found := false
	pick := func(want Codec) bool {
		for _, pt := range pts {
			if cd, ok := codecOf(m, pt); ok && cd == want {
				p.codec, p.sendPT, p.recvPT = cd, pt, pt
				return true
			}
		}
		return false
	}
	if prev != nil {
		found = pick(prev.codec)
	}
	for _, want := range c.codecs {
		if found {
			break
		}
		found = pick(want)
	}
	if !found {
		return mediaParams{}, sdpMedia{}, notAcceptable("offer formats %v hold none of our codecs %v", m.Formats, c.codecs)
	}
	if pt, ok := telephoneEvent(m); ok {
		p.dtmf, p.dtmfSendPT, p.dtmfRecvPT = true, pt, pt
	}
	peerDir := sd.mediaDirection(m)
	if !receives {
		peerDir &^= dirRecv
	}
	want := dirSendRecv
	if localHold {
		want = dirSend
	}
	p.dir = peerDir.reverse() & want

	a := audioMedia(c, m.Proto, []Codec{p.codec}, p.dtmfRecvPT, p.dtmf, p.dir, p.mux)
	a.Formats[0] = strconv.Itoa(int(p.recvPT))
	a.Attrs[0].Value = fmt.Sprintf("%d %s/%d", p.recvPT, p.codec, rtpClock)

	switch c.security {
	case SecuritySDES:
		line, theirs, err := chooseCrypto(attrValues(m.Attrs, "crypto"), prev)
		if err != nil {
			return mediaParams{}, sdpMedia{}, err
		}
		ours := theirs.Suite
		var k sdesKey
		if prev != nil {
			k = prev.localKey
		} else if k, err = c.key(ours); err != nil {
			return mediaParams{}, sdpMedia{}, err
		}
		if theirs.equal(k) {
			return mediaParams{}, sdpMedia{}, notAcceptable("offer carries our own SRTP key")
		}
		p.tag, p.localKey, p.remoteKey = line.Tag, k, theirs
		a.Attrs = append(a.Attrs, sdpAttr{Name: "crypto", Value: k.cryptoLine(line.Tag), HasValue: true})
	case SecurityDTLS:
		fps, err := acceptFingerprints(fingerprintValues(sd, m))
		if err != nil {
			return mediaParams{}, sdpMedia{}, err
		}
		p.fps = fps
		// RFC 4145 §4: absent, the offer's setup is active.
		switch s := setupAttr(sd, m, "active"); s {
		case "actpass":
			// RFC 5763 §5: setup:active is RECOMMENDED for the answerer, so
			// the handshake runs alongside the answer. In a re-offer we keep
			// the role the association already has.
			p.dtlsClient = true
			if prev != nil {
				p.dtlsClient = prev.dtlsClient
			}
		case "active":
			p.dtlsClient = false
		case "passive":
			p.dtlsClient = true
		default:
			return mediaParams{}, sdpMedia{}, notAcceptable("offer a=setup:%s, want actpass, active or passive", s)
		}
		if err := keepsDTLS(&p, prev, peerCert); err != nil {
			return mediaParams{}, sdpMedia{}, err
		}
		setup := "passive"
		if p.dtlsClient {
			setup = "active"
		}
		a.Attrs = append(a.Attrs,
			sdpAttr{Name: "fingerprint", Value: c.fp.String(), HasValue: true},
			sdpAttr{Name: "setup", Value: setup, HasValue: true})
	}
	return p, a, nil
}

// chooseCrypto picks the offered a=crypto line to answer: the one whose
// suite comes first in our policy order (policy.AcceptedSRTPSuites), not
// the offerer's order, among lines that pass acceptCrypto. In a re-offer
// only the negotiated suite is taken.
func chooseCrypto(lines []string, prev *mediaParams) (cryptoAttr, sdesKey, error) {
	if len(lines) == 0 {
		return cryptoAttr{}, sdesKey{}, notAcceptable("offer has no a=crypto line: no SRTP keys")
	}
	type cand struct {
		attr cryptoAttr
		key  sdesKey
	}
	var (
		ok   []cand
		errs []string
	)
	for _, l := range lines {
		ca, err := parseCrypto(l)
		if err == nil {
			var k sdesKey
			if k, err = acceptCrypto(ca); err == nil {
				ok = append(ok, cand{ca, k})
				continue
			}
		}
		errs = append(errs, err.Error())
	}
	order := policy.AcceptedSRTPSuites()
	if prev != nil {
		order = []policy.SRTPSuite{prev.localKey.Suite}
	}
	for _, s := range order {
		for _, c := range ok {
			if c.key.Suite.SDESName == s.SDESName {
				return c.attr, c.key, nil
			}
		}
	}
	if prev != nil {
		return cryptoAttr{}, sdesKey{}, fmt.Errorf("re-offer has no acceptable %s line: %w: %w", prev.localKey.Suite.SDESName, errSecurityKept, ErrNotAcceptable)
	}
	return cryptoAttr{}, sdesKey{}, notAcceptable("no acceptable a=crypto line (%s)", strings.Join(errs, "; "))
}
