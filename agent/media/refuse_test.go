package media

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/hardphone/hardphone/crypto/policy"
)

// TestKeyingNeedsTLSSignaling: neither keying method runs over a plain
// signalling hop. SDES keys would cross it in clear; a DTLS-SRTP fingerprint
// from it authenticates whoever wrote the SDP (a spoofed INVITE's own).
func TestKeyingNeedsTLSSignaling(t *testing.T) {
	for _, sec := range []Security{SecuritySDES, SecurityDTLS} {
		cfg := testConfig(t, "a", sec)
		cfg.SignalingTLS = false
		s, err := NewSession(cfg)
		if err == nil {
			s.Close()
			t.Fatalf("NewSession(%v, SignalingTLS=false) = nil error, want refusal", sec)
		}
		if !errors.Is(err, ErrInsecureSignaling) || !errors.Is(err, ErrNotAcceptable) {
			t.Fatalf("NewSession(%v, SignalingTLS=false) = %v, want ErrInsecureSignaling and ErrNotAcceptable", sec, err)
		}
	}
}

func TestNewSessionConfig(t *testing.T) {
	log, _ := testLogger(t, "cfg")
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no logger", Config{Security: SecurityDTLS, LocalIP: loopback}},
		{"no security", Config{LocalIP: loopback, Logger: log}},
		{"no ip", Config{Security: SecurityDTLS, Logger: log}},
		{"unspecified ip", Config{Security: SecurityDTLS, LocalIP: netip.MustParseAddr("0.0.0.0"), Logger: log}},
		{"bad codec", Config{Security: SecurityDTLS, LocalIP: loopback, Logger: log, Codecs: []Codec{9}}},
		{"bad dtmf pt", Config{Security: SecurityDTLS, LocalIP: loopback, Logger: log, DTMFPayloadType: 8}},
		{"bad range", Config{Security: SecurityDTLS, LocalIP: loopback, Logger: log, PortMin: 40001, PortMax: 40001}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := NewSession(tt.cfg); err == nil {
				s.Close()
				t.Fatalf("NewSession(%s) = nil error, want refusal", tt.name)
			}
		})
	}
	cfg := testConfig(t, "range", SecurityDTLS)
	cfg.PortMin, cfg.PortMax = 41000, 41100
	s := newTestSession(t, cfg)
	if p := s.LocalAddrs()[0].Port(); p < 41000 || p > 41099 || p%2 != 0 || s.LocalAddrs()[1].Port() != p+1 {
		t.Fatalf("LocalAddrs() = %v, want an even port in 41000-41099 and RTCP on the next", s.LocalAddrs())
	}
}

