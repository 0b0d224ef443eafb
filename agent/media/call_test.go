package media

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/crypto/policy"
)

// toneBothWays plays 440 Hz from a and 660 Hz from b and checks each
// arrives, decoded, at the other side's sink.
func toneBothWays(t *testing.T, a, b *Session) {
	t.Helper()
	sinkA, sinkB := newCollectSink(20*frameSamples), newCollectSink(20*frameSamples)
	a.SetSink(sinkA)
	b.SetSink(sinkB)
	a.SetSource(&toneSource{freq: 440})
	b.SetSource(&toneSource{freq: 660})
	sb, sa := sinkB.wait(t, "a->b audio"), sinkA.wait(t, "b->a audio")
	for n, s := range map[string]*Session{"a": a, "b": b} {
		st := s.Stats()
		t.Logf("%s: concealed %d stretched %d compressed %d late %d delay %.1f ms target %.1f ms jitter %.2f ms resets %d",
			n, st.ConcealedFrames, st.Stretched, st.Compressed, st.LateDropped, st.PlayoutDelayMS, st.PlayoutTargetMS, st.JitterMS, st.StreamResets)
	}
	assertTone(t, "a->b", sb, 440)
	assertTone(t, "b->a", sa, 660)
}

func TestCallSDES(t *testing.T) {
	authTag := map[string]int{
		"AEAD_AES_128_GCM":        16,
		"AEAD_AES_256_GCM":        16,
		"AES_CM_128_HMAC_SHA1_80": 10,
		"AES_CM_128_HMAC_SHA1_32": 4,
	}
	for _, suite := range policy.AcceptedSRTPSuites() {
		t.Run(suite.SDESName, func(t *testing.T) {
			t.Parallel()
			cfgA := testConfig(t, "a", SecuritySDES)
			cfgA.offerSuites = []policy.SRTPSuite{suite}
			a, b := call(t, cfgA, testConfig(t, "b", SecuritySDES), nil, nil)
			toneBothWays(t, a, b)
			for name, s := range map[string]*Session{"a": a, "b": b} {
				st := s.Stats()
				if st.Suite != suite.SDESName || st.Security != SecuritySDES || st.Codec != "G722" || st.SampleRate != 16000 {
					t.Fatalf("%s Stats() suite %q security %v codec %q at %d Hz, want %s sdes G722 at 16000 Hz", name, st.Suite, st.Security, st.Codec, st.SampleRate, suite.SDESName)
				}
				// Every sent RTP packet is a 172-byte G.722 packet (160 octets
				// for 20 ms, like G.711) plus the tag.
				if want := uint64(172 + authTag[suite.SDESName]); st.PacketsSent == 0 || st.BytesSent != st.PacketsSent*want {
					t.Fatalf("%s sent %d bytes in %d packets, want %d per packet", name, st.BytesSent, st.PacketsSent, want)
				}
				if st.AuthFailures != 0 || st.Replays != 0 {
					t.Fatalf("%s Stats() auth failures %d replays %d, want 0", name, st.AuthFailures, st.Replays)
				}
			}
		})
	}
}

// TestSDESAnswererPrefersPolicyOrder: the answerer takes the suite our
// policy prefers, not the offerer's first line.
func TestSDESAnswererPrefersPolicyOrder(t *testing.T) {
	cfgA := testConfig(t, "a", SecuritySDES)
	acc := policy.AcceptedSRTPSuites()
	// Offer the least preferred first.
	cfgA.offerSuites = []policy.SRTPSuite{acc[len(acc)-1], acc[1], acc[0]}
	a, b := newTestSession(t, cfgA), newTestSession(t, testConfig(t, "b", SecuritySDES))
	offer, err := a.Offer()
	if err != nil {
		t.Fatal(err)
	}
	answer, err := b.Answer(offer)
	if err != nil {
		t.Fatalf("Answer: %v", err)
	}
	lines := sdpLines(string(answer), "a=crypto:")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "a=crypto:3 "+acc[0].SDESName+" inline:") {
		t.Fatalf("answer crypto %q, want tag 3 with %s", lines, acc[0].SDESName)
	}
}

