package integration

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/agent/control"
)

// TestTollFraudGuard: an account's dialling policy refuses premium-rate
// and international numbers, counts the calls it lets through against the
// hourly cap across a restart of the agent, and every refusal is a
// security event in the signed journal. A SIP scanner probing a plain
// listener is refused and journaled as one.
func TestTollFraudGuard(t *testing.T) {
	e := newEnv(t)
	path := e.tpmPhoneConf(t, phoneConf{user: "alice",
		top:   `listen = ["udp:127.0.0.1:5092"]`,
		extra: "\n[account.dialing]\nhome_country = \"+49\"\nmax_per_hour = 2\n"})
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	agentProc := startAgentProcess(t, "--config", path)
	e.k.WaitRegistered(t, "alice", 10*time.Second)
	c := control.NewClient(cfg.ControlSocket)
	dial := func(target string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cs, err := c.Dial(ctx, "", target)
		if err == nil {
			_, _ = c.Call(ctx, control.CmdCallHangup, "", cs.ID)
		}
		return err
	}
	for _, tc := range []struct{ target, why string }{
		{"+49 900 1234567", "premium-rate"},
		{"sip:%2B499001234567@" + e.k.IP(), "premium-rate"}, // an escaped '+' hides nothing
		{"0044201234567", "international"},
		{"sip:+12025550123@" + e.k.IP() + ";user=phone", "international"},
	} {
		err := dial(tc.target)
		if err == nil || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("dial %s = %v, want refused as %s", tc.target, err, tc.why)
		}
	}
	// National numbers go through (Kamailio knows no such user: the call
	// fails there, but it was placed, and it counts).
	for i := range 2 {
		if err := dial("030 1234567"); err != nil && strings.Contains(err.Error(), "dialling policy") {
			t.Fatalf("national call %d refused by the policy: %v", i+1, err)
		}
	}
	if err := dial("0301234567"); err == nil || !strings.Contains(err.Error(), "last hour") {
		t.Fatalf("3rd call in the hour = %v, want refused at the cap", err)
	}
	// The count survives a restart.
	if err := agentProc.stop(t); err != nil {
		t.Logf("agent stop: %v", err)
	}
	startAgentProcess(t, "--config", path)
	e.k.WaitRegistered(t, "alice", 10*time.Second)
	waitFor(t, 10*time.Second, func() bool { _, err := c.Status(context.Background()); return err == nil })
	if err := dial("0301234567"); err == nil || !strings.Contains(err.Error(), "last hour") {
		t.Fatalf("call after a restart = %v, want still refused at the cap", err)
	}

	// A scanner on the plain listener.
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5092})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	la := conn.LocalAddr().String()
	probe := "OPTIONS sip:100@127.0.0.1:5092 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + la + ";branch=z9hG4bK-scan1;rport\r\n" +
		"From: \"sipvicious\"<sip:100@1.1.1.1>;tag=6331\r\nTo: \"sipvicious\"<sip:100@1.1.1.1>\r\n" +
		"Call-ID: 4815162342\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nUser-Agent: friendly-scanner\r\n" +
		"Contact: <sip:100@" + la + ">\r\nAccept: application/sdp\r\nContent-Length: 0\r\n\r\n"
	if _, err := conn.Write([]byte(probe)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := conn.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "SIP/2.0 403") {
		t.Errorf("scanner's OPTIONS answered %q, %v; want 403", buf[:n], err)
	}

	hp := hardphoneBinary(t)
	var listed string
	waitFor(t, 10*time.Second, func() bool {
		b, _ := exec.Command(hp, "events", "--config", path, "--json").CombinedOutput()
		listed = string(b)
		return strings.Contains(listed, `"kind":"sip.scanner"`) && strings.Count(listed, `"kind":"sip.dial_refused"`) >= 6
	})
	for _, want := range []string{`"kind":"sip.scanner"`, `"kind":"sip.dial_refused"`, "premium-rate", "international", "last hour"} {
		if !strings.Contains(listed, want) {
			t.Errorf("journal lacks %s:\n%s", want, listed)
		}
	}
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := st.Accounts[0].Counters.DialRefused; n != 1 {
		t.Errorf("dial_refused after the restart = %d, want 1 (the refusal since)", n)
	}
	if b, err := exec.Command(hp, "events", "--config", path, "--verify").CombinedOutput(); err != nil {
		t.Fatalf("events --verify: %v\n%s", err, b)
	}
}