// TestAnswerRefusesOffer: every offer without acceptable crypto is refused
// with ErrNotAcceptable, and the session sends nothing at all.
func TestAnswerRefusesOffer(t *testing.T) {
	key30 := "inline:" + b64(30)
	tests := []struct {
		name  string
		sec   Security
		proto string
		attrs []string
	}{
		{"plain RTP/AVP", SecuritySDES, protoAVP, []string{}},
		{"RTP/AVP with crypto", SecuritySDES, protoAVP, []string{"a=crypto:1 AES_CM_128_HMAC_SHA1_80 " + key30}},
		{"plain RTP/AVP to dtls", SecurityDTLS, protoAVP, []string{}},
		{"SAVP without crypto", SecuritySDES, protoSAVP, []string{}},
		{"NULL cipher", SecuritySDES, protoSAVP, []string{"a=crypto:1 NULL_HMAC_SHA1_80 " + key30}},
		{"F8 cipher", SecuritySDES, protoSAVP, []string{"a=crypto:1 F8_128_HMAC_SHA1_80 " + key30}},
		{"unknown suite", SecuritySDES, protoSAVP, []string{"a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:" + b64(46)}},
		{"bad base64", SecuritySDES, protoSAVP, []string{"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:!!!!bad!!!!base64!!!!!!!!!!!!!!!!!!!!!!!!"}},
		{"key too short", SecuritySDES, protoSAVP, []string{"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + b64(29)}},
		{"key too long", SecuritySDES, protoSAVP, []string{"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + b64(46)}},
		{"gcm key of cm length", SecuritySDES, protoSAVP, []string{"a=crypto:1 AEAD_AES_128_GCM " + key30}},
		{"missing key", SecuritySDES, protoSAVP, []string{"a=crypto:1 AES_CM_128_HMAC_SHA1_80"}},
		{"two master keys", SecuritySDES, protoSAVP, []string{"a=crypto:1 AES_CM_128_HMAC_SHA1_80 " + key30 + "|2^20|1:4;" + key30 + "|2^20|2:4"}},
		{"unencrypted srtp", SecuritySDES, protoSAVP, []string{"a=crypto:1 AES_CM_128_HMAC_SHA1_80 " + key30 + " UNENCRYPTED_SRTP"}},
		{"unauthenticated srtp", SecuritySDES, protoSAVP, []string{"a=crypto:1 AES_CM_128_HMAC_SHA1_80 " + key30 + " UNAUTHENTICATED_SRTP"}},
		{"unencrypted srtcp", SecuritySDES, protoSAVP, []string{"a=crypto:1 AES_CM_128_HMAC_SHA1_80 " + key30 + " UNENCRYPTED_SRTCP"}},
		{"kdr", SecuritySDES, protoSAVP, []string{"a=crypto:1 AES_CM_128_HMAC_SHA1_80 " + key30 + " KDR=1"}},
		{"unknown session param", SecuritySDES, protoSAVP, []string{"a=crypto:1 AES_CM_128_HMAC_SHA1_80 " + key30 + " FOO=1"}},
		{"short lifetime", SecuritySDES, protoSAVP, []string{"a=crypto:1 AES_CM_128_HMAC_SHA1_80 " + key30 + "|2^10"}},
		{"dtls proto to sdes", SecuritySDES, protoDTLSSAVPF, []string{"a=fingerprint:sha-256 " + strings.Repeat("AB:", 31) + "AB", "a=setup:actpass"}},
		{"sdes proto to dtls", SecurityDTLS, protoSAVP, []string{"a=crypto:1 AES_CM_128_HMAC_SHA1_80 " + key30}},
		{"dtls without fingerprint", SecurityDTLS, protoDTLSSAVPF, []string{"a=setup:actpass"}},
		{"dtls sha-1 fingerprint", SecurityDTLS, protoDTLSSAVPF, []string{"a=fingerprint:sha-1 " + strings.Repeat("AB:", 19) + "AB", "a=setup:actpass"}},
		{"dtls md5 fingerprint", SecurityDTLS, protoDTLSSAVP, []string{"a=fingerprint:md5 " + strings.Repeat("AB:", 15) + "AB", "a=setup:actpass"}},
		{"dtls short fingerprint", SecurityDTLS, protoDTLSSAVP, []string{"a=fingerprint:sha-256 AB:CD", "a=setup:actpass"}},
		{"dtls holdconn", SecurityDTLS, protoDTLSSAVP, []string{"a=fingerprint:sha-256 " + strings.Repeat("AB:", 31) + "AB", "a=setup:holdconn"}},
		{"unknown proto", SecuritySDES, "UDP/BFCP", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newRawPeer(t)
			s, err := NewSession(testConfig(t, "b", tt.sec))
			if err != nil {
				t.Fatal(err)
			}
			offer := p.offer(tt.proto, tt.attrs...)
			ans, err := s.Answer([]byte(offer))
			if !errors.Is(err, ErrNotAcceptable) {
				s.Close()
				t.Fatalf("Answer(%s) = %q, %v; want ErrNotAcceptable", tt.name, ans, err)
			}
			if err := s.Start(context.Background()); err == nil {
				t.Fatalf("Start after a refused offer = nil, want error")
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if ok, b := udpSilent(t, p.conn); !ok {
				t.Fatalf("peer received %d bytes from a session that refused its offer", len(b))
			}
		})
	}
}

// TestAnswerRefusesSDP: descriptions that are not acceptable for reasons
// other than crypto.
func TestAnswerRefusesSDP(t *testing.T) {
	p := newRawPeer(t)
	good := p.offer(protoSAVP)
	tests := []struct {
		name  string
		offer string
	}{
		{"garbage", "hello"},
		{"no audio", strings.Replace(good, "m=audio", "m=video", 1)},
		{"no common codec", strings.Replace(strings.Replace(good, "RTP/SAVP 0 101", "RTP/SAVP 18 101", 1), "a=rtpmap:0 PCMU/8000", "a=rtpmap:18 G729/8000", 1)},
		{"g722 at 16 kHz only", strings.Replace(strings.Replace(good, "RTP/SAVP 0 101", "RTP/SAVP 9 101", 1), "a=rtpmap:0 PCMU/8000", "a=rtpmap:9 G722/16000", 1)},
		{"pcmu at 16 kHz", strings.Replace(good, "a=rtpmap:0 PCMU/8000", "a=rtpmap:0 PCMU/16000", 1)},
		{"hostname", strings.Replace(good, "c=IN IP4 127.0.0.1", "c=IN IP4 peer.example.com", 1)},
		{"multicast", strings.Replace(good, "c=IN IP4 127.0.0.1", "c=IN IP4 224.2.17.12/127", 1)},
		{"other family", strings.Replace(good, "c=IN IP4 127.0.0.1", "c=IN IP6 ::1", 1)},
		{"unspecified", strings.Replace(good, "c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0", 1)},
		{"no c=", strings.Replace(good, "c=IN IP4 127.0.0.1\r\n", "", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSession(t, testConfig(t, "b", SecuritySDES))
			if ans, err := s.Answer([]byte(tt.offer)); !errors.Is(err, ErrNotAcceptable) {
				t.Fatalf("Answer(%s) = %q, %v; want ErrNotAcceptable", tt.name, ans, err)
			}
		})
	}
}

// TestSetAnswerRefuses: the offerer checks the answer against what it
// offered; a refused answer leaves the session failed and silent.
func TestSetAnswerRefuses(t *testing.T) {
	sdesAnswer := func(port int, proto string, attrs ...string) string {
		return strings.Join(append([]string{"v=0", "o=peer 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
			fmt.Sprintf("m=audio %d %s 0", port, proto), "a=rtpmap:0 PCMU/8000", "a=sendrecv"}, attrs...), "\r\n") + "\r\n"
	}
	key30 := "inline:" + b64(30)
	fp := "a=fingerprint:sha-256 " + strings.Repeat("AB:", 31) + "AB"
	offered := policy.SRTPSuites()
	tests := []struct {
		name   string
		sec    Security
		answer func(a *Session, port int) string
	}{
		{"plain RTP/AVP", SecuritySDES, func(_ *Session, port int) string { return sdesAnswer(port, protoAVP) }},
		{"plain RTP/AVP to dtls", SecurityDTLS, func(_ *Session, port int) string { return sdesAnswer(port, protoAVP) }},
		{"SAVP without crypto", SecuritySDES, func(_ *Session, port int) string { return sdesAnswer(port, protoSAVP) }},
		{"unoffered tag", SecuritySDES, func(_ *Session, port int) string {
			return sdesAnswer(port, protoSAVP, "a=crypto:3 "+offered[0].SDESName+" inline:"+b64(offered[0].KeyLen+offered[0].SaltLen))
		}},
		{"unoffered suite under offered tag", SecuritySDES, func(_ *Session, port int) string {
			return sdesAnswer(port, protoSAVP, "a=crypto:1 AES_CM_128_HMAC_SHA1_32 "+key30)
		}},
		{"suite of tag 2 under tag 1", SecuritySDES, func(_ *Session, port int) string {
			return sdesAnswer(port, protoSAVP, "a=crypto:1 "+offered[1].SDESName+" inline:"+b64(offered[1].KeyLen+offered[1].SaltLen))
		}},
		{"two crypto lines", SecuritySDES, func(_ *Session, port int) string {
			l := "a=crypto:2 AES_CM_128_HMAC_SHA1_80 " + key30
			return sdesAnswer(port, protoSAVP, l, l)
		}},
		{"wrong key length", SecuritySDES, func(_ *Session, port int) string {
			return sdesAnswer(port, protoSAVP, "a=crypto:1 "+offered[0].SDESName+" inline:"+b64(offered[0].KeyLen+offered[0].SaltLen+2))
		}},
		{"reflected key", SecuritySDES, func(a *Session, port int) string {
			return sdesAnswer(port, protoSAVP, "a=crypto:"+a.pending.cryptos[1].cryptoLine(1))
		}},
		{"rejected stream", SecuritySDES, func(_ *Session, _ int) string {
			return sdesAnswer(0, protoSAVP, "a=crypto:2 AES_CM_128_HMAC_SHA1_80 "+key30)
		}},
		{"unoffered codec", SecuritySDES, func(_ *Session, port int) string {
			return strings.Replace(sdesAnswer(port, protoSAVP, "a=crypto:2 AES_CM_128_HMAC_SHA1_80 "+key30), " 0\r\na=rtpmap:0 PCMU/8000", " 18\r\na=rtpmap:18 G729/8000", 1)
		}},
		{"other proto", SecuritySDES, func(_ *Session, port int) string {
			return sdesAnswer(port, protoSAVPF, "a=crypto:2 AES_CM_128_HMAC_SHA1_80 "+key30)
		}},
		{"dtls without fingerprint", SecurityDTLS, func(_ *Session, port int) string {
			return sdesAnswer(port, protoDTLSSAVP, "a=setup:active")
		}},
		{"dtls sha-1 fingerprint", SecurityDTLS, func(_ *Session, port int) string {
			return sdesAnswer(port, protoDTLSSAVP, "a=fingerprint:sha-1 "+strings.Repeat("AB:", 19)+"AB", "a=setup:active")
		}},
		{"dtls actpass answer", SecurityDTLS, func(_ *Session, port int) string {
			return sdesAnswer(port, protoDTLSSAVP, fp, "a=setup:actpass")
		}},
		{"dtls answer with crypto", SecurityDTLS, func(_ *Session, port int) string {
			return sdesAnswer(port, protoSAVP, "a=crypto:1 AES_CM_128_HMAC_SHA1_80 "+key30)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			port := peer.LocalAddr().(*net.UDPAddr).Port
			a, err := NewSession(testConfig(t, "a", tt.sec))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.Offer(); err != nil {
				t.Fatal(err)
			}
			ans := tt.answer(a, port)
			if err := a.SetAnswer([]byte(ans)); !errors.Is(err, ErrNotAcceptable) {
				a.Close()
				t.Fatalf("SetAnswer(%s) = %v, want ErrNotAcceptable\n%s", tt.name, err, ans)
			}
			if err := a.Start(context.Background()); err == nil {
				t.Fatalf("Start after a refused answer = nil, want error")
			}
			if err := a.SendDTMF('1', 100*time.Millisecond); err == nil {
				t.Fatalf("SendDTMF after a refused answer = nil, want error")
			}
			a.SetSource(&toneSource{freq: 440})
			if err := a.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if ok, b := udpSilent(t, peer); !ok {
				t.Fatalf("the peer of a refused answer received a %d-byte datagram % x", len(b), b[:min(len(b), 16)])
			}
			if st := a.Stats(); st.PacketsSent != 0 || st.RTCPSent != 0 {
				t.Fatalf("Stats() after refused answer: %d rtp %d rtcp sent, want 0", st.PacketsSent, st.RTCPSent)
			}
		})
	}
}

// TestDTLSWrongFingerprint: the answer's fingerprint is not the peer's
// certificate. Start fails, no SRTP context exists, and the peer receives
// nothing but DTLS handshake records.
func TestDTLSWrongFingerprint(t *testing.T) {
	for _, passive := range []bool{false, true} {
		t.Run(fmt.Sprintf("offerer_client_%v", passive), func(t *testing.T) {
			t.Parallel()
			a := newTestSession(t, testConfig(t, "a", SecurityDTLS))
			b := newTestSession(t, testConfig(t, "b", SecurityDTLS))
			var edit func(string) string
			if passive {
				edit = func(o string) string { return replaceLine(o, "a=setup:", "a=setup:active") }
			}
			other, err := newDTLSIdentity()
			if err != nil {
				t.Fatal(err)
			}
			negotiate(t, a, b, edit, func(ans string) string {
				return replaceLine(ans, "a=fingerprint:", "a=fingerprint:"+other.fp.String())
			})
			a.SetSource(&toneSource{freq: 440})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- b.Start(ctx) }()
			err = a.Start(ctx)
			if !errors.Is(err, errFingerprint) {
				t.Fatalf("a.Start with a wrong fingerprint = %v, want errFingerprint", err)
			}
			// b's handshake ends with a's alert (or its own timeout).
			if err := <-errc; err == nil {
				// b verified a's genuine certificate, so it may have keys,
				// but a must not.
				t.Logf("b.Start succeeded; a refused")
			}
			if a.tx[compRTP].Load() != nil || a.rx[compRTP].Load() != nil {
				t.Fatalf("a has SRTP contexts after a failed fingerprint check")
			}
			if err := a.SendDTMF('1', 100*time.Millisecond); err == nil {
				t.Fatalf("SendDTMF after failed Start = nil, want error")
			}
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			if st := a.Stats(); st.PacketsSent != 0 || st.RTCPSent != 0 {
				t.Fatalf("a sent %d RTP %d RTCP packets after a failed fingerprint check", st.PacketsSent, st.RTCPSent)
			}
			if st := b.Stats(); st.PacketsReceived != 0 || st.AuthFailures != 0 || st.EarlyDropped != 0 || st.Malformed != 0 || st.RTCPDropped != 0 {
				t.Fatalf("b saw non-DTLS traffic from a: %+v", st)
			}
		})
	}
}

// TestReplayedPacketDropped: a captured SRTP packet sent again is dropped
// by the replay window and counted; the call goes on.
func TestReplayedPacketDropped(t *testing.T) {
	p := newRawPeer(t)
	s := newTestSession(t, testConfig(t, "b", SecuritySDES))
	p.connect(s)
	pkt := p.packet()
	p.send(pkt)
	waitFor(t, "first packet", func() bool { return s.Stats().PacketsReceived == 1 })
	p.send(pkt)
	waitFor(t, "replay counted", func() bool { return s.Stats().Replays == 1 })
	if st := s.Stats(); st.PacketsReceived != 1 || st.AuthFailures != 0 {
		t.Fatalf("after replay: received %d auth failures %d, want 1 and 0", st.PacketsReceived, st.AuthFailures)
	}
	p.send(p.packet())
	waitFor(t, "next packet after the replay", func() bool { return s.Stats().PacketsReceived == 2 })
	if st := s.Stats(); st.Replays != 1 {
		t.Fatalf("Replays = %d, want 1", st.Replays)
	}
}

// TestFlippedByteCountsAuthFailure: a packet with one bit changed, in the
// payload or the header, fails authentication, is counted and changes
// nothing: the genuine packet with the same sequence number still passes.
func TestFlippedByteCountsAuthFailure(t *testing.T) {
	p := newRawPeer(t)
	s := newTestSession(t, testConfig(t, "b", SecuritySDES))
	p.connect(s)
	for i, at := range []int{40, 5} { // a payload byte, a timestamp byte
		pkt := p.packet()
		bad := append([]byte(nil), pkt...)
		bad[at] ^= 0x01
		p.send(bad)
		waitFor(t, "auth failure counted", func() bool { return s.Stats().AuthFailures == uint64(i+1) })
		if got := s.Stats().PacketsReceived; got != uint64(i) {
			t.Fatalf("PacketsReceived = %d after a forged packet, want %d", got, i)
		}
		p.send(pkt)
		waitFor(t, "genuine packet after the forged one", func() bool { return s.Stats().PacketsReceived == uint64(i+1) })
	}
	if st := s.Stats(); st.Replays != 0 {
		t.Fatalf("Replays = %d, want 0", st.Replays)
	}
}

// TestUnauthenticatedDropped: plaintext RTP and RTCP (baresip sends an RTCP
// packet at start and an RTCP BYE in clear) and packets from an address the
// SDP does not name are dropped and counted; the call goes on.
func TestUnauthenticatedDropped(t *testing.T) {
	p := newRawPeer(t)
	s := newTestSession(t, testConfig(t, "b", SecuritySDES))
	p.connect(s)

	rr, err := rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: 1}, &rtcp.Goodbye{Sources: []uint32{1}}})
	if err != nil {
		t.Fatal(err)
	}
	p.send(rr)
	waitFor(t, "plaintext rtcp dropped", func() bool { return s.Stats().RTCPDropped == 1 })

	plain, err := (&rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 1, SequenceNumber: 7}, Payload: make([]byte, 160)}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p.send(plain)
	waitFor(t, "plaintext rtp dropped", func() bool { return s.Stats().AuthFailures == 1 })

	other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.WriteToUDPAddrPort(p.packet(), p.b); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "foreign source dropped", func() bool { return s.Stats().ForeignDropped == 1 })

	p.send(p.packet())
	waitFor(t, "genuine packet", func() bool { return s.Stats().PacketsReceived == 1 })
	if st := s.Stats(); st.Replays != 0 || st.RTCPReceived != 0 {
		t.Fatalf("Stats() = %+v", st)
	}
}

