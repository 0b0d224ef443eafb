package integration

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/test"
)

// TestKeepaliveAndFlowRecovery: RFC 5626 CRLF pings are answered by
// Kamailio's pongs; when the registrar dies and comes back, the agent sees
// the flow fail and registers again over a new flow.
func TestKeepaliveAndFlowRecovery(t *testing.T) {
	dir := t.TempDir()
	pki := test.NewPKI(t, filepath.Join(dir, "pki"))
	k1 := test.StartKamailio(t, test.KamailioPKI(pki), test.KamailioUsers(users))
	e := &env{k: k1, pki: pki, dir: dir}
	p := e.startPhone(t, phoneConf{user: "alice", extra: "keepalive = \"1s\"\n"}, nil)
	p.waitRegistered(t)
	waitFor(t, 10*time.Second, func() bool { return p.acct.Status().Counters.KeepalivesSent >= 3 })
	if st := p.acct.Status(); st.Counters.FlowFailures != 0 || !st.Registered {
		t.Fatalf("after 3 pings: %+v, want registered with no flow failure (pongs lost?)", st)
	}

	// The registrar dies: kill its process group (the TLS workers hold the
	// connection), then start a new one on the same port.
	if err := syscall.Kill(-k1.PID(), syscall.SIGKILL); err != nil {
		t.Fatalf("kill kamailio: %v", err)
	}
	waitFor(t, 10*time.Second, func() bool { return p.acct.Status().Counters.FlowFailures >= 1 })
	k2 := test.StartKamailio(t, test.KamailioPKI(pki), test.KamailioUsers(users))
	k2.WaitRegistered(t, "alice", 15*time.Second)
	waitFor(t, 5*time.Second, func() bool { return p.acct.Registered() })
	st := p.acct.Status()
	t.Logf("recovered: registrations=%d flow_failures=%d register_failures=%d", st.Counters.Registrations,
		st.Counters.FlowFailures, st.Counters.RegisterFailures)
	if st.Counters.Registrations < 2 {
		t.Errorf("registrations = %d, want >= 2", st.Counters.Registrations)
	}
}

// TestManualAnswer: answer = "manual" rings until told to answer.
func TestManualAnswer(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	tone := filepath.Join(dir, "tone.wav")
	test.WriteToneWAV(t, tone, toneTheirs, 30*time.Second, 8000)
	_, _, pem := e.pki.Client("carol")
	b := test.StartBaresip(t, test.BaresipKamailio(e.k, "carol"), test.BaresipCertificate(pem),
		test.BaresipMediaEnc("srtp-mand"), test.BaresipAudioSource(tone))
	b.WaitRegistered(t, 10*time.Second)
	p := e.startPhone(t, phoneConf{user: "alice", answer: "manual"}, nil)
	p.waitRegistered(t)
	b.Dial(t, "sip:alice@"+e.k.IP())
	ev := p.waitEvent(t, sip.EventIncoming, 10*time.Second)
	if got := ev.Call.Status().State; got != "ringing" {
		t.Fatalf("state = %s, want ringing", got)
	}
	b.WaitEvent(t, "CALL_RINGING", 5*time.Second)
	if err := ev.Call.Answer(); err != nil {
		t.Fatalf("Answer: %v", err)
	}
	p.waitEvent(t, sip.EventCallStarted, 10*time.Second)
	b.WaitEvent(t, "CALL_ESTABLISHED", 5*time.Second)
	waitFor(t, 5*time.Second, func() bool { return ev.Call.Media().Stats().PacketsReceived > 25 })
	b.Hangup(t)
	select {
	case <-ev.Call.Done():
	case <-time.After(5 * time.Second):
		t.Fatalf("call did not end after the peer's BYE")
	}
	if r := ev.Call.EndReason(); r != "remote hangup" {
		t.Errorf("end reason = %q, want remote hangup", r)
	}
	if _, err := p.acct.Dial(context.Background(), "sip:nobody@"+e.k.IP(), sip.CallOptions{}); err == nil {
		t.Errorf("Dial(unregistered user) = nil error, want a 404 error")
	}
}

// TestShutdownEndsCalls: an agent that stops hangs its calls up (BYE), so
// no media and no firewall pinhole outlives it.
func TestShutdownEndsCalls(t *testing.T) {
	e := newEnv(t)
	tone := filepath.Join(t.TempDir(), "tone.wav")
	test.WriteToneWAV(t, tone, toneTheirs, 30*time.Second, 8000)
	_, _, pem := e.pki.Client("carol")
	b := test.StartBaresip(t, test.BaresipKamailio(e.k, "carol"), test.BaresipCertificate(pem),
		test.BaresipMediaEnc("srtp-mand"), test.BaresipAudioSource(tone), test.BaresipAnswerMode("auto"))
	b.WaitRegistered(t, 10*time.Second)
	p := e.startPhone(t, phoneConf{user: "alice"}, nil)
	p.waitRegistered(t)
	c, err := p.acct.Dial(context.Background(), "sip:carol@"+e.k.IP(), sip.CallOptions{})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	b.WaitEvent(t, "CALL_ESTABLISHED", 5*time.Second)
	p.cancel()
	<-p.done
	select {
	case <-c.Done():
	default:
		t.Fatalf("call still up after the agent stopped")
	}
	if r := c.EndReason(); r != "agent stopping" {
		t.Errorf("end reason = %q, want agent stopping", r)
	}
	b.WaitEvent(t, "CALL_CLOSED", 5*time.Second)
}