func TestCallDTLS(t *testing.T) {
	tests := []struct {
		name       string
		offerEdit  func(string) string
		aClient    bool
		wantMux    bool
		answerSets string
	}{
		// RFC 5763 §5: answerer active, offerer (a) is the DTLS server.
		{"answerer_active", nil, false, true, "a=setup:active"},
		// An offer of setup:active makes b passive and a the client.
		{"answerer_passive", func(o string) string { return replaceLine(o, "a=setup:", "a=setup:active") }, true, true, "a=setup:passive"},
		// baresip style: no rtcp-mux, so a second association on the RTCP ports.
		{"no_rtcp_mux", func(o string) string { return replaceLine(o, "a=rtcp-mux", "") }, false, false, "a=setup:active"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newTestSession(t, testConfig(t, "a", SecurityDTLS))
			b := newTestSession(t, testConfig(t, "b", SecurityDTLS))
			var answer string
			negotiate(t, a, b, tt.offerEdit, func(s string) string { answer = s; return s })
			if got := sdpLines(answer, "a=setup:"); len(got) != 1 || got[0] != tt.answerSets {
				t.Fatalf("answer setup %q, want %s", got, tt.answerSets)
			}
			if a.neg.dtlsClient != tt.aClient || b.neg.dtlsClient == tt.aClient {
				t.Fatalf("roles: a client %v, b client %v; want a client %v", a.neg.dtlsClient, b.neg.dtlsClient, tt.aClient)
			}
			startBoth(t, a, b)
			toneBothWays(t, a, b)
			for name, s := range map[string]*Session{"a": a, "b": b} {
				st := s.Stats()
				if st.Security != SecurityDTLS || !strings.HasPrefix(st.Suite, "SRTP_") {
					t.Fatalf("%s Stats() security %v suite %q, want dtls-srtp with an SRTP_ profile", name, st.Security, st.Suite)
				}
				if n := len(s.LocalAddrs()); (n == 1) != tt.wantMux {
					t.Fatalf("%s LocalAddrs() = %v with mux %v", name, s.LocalAddrs(), tt.wantMux)
				}
			}
			// SRTCP flows too: over the RTP ports with mux, over the second
			// association without.
			waitFor(t, "srtcp both ways", func() bool {
				return a.Stats().RTCPReceived > 0 && b.Stats().RTCPReceived > 0
			})
		})
	}
}

// TestDTLSEarlyClientHello: the answerer is active and starts its
// handshake before the offerer has the answer (the 200 OK is still on its
// way). The ClientHello is kept and the handshake completes, verified,
// once the answer is in.
func TestDTLSEarlyClientHello(t *testing.T) {
	a := newTestSession(t, testConfig(t, "a", SecurityDTLS))
	b := newTestSession(t, testConfig(t, "b", SecurityDTLS))
	offer, err := a.Offer()
	if err != nil {
		t.Fatal(err)
	}
	answer, err := b.Answer(offer)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- b.Start(t.Context()) }()
	waitFor(t, "ClientHello queued before the answer", func() bool { return a.st.dtlsQueued.Load() > 0 })
	if err := a.SetAnswer(answer); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(t.Context()); err != nil {
		t.Fatalf("a.Start: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("b.Start: %v", err)
	}
	toneBothWays(t, a, b)
}