// TestReofferMustKeepSecurity: a re-offer that would change the negotiated
// security is refused and the call goes on as it was.
func TestReofferMustKeepSecurity(t *testing.T) {
	t.Run("sdes", func(t *testing.T) {
		t.Parallel()
		a, b := call(t, testConfig(t, "a", SecuritySDES), testConfig(t, "b", SecuritySDES), nil, nil)
		re, err := a.Reoffer(false)
		if err != nil {
			t.Fatal(err)
		}
		cm32 := "a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:" + b64(30)
		for name, edit := range map[string]func(string) string{
			"plain": func(o string) string {
				return replaceLine(replaceLine(o, "m=audio", strings.Replace(sdpLines(o, "m=audio")[0], protoSAVP, protoAVP, 1)), "a=crypto:", "")
			},
			"other suite": func(o string) string { return replaceLine(o, "a=crypto:", cm32) },
			"no crypto":   func(o string) string { return replaceLine(o, "a=crypto:", "") },
			"savpf":       func(o string) string { return strings.Replace(o, protoSAVP, protoSAVPF, 1) },
			"drops mux":   func(o string) string { return replaceLine(o, "a=rtcp-mux", "") },
		} {
			if ans, err := b.AnswerReoffer([]byte(edit(string(re)))); !errors.Is(err, ErrNotAcceptable) {
				t.Fatalf("AnswerReoffer(%s) = %q, %v; want ErrNotAcceptable", name, ans, err)
			}
		}
		toneBothWays(t, a, b)
	})
	t.Run("dtls", func(t *testing.T) {
		t.Parallel()
		a, b := call(t, testConfig(t, "a", SecurityDTLS), testConfig(t, "b", SecurityDTLS), nil, nil)
		re, err := a.Reoffer(false)
		if err != nil {
			t.Fatal(err)
		}
		other, err := newDTLSIdentity()
		if err != nil {
			t.Fatal(err)
		}
		for name, edit := range map[string]func(string) string{
			"plain":             func(o string) string { return strings.Replace(o, protoDTLSSAVP, protoAVP, 1) },
			"other fingerprint": func(o string) string { return replaceLine(o, "a=fingerprint:", "a=fingerprint:"+other.fp.String()) },
			"no fingerprint":    func(o string) string { return replaceLine(o, "a=fingerprint:", "") },
			// b is the DTLS client; an offerer going active would flip it.
			"role flip": func(o string) string { return replaceLine(o, "a=setup:", "a=setup:active") },
			"moves": func(o string) string {
				return strings.Replace(o, fmt.Sprintf(" %d ", a.local[compRTP].Port()), " 9 ", 1)
			},
		} {
			if ans, err := b.AnswerReoffer([]byte(edit(string(re)))); !errors.Is(err, ErrNotAcceptable) {
				t.Fatalf("AnswerReoffer(%s) = %q, %v; want ErrNotAcceptable", name, ans, err)
			}
		}
		// The same role stated explicitly keeps the association.
		if _, err := b.AnswerReoffer([]byte(replaceLine(string(re), "a=setup:", "a=setup:passive"))); err != nil {
			t.Fatalf("AnswerReoffer(setup:passive) = %v, want success", err)
		}
		toneBothWays(t, a, b)
	})
}

