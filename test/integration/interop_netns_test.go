package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/hal/audio"
	"github.com/hardphone/hardphone/test"
)

const (
	toneOurs   = 440.0 // what hardphone plays
	toneTheirs = 880.0 // what the peer plays
)

func TestRegisterMutualTLS(t *testing.T) {
	e := newEnv(t)
	p := e.startPhone(t, phoneConf{user: "alice"}, nil)
	p.waitRegistered(t)
	reg := e.k.WaitRegistered(t, "alice", 5*time.Second)
	if !strings.Contains(reg.Socket, "tls:") {
		t.Errorf("binding socket = %q, want the TLS listener", reg.Socket)
	}
	st := p.acct.Status()
	if st.Granted <= 0 || st.Counters.Registrations < 1 {
		t.Errorf("status after register = %+v, want a granted expiry and a registration", st)
	}
	// Kamailio writes its SIP dump asynchronously: poll until the REGISTER
	// is in it, then check it carries RFC 5626's parameters.
	waitFor(t, 5*time.Second, func() bool { return strings.Contains(e.k.SIPDump(), "REGISTER sip:") })
	dump := e.k.SIPDump()
	for _, want := range []string{"+sip.instance=", "reg-id=1", "Supported: outbound"} {
		if !strings.Contains(dump, want) {
			t.Errorf("REGISTER lacks %q (RFC 5626)", want)
		}
	}
}

// interopCase is one direction and one keying mode against baresip.
type interopCase struct {
	name     string
	menc     string // baresip mediaenc
	security string // hardphone media_security
	outbound bool   // hardphone calls baresip
}

var interopCases = []interopCase{
	{"sdes/hardphone_calls_baresip", "srtp-mand", "sdes", true},
	{"sdes/baresip_calls_hardphone", "srtp-mand", "sdes", false},
	{"dtls/hardphone_calls_baresip", "dtls_srtp", "dtls", true},
	{"dtls/baresip_calls_hardphone", "dtls_srtp", "dtls", false},
}

func TestInteropBaresip(t *testing.T) {
	e := newEnv(t)
	for _, tc := range interopCases {
		t.Run(tc.name, func(t *testing.T) { runInterop(t, e, tc) })
	}
}