func TestDTMFBothWays(t *testing.T) {
	for _, sec := range []Security{SecuritySDES, SecurityDTLS} {
		t.Run(sec.String(), func(t *testing.T) {
			t.Parallel()
			a, b := call(t, testConfig(t, "a", sec), testConfig(t, "b", sec), nil, nil)
			for _, d := range "1#" {
				if err := a.SendDTMF(d, 60*time.Millisecond); err != nil {
					t.Fatalf("a.SendDTMF(%q): %v", d, err)
				}
			}
			if err := b.SendDTMF('9', 100*time.Millisecond); err != nil {
				t.Fatalf("b.SendDTMF: %v", err)
			}
			// Each digit arrives once, in order, although its end packet is
			// sent three times.
			for _, want := range "1#" {
				if got := recvDigit(t, b); got != want {
					t.Fatalf("b got digit %q, want %q", got, want)
				}
			}
			if got := recvDigit(t, a); got != '9' {
				t.Fatalf("a got digit %q, want '9'", got)
			}
			if err := a.SendDTMF('x', 60*time.Millisecond); err == nil {
				t.Fatalf("SendDTMF('x') = nil, want error")
			}
			if err := a.SendDTMF('1', time.Millisecond); err == nil {
				t.Fatalf("SendDTMF(1 ms) = nil, want error")
			}
			waitFor(t, "dtmf counters", func() bool { return a.Stats().DTMFSent == 2 && b.Stats().DTMFReceived == 2 })
			// One more digit proves no duplicate of '#' was queued behind it.
			if err := a.SendDTMF('5', 60*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			if got := recvDigit(t, b); got != '5' {
				t.Fatalf("b got digit %q after '#', want '5' (a duplicate?)", got)
			}
		})
	}
}

func recvDigit(t *testing.T, s *Session) rune {
	t.Helper()
	select {
	case d := <-s.DTMF():
		return d
	case <-time.After(10 * time.Second):
		t.Fatalf("no DTMF digit arrived")
	}
	return 0
}

// TestHoldUnholdKeepsSecurity: hold and unhold re-offers keep the
// transport, the SDES suite, tag and keys, or the DTLS fingerprint and
// roles, and audio flows again after unhold (diago re-offered plain RTP/AVP
// for DTLS calls).
func TestHoldUnholdKeepsSecurity(t *testing.T) {
	for _, sec := range []Security{SecuritySDES, SecurityDTLS} {
		t.Run(sec.String(), func(t *testing.T) {
			t.Parallel()
			a := newTestSession(t, testConfig(t, "a", sec))
			b := newTestSession(t, testConfig(t, "b", sec))
			var offer1, answer1 string
			negotiate(t, a, b, func(s string) string { offer1 = s; return s }, func(s string) string { answer1 = s; return s })
			startBoth(t, a, b)
			toneBothWays(t, a, b)

			hold, err := a.Reoffer(true)
			if err != nil {
				t.Fatalf("Reoffer(hold): %v", err)
			}
			checkKept(t, "hold offer", sec, offer1, string(hold), a, true)
			if got := sdpLines(string(hold), "a=sendonly"); len(got) != 1 {
				t.Fatalf("hold offer has no a=sendonly:\n%s", hold)
			}
			holdAns, err := b.AnswerReoffer(hold)
			if err != nil {
				t.Fatalf("AnswerReoffer(hold): %v", err)
			}
			checkKept(t, "hold answer", sec, answer1, string(holdAns), b, false)
			if got := sdpLines(string(holdAns), "a=recvonly"); len(got) != 1 {
				t.Fatalf("hold answer is not recvonly:\n%s", holdAns)
			}
			if err := a.SetAnswer(holdAns); err != nil {
				t.Fatalf("SetAnswer(hold): %v", err)
			}
			if a.Stats().Direction != "sendonly" || b.Stats().Direction != "recvonly" {
				t.Fatalf("directions a %s b %s, want sendonly recvonly", a.Stats().Direction, b.Stats().Direction)
			}
			if err := b.SendDTMF('1', 60*time.Millisecond); err == nil {
				t.Fatalf("SendDTMF while held = nil, want error")
			}

			unhold, err := a.Reoffer(false)
			if err != nil {
				t.Fatalf("Reoffer(unhold): %v", err)
			}
			checkKept(t, "unhold offer", sec, offer1, string(unhold), a, true)
			unholdAns, err := b.AnswerReoffer(unhold)
			if err != nil {
				t.Fatalf("AnswerReoffer(unhold): %v", err)
			}
			checkKept(t, "unhold answer", sec, answer1, string(unholdAns), b, false)
			if err := a.SetAnswer(unholdAns); err != nil {
				t.Fatalf("SetAnswer(unhold): %v", err)
			}
			if a.Stats().Direction != "sendrecv" || b.Stats().Direction != "sendrecv" {
				t.Fatalf("directions a %s b %s, want sendrecv", a.Stats().Direction, b.Stats().Direction)
			}
			toneBothWays(t, a, b)
			if st := b.Stats(); st.AuthFailures != 0 || st.Replays != 0 {
				t.Fatalf("after unhold b auth failures %d replays %d", st.AuthFailures, st.Replays)
			}
			if v1, v2 := sdpLines(offer1, "o=")[0], sdpLines(string(unhold), "o=")[0]; v1 == v2 {
				t.Fatalf("o= line unchanged across re-offers: %s", v1)
			}
		})
	}
}

// checkKept compares a re-offer or its answer with the first exchange.
func checkKept(t *testing.T, what string, sec Security, first, again string, s *Session, offerer bool) {
	t.Helper()
	m1, m2 := sdpLines(first, "m=audio")[0], sdpLines(again, "m=audio")
	if len(m2) != 1 || strings.Fields(m1)[2] != strings.Fields(m2[0])[2] {
		t.Fatalf("%s: m= %q, first was %q", what, m2, m1)
	}
	switch sec {
	case SecuritySDES:
		got := sdpLines(again, "a=crypto:")
		want := s.neg.localKey.cryptoLine(s.neg.tag)
		if len(got) != 1 || got[0] != "a=crypto:"+want {
			t.Fatalf("%s: crypto %q, want the negotiated line %q", what, got, want)
		}
		if !offerer && !strings.Contains(first, got[0]) {
			t.Fatalf("%s: crypto %q differs from the first answer", what, got[0])
		}
	case SecurityDTLS:
		if f1, f2 := sdpLines(first, "a=fingerprint:"), sdpLines(again, "a=fingerprint:"); len(f2) != 1 || f1[0] != f2[0] {
			t.Fatalf("%s: fingerprint %q, first was %q", what, f2, f1)
		}
		want := "a=setup:actpass"
		if !offerer {
			want = sdpLines(first, "a=setup:")[0]
		}
		if got := sdpLines(again, "a=setup:"); len(got) != 1 || got[0] != want {
			t.Fatalf("%s: setup %q, want %s", what, got, want)
		}
	}
}

func TestStatsJSON(t *testing.T) {
	a, _ := call(t, testConfig(t, "a", SecuritySDES), testConfig(t, "b", SecuritySDES), nil, nil)
	b, err := json.Marshal(a.Stats())
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"security":"sdes"`, `"suite":"` + policy.SRTPSuites()[0].SDESName + `"`, `"auth_failures":0`, `"replays":0`, `"packets_sent":`, `"rtcp_received":`} {
		if !strings.Contains(string(b), key) {
			t.Fatalf("Stats JSON %s lacks %s", b, key)
		}
	}
}