// TestBaresipStyleOffers: offers shaped like Debian's baresip 1.0 sends them
// are answered as the peer expects.
func TestBaresipStyleOffers(t *testing.T) {
	t.Run("sdes", func(t *testing.T) {
		p := newRawPeer(t)
		s := newTestSession(t, testConfig(t, "b", SecuritySDES))
		ans, err := s.Answer([]byte(baresipSDESOffer(int(p.addr().Port()), p.key.cryptoLine(1))))
		if err != nil {
			t.Fatalf("Answer(baresip SDES offer): %v", err)
		}
		if got := sdpLines(string(ans), "a=crypto:"); len(got) != 1 || !strings.HasPrefix(got[0], "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:") {
			t.Fatalf("answer crypto %q, want tag 1 AES_CM_128_HMAC_SHA1_80", got)
		}
		if len(sdpLines(string(ans), "a=rtcp-mux")) != 0 || len(s.RemoteAddrs()) != 2 || s.RemoteAddrs()[1].Port() != p.addr().Port()+1 {
			t.Fatalf("no rtcp-mux offered: answer must not mux and RTCP is RTP+1; RemoteAddrs() = %v", s.RemoteAddrs())
		}
	})
	t.Run("dtls", func(t *testing.T) {
		s := newTestSession(t, testConfig(t, "b", SecurityDTLS))
		ans, err := s.Answer([]byte(baresipDTLSOffer(40000, "sha-256 "+strings.Repeat("5A:", 31)+"5A")))
		if err != nil {
			t.Fatalf("Answer(baresip DTLS offer): %v", err)
		}
		for _, want := range []string{"m=audio " + fmt.Sprint(s.local[compRTP].Port()) + " UDP/TLS/RTP/SAVPF 0 101", "a=setup:active", "a=fingerprint:sha-256 "} {
			if !strings.Contains(string(ans), want) {
				t.Fatalf("answer lacks %q:\n%s", want, ans)
			}
		}
	})
}

