package media

import (
	"bytes"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/crypto/policy"
)

// fuzzCaps are fixed local capabilities for the pure offer/answer code.
func fuzzCaps(t testing.TB, sec Security) *localCaps {
	keys := map[string]sdesKey{}
	for _, s := range policy.AcceptedSRTPSuites() {
		k, err := newSDESKey(s)
		if err != nil {
			t.Fatal(err)
		}
		keys[s.SDESName] = k
	}
	id, err := newDTLSIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return &localCaps{
		security: sec, addr: loopback, rtpPort: 30000, codecs: []Codec{PCMU, PCMA}, dtmfPT: 101,
		offerSuites: policy.SRTPSuites(),
		key:         func(s policy.SRTPSuite) (sdesKey, error) { return keys[s.SDESName], nil },
		fp:          id.fp,
	}
}

// sdpSeeds are real-world shaped bodies: baresip's SDES and DTLS offers (as
// captured from Debian's baresip 1.0), our own offers, the RFC 4566 example.
func sdpSeeds(t testing.TB) []string {
	seeds := []string{
		baresipSDESOffer(40000, "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"),
		baresipDTLSOffer(40002, "sha-256 "+strings.Repeat("5A:", 31)+"5A"),
		rfc4566Example,
		"v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 4000 RTP/AVP 0 8\n",
		"v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=audio 4000 RTP/SAVPF 8\r\na=crypto:9 AEAD_AES_128_GCM inline:" + b64(28) + "\r\nm=video 0 RTP/SAVPF 96\r\n",
	}
	for _, sec := range []Security{SecuritySDES, SecurityDTLS} {
		c := fuzzCaps(t, sec)
		m, _, err := buildOffer(c, dirSendRecv, nil)
		if err != nil {
			t.Fatal(err)
		}
		sd := &sdpSession{Origin: sdpOrigin{"hardphone", "1", "1", "IN", "IP4", "127.0.0.1"}, Name: "hardphone",
			Conn: &sdpConn{"IN", "IP4", "127.0.0.1"}, Other: []sdpLine{{'t', "0 0"}}, Media: []sdpMedia{m}}
		seeds = append(seeds, string(sd.marshal()))
	}
	return seeds
}

// FuzzParseSDP: parsing never panics, and whatever parses survives a
// marshal/parse round trip unchanged.
//
//fuzz:budget 50000
func FuzzParseSDP(f *testing.F) {
	for _, s := range sdpSeeds(f) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sd, err := parseSDP(b)
		if err != nil {
			if !errors.Is(err, errSDPSyntax) {
				t.Fatalf("parseSDP error %v does not wrap errSDPSyntax", err)
			}
			return
		}
		out := sd.marshal()
		again, err := parseSDP(out)
		if err != nil {
			t.Fatalf("parseSDP(marshal(x)) = %v\n%q", err, out)
		}
		if !reflect.DeepEqual(sd, again) {
			t.Fatalf("round trip changed the description:\n%+v\n%+v", sd, again)
		}
		if string(again.marshal()) != string(out) {
			t.Fatalf("marshal is not stable")
		}
	})
}

// FuzzSDESCrypto: a=crypto parsing never panics, round-trips, and the
// policy oracle holds for every accepted line: a suite the policy accepts
// and a key||salt of exactly its length.
//
//fuzz:budget 100000
func FuzzSDESCrypto(f *testing.F) {
	for _, s := range []string{
		rfc4568Offer, rfc4568Answer,
		"1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
		"2 AEAD_AES_128_GCM inline:" + b64(28),
		"3 AEAD_AES_256_GCM inline:" + b64(44) + " WSH=128",
		"4 AES_CM_128_HMAC_SHA1_32 inline:" + b64(30) + "|2147483648|7:2 KDR=0",
		"5 NULL_HMAC_SHA1_80 inline:" + b64(30) + " UNENCRYPTED_SRTP",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		c, err := parseCrypto(v)
		if err != nil {
			return
		}
		again, err := parseCrypto(c.format())
		if err != nil {
			t.Fatalf("parseCrypto(format(x)) = %v for %q", err, c.format())
		}
		if !reflect.DeepEqual(c, again) {
			t.Fatalf("round trip changed the line:\n%+v\n%+v", c, again)
		}
		k, err := acceptCrypto(c)
		if err != nil {
			return
		}
		s, err := policy.SRTPSuiteBySDESName(c.Suite)
		if err != nil || s.SDESName != k.Suite.SDESName {
			t.Fatalf("accepted suite %q the policy refuses: %v", c.Suite, err)
		}
		if len(k.Key) != s.KeyLen || len(k.Salt) != s.SaltLen || len(c.Keys) != 1 {
			t.Fatalf("accepted %s with key %d salt %d in %d key-params", s.SDESName, len(k.Key), len(k.Salt), len(c.Keys))
		}
		for _, p := range c.SessionParams {
			if strings.HasPrefix(p, "UNENCRYPTED") || strings.HasPrefix(p, "UNAUTHENTICATED") {
				t.Fatalf("accepted session parameter %q", p)
			}
		}
	})
}