func runInterop(t *testing.T, e *env, tc interopCase) {
	dir := t.TempDir()
	ours := filepath.Join(dir, "ours.wav")
	theirs := filepath.Join(dir, "theirs.wav")
	test.WriteToneWAV(t, ours, toneOurs, 6*time.Second, 8000)
	test.WriteToneWAV(t, theirs, toneTheirs, 6*time.Second, 8000)
	recDir := filepath.Join(dir, "baresip-rec")
	_, _, combined := e.pki.Client("carol")
	b := test.StartBaresip(t, test.BaresipKamailio(e.k, "carol"), test.BaresipCertificate(combined),
		test.BaresipMediaEnc(tc.menc), test.BaresipAudioSource(theirs), test.BaresipRecordDir(recDir),
		test.BaresipAnswerMode("auto"))
	b.WaitRegistered(t, 10*time.Second)

	ourRec := filepath.Join(dir, "hardphone-rec.wav")
	sink, err := audio.CreateWAV(ourRec, 8000)
	if err != nil {
		t.Fatal(err)
	}
	inbound := func(c *sip.Call) sip.CallOptions {
		src, err := audio.OpenWAV(ours)
		if err != nil {
			t.Errorf("open wav: %v", err)
		}
		return sip.CallOptions{Source: src, Sink: sink}
	}
	p := e.startPhone(t, phoneConf{user: "alice", mediaSecurity: tc.security}, inbound)
	p.waitRegistered(t)
	lo, hi := b.RTPPorts()
	capture := test.StartCapture(t, "lo", fmt.Sprintf("udp and (portrange %d-%d or portrange %d-%d)", lo, hi+1,
		p.cfg.Media.PortMin, p.cfg.Media.PortMax))

	var call *sip.Call
	if tc.outbound {
		src, err := audio.OpenWAV(ours)
		if err != nil {
			t.Fatal(err)
		}
		call, err = p.acct.Dial(context.Background(), "sip:carol@"+e.k.IP(), sip.CallOptions{Source: src, Sink: sink})
		if err != nil {
			t.Fatalf("Dial: %v\n%s", err, e.k.SIPDump())
		}
		b.WaitEvent(t, "CALL_ESTABLISHED", 10*time.Second)
	} else {
		b.Dial(t, "sip:alice@"+e.k.IP())
		ev := p.waitEvent(t, sip.EventCallStarted, 15*time.Second)
		call = ev.Call
	}
	t.Logf("setup %v, suite %q", call.SetupTime(), call.Media().Stats().Suite)
	// Let audio flow: wait until both directions carried a few seconds.
	waitFor(t, 15*time.Second, func() bool {
		st := call.Media().Stats()
		return st.PacketsReceived >= 150 && st.PacketsSent >= 150
	})
	exerciseDTMFAndHold(t, b, call)
	call.Hangup(context.Background())
	b.WaitEvent(t, "CALL_CLOSED", 10*time.Second)
	// Every SDP body of the call, re-INVITEs included, kept SRTP. The dump
	// is written asynchronously: wait for the BYE to be in it.
	waitFor(t, 5*time.Second, func() bool { return strings.Contains(e.k.SIPDump(), "BYE sip:") })
	for _, l := range strings.Split(e.k.SIPDump(), "\n") {
		if strings.HasPrefix(l, "m=audio") && strings.Contains(l, " RTP/AVP") {
			t.Errorf("plain RTP media line in the call's signalling: %q", strings.TrimSpace(l))
		}
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	capture.Stop(t)

	st := call.Media().Stats()
	if st.Suite == "" {
		t.Errorf("stats.Suite empty, want an SRTP suite")
	}
	if st.AuthFailures > 5 {
		t.Errorf("auth failures = %d, want few (baresip's plain RTCP only)", st.AuthFailures)
	}
	// The tone each side played is in what the other side recorded.
	samples, rate, err := test.ReadWAV(ourRec)
	if err != nil {
		t.Fatal(err)
	}
	if r := test.DetectTone(samples, rate, toneTheirs); r < 0.5 {
		t.Errorf("hardphone recording: %v Hz energy ratio %.2f, want >= 0.5", toneTheirs, r)
	}
	recs := b.RecordedWAVs()
	if len(recs) == 0 {
		t.Fatalf("baresip recorded nothing")
	}
	found := false
	for _, f := range recs {
		s, r, err := test.ReadWAV(f)
		if err == nil && test.DetectTone(s, r, toneOurs) >= 0.5 {
			found = true
		}
	}
	if !found {
		t.Errorf("baresip recordings %v: no %v Hz tone", recs, toneOurs)
	}
	assertNoPlainRTP(t, capture.Packets(t), int(p.cfg.Media.PortMin), int(p.cfg.Media.PortMax))
}

// assertNoPlainRTP checks that no UDP packet from our RTP ports is plain RTP.
// SRTP keeps the 12-byte RTP header in clear, so the test is on the payload:
// a G.711 packet of ours is 172 bytes as plain RTP and 182+ as SRTP, and the
// payload of an SRTP packet does not decode as the tone we play.
func assertNoPlainRTP(t *testing.T, pkts []test.CapturedPacket, lo, hi int) {
	t.Helper()
	ours := 0
	for _, pk := range pkts {
		if int(pk.SrcPort) < lo || int(pk.SrcPort) > hi {
			continue
		}
		ours++
		pl := pk.Payload
		if len(pl) >= 12 && pl[0]>>6 == 2 {
			pt := pl[1] & 0x7f
			if (pt == 0 || pt == 8) && len(pl) == 172 {
				t.Errorf("plaintext-sized RTP packet from port %d: %d bytes", pk.SrcPort, len(pl))
				return
			}
			// RTCP (PT 200-204 in the second byte) must carry an SRTCP index.
			if pl[1] >= 200 && pl[1] <= 204 && len(pl) < 8+4+10 {
				t.Errorf("RTCP packet from port %d too short for SRTCP: %d bytes", pk.SrcPort, len(pl))
			}
		}
	}
	if ours < 100 {
		t.Errorf("captured %d packets from our RTP ports, want >= 100 (capture broken?)", ours)
	}
}

func waitFor(t testing.TB, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exerciseDTMFAndHold sends RFC 4733 digits both ways and holds the call
// from each side, checking audio flows again afterwards.
func exerciseDTMFAndHold(t *testing.T, b *test.Baresip, call *sip.Call) {
	t.Helper()
	ctx := context.Background()
	if err := call.Media().SendDTMF('5', 200*time.Millisecond); err != nil {
		t.Errorf("SendDTMF: %v", err)
	}
	b.WaitEventFunc(t, 5*time.Second, func(ev test.Event) bool {
		return ev.Type == "CALL_DTMF_START" && strings.Contains(ev.Param, "5")
	})
	b.Command(t, "sndcode", "7")
	select {
	case d := <-call.Media().DTMF():
		if d != '7' {
			t.Errorf("received DTMF %q, want '7'", d)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("no RFC 4733 digit received from baresip")
	}
	suite := call.Media().Stats().Suite
	for _, on := range []bool{true, false} {
		if err := call.Hold(ctx, on); err != nil {
			t.Fatalf("Hold(%v): %v", on, err)
		}
		if got := call.Media().Stats().Suite; got != suite {
			t.Errorf("suite after Hold(%v) = %q, want %q", on, got, suite)
		}
	}
	b.Command(t, "hold", "")
	waitFor(t, 5*time.Second, func() bool { return call.Status().Hold })
	b.Command(t, "resume", "")
	waitFor(t, 5*time.Second, func() bool { return !call.Status().Hold })
	before := call.Media().Stats().PacketsReceived
	waitFor(t, 5*time.Second, func() bool { return call.Media().Stats().PacketsReceived > before+25 })
}