// baresipSDESOffer is shaped like baresip 1.0's SDES offer: one
// AES_CM_128_HMAC_SHA1_80 line, no rtcp-mux, RTCP on RTP+1.
func baresipSDESOffer(port int, cryptoLine string) string {
	return fmt.Sprintf("v=0\r\no=- 1318447542 1967424364 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/SAVP 0 8 101\r\nb=AS:64\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"+
		"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=rtcp:%d\r\na=sendrecv\r\na=label:1\r\n"+
		"a=ssrc:2165328451 cname:sip:alice@127.0.0.1\r\na=crypto:%s\r\na=ptime:20\r\n", port, port+1, cryptoLine)
}

// baresipDTLSOffer is shaped like baresip's DTLS-SRTP offer: SAVPF, the
// fingerprint at session level, actpass, no rtcp-mux.
func baresipDTLSOffer(port int, fp string) string {
	return fmt.Sprintf("v=0\r\no=- 2084290396 3920582170 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"a=tool:baresip 1.0.0\r\na=fingerprint:%s\r\n"+
		"m=audio %d UDP/TLS/RTP/SAVPF 0 8 101\r\nb=AS:64\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"+
		"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=rtcp:%d\r\na=sendrecv\r\na=label:1\r\n"+
		"a=ssrc:845723102 cname:sip:alice@127.0.0.1\r\na=setup:actpass\r\na=ptime:20\r\n", fp, port, port+1)
}