// FuzzAnswerOffer runs the answerer on arbitrary offers. Oracle: an
// accepted offer always yields SRTP (never RTP/AVP), one m= line per
// offered one, and the crypto the policy allows.
//
//fuzz:budget 120000
func FuzzAnswerOffer(f *testing.F) {
	for _, s := range sdpSeeds(f) {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	caps := map[bool]*localCaps{false: fuzzCaps(f, SecuritySDES), true: fuzzCaps(f, SecurityDTLS)}
	f.Fuzz(func(t *testing.T, b []byte, dtls bool) {
		sd, err := parseSDP(b)
		if err != nil {
			return
		}
		c := caps[dtls]
		p, media, err := answerOffer(sd, c, nil, nil, false)
		if err != nil {
			if !errors.Is(err, ErrNotAcceptable) {
				t.Fatalf("answerOffer error %v does not wrap ErrNotAcceptable", err)
			}
			return
		}
		if checkProto(c.security, p.proto) != nil || len(media) != len(sd.Media) {
			t.Fatalf("accepted proto %s with %d of %d m= lines", p.proto, len(media), len(sd.Media))
		}
		var chosen *sdpMedia
		for i := range media {
			if media[i].Port != 0 {
				if chosen != nil {
					t.Fatalf("answer accepts two streams")
				}
				chosen = &media[i]
			}
		}
		if chosen == nil || chosen.Proto != p.proto {
			t.Fatalf("answer has no accepted stream in %s", p.proto)
		}
		switch c.security {
		case SecuritySDES:
			lines := attrValues(chosen.Attrs, "crypto")
			if len(lines) != 1 || p.remoteKey.Suite.SDESName == "" || p.localKey.Suite.SDESName != p.remoteKey.Suite.SDESName {
				t.Fatalf("sdes answer crypto %q for suite %q", lines, p.remoteKey.Suite.SDESName)
			}
		case SecurityDTLS:
			if len(p.fps) == 0 || len(attrValues(chosen.Attrs, "fingerprint")) != 1 {
				t.Fatalf("dtls answer without fingerprints")
			}
			if s, _ := findAttr(chosen.Attrs, "setup"); s != "active" && s != "passive" {
				t.Fatalf("dtls answer setup %q", s)
			}
		}
		// The answer we would send parses.
		out := &sdpSession{Origin: sdpOrigin{"hardphone", "1", "1", "IN", "IP4", "127.0.0.1"}, Name: "-", Media: media}
		if _, err := parseSDP(out.marshal()); err != nil {
			t.Fatalf("our answer does not parse: %v\n%s", err, out.marshal())
		}
	})
}

// FuzzPlayout drives the jitter buffer and the player with packets whose
// every header field, payload length and arrival time the input chooses
// (a hostile peer controls all of them once it holds the SRTP key), mixed
// with playout ticks. It asserts that nothing panics, the buffer never holds
// more than maxJBPackets, the player's fifo stays bounded, and every tick
// plays exactly one frame at the codec's rate.
//
//fuzz:budget 15000
func FuzzPlayout(f *testing.F) {
	// Seeds: an in-order stream, a reordered one, a codec switch, a wrap.
	in := func(evs ...[]byte) []byte { return bytes.Join(evs, nil) }
	pkt := func(seq, ts uint16, codec, n, dt byte) []byte {
		return []byte{0, byte(seq >> 8), byte(seq), byte(ts >> 8), byte(ts), codec, n, dt}
	}
	tick := []byte{1, 0, 0, 0, 0, 0, 0, 160}
	f.Add(in(pkt(1, 0, 0, 160, 0), tick, pkt(2, 160, 0, 160, 160), tick, tick))
	f.Add(in(pkt(1, 0, 0, 160, 0), pkt(3, 320, 0, 160, 10), pkt(2, 160, 0, 160, 10), tick, tick, tick))
	f.Add(in(pkt(1, 0, 9, 160, 0), tick, pkt(2, 160, 8, 160, 160), tick, pkt(3, 320, 9, 80, 20), tick))
	f.Add(in(pkt(65535, 65376, 0, 160, 0), pkt(0, 0, 0, 160, 160), tick, tick))
	f.Fuzz(runPlayout)
}

// runPlayout is FuzzPlayout's body. It takes at most maxPlayoutEvents
// events: longer inputs explore nothing new and only slow the fuzzer.
func runPlayout(t *testing.T, data []byte) {
	const maxPlayoutEvents = 128
	data = data[:min(len(data), 8*maxPlayoutEvents)]
	log := slog.New(slog.DiscardHandler)
	{
		s := &Session{rl: newRateLimit(log, time.Hour), recvLevel: newLevelMeter()}
		sink := &frameCounter{}
		s.sink.Store(&sinkBox{sink: sink})
		p := &player{s: s, jb: &s.jb}
		payload := make([]byte, 256)
		var now int64
		ticks := 0
		for len(data) >= 8 {
			ev := data[:8]
			data = data[8:]
			now += int64(ev[7])
			if ev[0]%2 == 1 {
				p.tick(now)
				ticks++
				if want := frameMillis * p.rate() / 1000; len(p.frame) != want {
					t.Fatalf("tick played %d samples, want %d", len(p.frame), want)
				}
				continue
			}
			codec := []Codec{PCMU, PCMA, G722}[int(ev[5])%3]
			s.jb.push(now, uint32(ev[0]>>1), uint16(ev[1])<<8|uint16(ev[2]), uint32(ev[3])<<8|uint32(ev[4]), codec, payload[:ev[6]])
			if len(s.jb.pkts) > maxJBPackets {
				t.Fatalf("buffer holds %d packets, want at most %d", len(s.jb.pkts), maxJBPackets)
			}
			// Two frames are decoded at most per tick, each packet at most 255
			// octets (510 samples of G.722) beyond them.
			if len(p.fifo) > 2*320+2*255 {
				t.Fatalf("player fifo holds %d samples", len(p.fifo))
			}
		}
		if sink.count() != ticks {
			t.Fatalf("sink got %d frames for %d ticks", sink.count(), ticks)
		}
	}
}
