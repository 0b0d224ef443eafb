package integration

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/test"
)

// The attacks of issue 14 on a running `hardphone run` whose security
// events go to Debian's rsyslog over mutual TLS: SIPVicious (svmap, svwar,
// svcrack) and SIPp floods on a plain UDP listener, INVITE floods through
// the registrar onto the phone's TLS flow, a collector outage across an
// agent restart, and a flood meant to exhaust the agent. The oracles are
// the phone's own refusal counters (each refusal is counted where it is
// made, in the SIP layer), the packets on the wire, SIPp's call count, the
// journal `hardphone events` lists, and the lines rsyslog wrote.

// TestMonitorPlainListener: SIPVicious and SIPp against alice's plain UDP
// listener while she is in a call with bob. Every request from a foreign
// source is refused 403 and is a sip.foreign_source or (SIPVicious's
// "friendly-scanner") sip.scanner event; INVITEs from the listener's peer
// above the per-source rate are sip.invite_flood events; the rate limit
// holds the journal back and its suppression summaries count exactly what
// it held. The call carries SRTP audio throughout, and rsyslog receives
// every record over mutual TLS, in order.
func TestMonitorPlainListener(t *testing.T) {
	e := newEnv(t)
	m := startMonitorPhone(t, e, "")
	call := startLegitCall(t, m)
	before := m.counters(t)
	capture := test.StartCapture(t, "lo", "udp and dst port 5092")

	host, port, _ := net.SplitHostPort(plainListen)
	// Each tool binds a port of its own, so a late answer to one run's
	// request never reaches the next.
	runs := []test.SIPViciousResult{
		// The scan: one OPTIONS, then one INVITE, from the default
		// "friendly-scanner".
		test.RunSVMap(t, "-P", "5071", "-p"+port, host),
		test.RunSVMap(t, "-P", "5072", "-p"+port, "-m", "INVITE", host),
		// Extension enumeration: every extension answers alike (403), so
		// svwar needs --force to go on.
		test.RunSVWar(t, "-P", "5073", "--force", "-e100-180", "-m", "REGISTER", "-p", port, "--maximumtime", "5", host),
		test.RunSVWar(t, "-P", "5074", "--force", "-e1000-1040", "-m", "OPTIONS", "-p", port, "--maximumtime", "5", host),
		// Password guessing for alice: the phone never challenges, so
		// svcrack asks again after every 403, as fast as they come, and
		// never gets to try a password.
		test.RunSVCrack(t, 5*time.Second, "-P", "5075", "-u", "alice", "-r", "1000-1100", "-p", port, host),
	}
	for _, r := range runs {
		t.Logf("%s exit %d after %v: %s", r.Tool, r.ExitCode, r.Duration.Round(time.Millisecond), lastLines(r.Output, 3))
		// The same 403 for every extension and password: nothing learnt.
		if r.Tool != "svmap" && (!strings.Contains(r.Output, "found nothing") || strings.Contains(r.Output, "The password for")) {
			t.Errorf("%s learnt something from the phone:\n%s", r.Tool, r.Output)
		}
	}
	if cs := call.waitMedia(t, 50); cs.Media.AuthFailures > 5 {
		t.Errorf("legitimate call after the scans: %d SRTP authentication failures", cs.Media.AuthFailures)
	}
	// A SIPp flood of INVITEs from a foreign source, then one from the
	// listener's own peer (past the source policy, into the per-source
	// INVITE limit).
	foreign := test.RunSIPp(t, "-sn", "uac", "-s", "alice", "-i", "127.0.0.1", "-p", "5096",
		"-m", "300", "-r", "150", "-l", "50", "-timeout", "25s", "-recv_timeout", "2000", plainListen)
	fromPeer := test.RunSIPp(t, "-sn", "uac", "-s", "alice", "-i", "127.0.0.1", "-p", "5095",
		"-m", "60", "-r", "30", "-l", "20", "-timeout", "20s", "-recv_timeout", "2000", plainListen)
	t.Logf("sipp foreign exit %d, from the peer exit %d", foreign.ExitCode, fromPeer.ExitCode)
	cs := call.waitMedia(t, 50)
	capture.Stop(t)

	recs, ta, after := m.waitAccounted(t, 90*time.Second)
	wire := countWireProbes(capture.Packets(t))
	refused := after.ForeignSource - before.ForeignSource
	t.Logf("wire: %d requests (%d scanner), %d retransmissions (%d scanner), %d ACKs; counters: foreign_source %d, invite_flood %d; journal: %s",
		wire.requests, wire.scanners, wire.resent, wire.resentScanner, wire.acks, refused, after.INVITEFlood, ta)
	// Every request from a foreign source on the wire was refused and
	// counted, once, or again for each retransmission of it (the refusal
	// keeps no state); the ACKs of the phone's 403s are no requests of
	// their own.
	if refused < wire.requests || refused > wire.requests+wire.resent {
		t.Errorf("foreign_source counter rose by %d, want the %d requests on the wire (+ up to %d retransmissions)", refused, wire.requests, wire.resent)
	}
	// And each is the event of its kind: SIPVicious's are scanners.
	if got := ta.total("sip.scanner"); wire.scanners < 100 || got < uint64(wire.scanners) || got > uint64(wire.scanners+wire.resentScanner) {
		t.Errorf("sip.scanner events + suppressed = %d, want the %d friendly-scanner requests on the wire (>= 100; + up to %d retransmissions)", got, wire.scanners, wire.resentScanner)
	}
	if got, want := ta.total("sip.foreign_source"), uint64(wire.requests-wire.scanners); got < want || got > want+uint64(wire.resent-wire.resentScanner) {
		t.Errorf("sip.foreign_source events + suppressed = %d, want the %d other requests on the wire (+ up to %d retransmissions)", got, want, wire.resent-wire.resentScanner)
	}
	if wire.authorized != 0 {
		t.Errorf("%d requests on the wire carried digest credentials: the phone challenged a scanner", wire.authorized)
	}
	if ta.total("sip.foreign_source") < 300 {
		t.Errorf("sip.foreign_source events + suppressed = %d, want >= 300 (the SIPp flood)", ta.total("sip.foreign_source"))
	}
	// SIPp's 60 plain-RTP INVITEs from the listener's peer: refused by
	// the media policy up to the per-source rate, above it as a flood.
	flood, media := after.INVITEFlood-before.INVITEFlood, after.CallsRefusedMedia-before.CallsRefusedMedia
	if flood == 0 || flood+media != 60 {
		t.Errorf("INVITEs from the peer: %d invite_flood + %d refused by media policy, want the 60, some of them a flood", flood, media)
	}
	for _, k := range []string{"sip.scanner", "sip.foreign_source", "sip.invite_flood"} {
		c := ta[k]
		if c == nil || c.events == 0 || c.suppressed == 0 {
			t.Errorf("%s: %+v, want events journaled and more suppressed by the rate limit", k, c)
		}
	}
	if cs.State != "established" {
		t.Errorf("legitimate call %s after the attacks", cs.State)
	}
	call.hangup(t)
	resent := m.checkCollector(t, recs, 60*time.Second)
	t.Logf("collector: %d records in order, %d resent", len(recs), resent)
	m.verify(t)
}

// floodScenario is carol calling alice through the registrar as fast as
// SIPp is told: each call answers Kamailio's digest challenge, offers SDES
// over SRTP (as a real caller would, so the INVITE reaches the phone's
// admission), and takes whatever the phone says: a refusal (486 at the
// call cap, 503 above the per-source INVITE rate; Kamailio may turn a 503
// into a 500) is ACKed, an answered call is ACKed and hung up.
const floodScenario = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="INVITE flood through the registrar">
  <send retrans="500">
    <![CDATA[
INVITE sip:alice@[remote_ip] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:carol@[remote_ip]>;tag=[pid]-[call_number]
To: <sip:alice@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:carol@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="407" auth="true"/>
  <send>
    <![CDATA[
ACK sip:alice@[remote_ip] SIP/2.0
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
INVITE sip:alice@[remote_ip] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:carol@[remote_ip]>;tag=[pid]-[call_number]
To: <sip:alice@[remote_ip]>
Call-ID: [call_id]
CSeq: 2 INVITE
Contact: <sip:carol@[local_ip]:[local_port]>
[authentication]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=carol 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [media_port] RTP/SAVP 0
a=rtpmap:0 PCMU/8000
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz
a=sendrecv

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="486" optional="true" next="refused"/>
  <recv response="500" optional="true" next="refused"/>
  <recv response="503" optional="true" next="refused"/>
  <recv response="200" rrs="true"/>
  <send>
    <![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: <sip:carol@[remote_ip]>;tag=[pid]-[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 2 ACK
Contact: <sip:carol@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="300"/>
  <send retrans="500">
    <![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: <sip:carol@[remote_ip]>;tag=[pid]-[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 3 BYE
Contact: <sip:carol@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="200" next="done"/>
  <label id="refused"/>
  <send>
    <![CDATA[
ACK sip:alice@[remote_ip] SIP/2.0
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
CSeq: 2 ACK
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <label id="done"/>
</scenario>
`

// TestMonitorTLSFlood: carol floods alice with INVITEs through the
// registrar, so they arrive over alice's own mutual-TLS flow (the phone
// has no TLS listener of its own: its TLS side is that flow) while alice
// is in a call with bob and may hold two calls. Every INVITE that reaches
// the phone is accounted for: a call, a sip.call_cap refusal or a
// sip.invite_flood refusal, journaled or counted in a suppression
// summary. Bob's call keeps its SRTP audio throughout, the phone's
// certificate watch reported both its identity and the registrar's
// certificate (the test PKI's live a day), and rsyslog receives every
// record over mutual TLS, in order.
func TestMonitorTLSFlood(t *testing.T) {
	e := newEnv(t, test.KamailioPlainPort(0))
	// call_waiting = "parallel": the flood's calls are answered as if alone,
	// so each is a call the cap counts (ringing ones would wait for a hand).
	m := startMonitorPhone(t, e, "max_calls = 2\ncall_waiting = \"parallel\"\n")
	call := startLegitCall(t, m)
	before := m.counters(t)
	const invites = 40
	res := test.RunSIPp(t, "-sf", test.WriteScenario(t, "invite-flood", floodScenario), "-s", "alice",
		"-au", "carol", "-ap", users["carol"], "-i", "127.0.0.1", "-p", "5097", "-mi", "127.0.0.1",
		"-m", strconv.Itoa(invites), "-r", "20", "-l", "10", "-timeout", "25s", "-recv_timeout", "5000", e.k.PlainAddr())
	t.Logf("sipp exit %d: %s", res.ExitCode, lastLines(res.Output, 4))
	cs := call.waitMedia(t, 100)
	recs, ta, after := m.waitAccounted(t, 90*time.Second)
	calls := after.CallsIn - before.CallsIn
	capped := after.CallCap - before.CallCap
	flooded := after.INVITEFlood - before.INVITEFlood
	t.Logf("phone: %d calls, %d at the call cap, %d above the INVITE rate; journal: %s", calls, capped, flooded, ta)
	if calls+capped+flooded != invites {
		t.Errorf("calls %d + call_cap %d + invite_flood %d = %d, want every one of the %d INVITEs\n%s",
			calls, capped, flooded, calls+capped+flooded, invites, res.Output)
	}
	if capped == 0 || flooded == 0 {
		t.Errorf("call_cap %d, invite_flood %d: want both limits hit", capped, flooded)
	}
	for _, k := range []string{"sip.call_cap", "sip.invite_flood"} {
		if c := ta[k]; c == nil || c.events == 0 {
			t.Errorf("%s: %+v, want events journaled", k, c)
		}
	}
	if ta.total("sip.foreign_source", "sip.scanner") != 0 {
		t.Errorf("foreign-source events %d: every INVITE came over the registrar's flow", ta.total("sip.foreign_source", "sip.scanner"))
	}
	// The registrar's ACK of each refusal belongs to the refused INVITE's
	// transaction (RFC 3261 §17.1.1.3): no attack, no event.
	if n := after.ForeignDialog - before.ForeignDialog; n != 0 || ta.total("sip.foreign_dialog") != 0 {
		t.Errorf("foreign_dialog rose by %d (journal %d): the ACKs of the phone's own refusals were taken for attacks", n, ta.total("sip.foreign_dialog"))
	}
	if cs.State != "established" || cs.Media.AuthFailures > 5 {
		t.Errorf("legitimate call after the flood: %+v, want established with few SRTP authentication failures", cs)
	}
	// Carol's answered calls are over; bob's is the only one left.
	waitFor(t, 20*time.Second, func() bool { return len(m.status(t).Accounts[0].Calls) == 1 })
	call.hangup(t)
	checkNearExpiry(t, recs)
	resent := m.checkCollector(t, recs, 60*time.Second)
	t.Logf("collector: %d records in order, %d resent", len(recs), resent)
	m.verify(t)
}

// checkNearExpiry: the journal holds one cert.near_expiry event for the
// phone's identity certificate and one for the registrar's, graded by the
// days they have left (the test PKI's live a day: "error").
func checkNearExpiry(t *testing.T, recs []journalRecord) {
	t.Helper()
	got := map[string]int{}
	for _, r := range recs {
		ev := r.Event
		if ev == nil || ev.Kind != "cert.near_expiry" {
			continue
		}
		role := ev.Detail["role"]
		got[role]++
		if ev.Detail["days_left"] != "0" || ev.Severity != "error" {
			t.Errorf("cert.near_expiry %+v, want days_left 0 and severity error", ev)
		}
		switch role {
		case "identity":
			if ev.Detail["subject"] != "alice" {
				t.Errorf("identity cert.near_expiry of %q, want alice", ev.Detail["subject"])
			}
		case "registrar":
			if ev.Detail["subject"] != "127.0.0.1" || ev.Account != "alice" {
				t.Errorf("registrar cert.near_expiry of %q for account %q, want 127.0.0.1 for alice", ev.Detail["subject"], ev.Account)
			}
		}
	}
	if got["identity"] != 1 || got["registrar"] != 1 {
		t.Errorf("cert.near_expiry events by role = %v, want one for the identity and one for the registrar", got)
	}
}

// TestMonitorCollectorOutage: rsyslog goes down while the phone keeps
// refusing scanners; the agent is stopped and started again while it is
// still down (the exporter restarts from the delivery cursor in the state
// file, with a backlog); once rsyslog is back it receives every record,
// in journal order, and the journal still verifies.
func TestMonitorCollectorOutage(t *testing.T) {
	e := newEnv(t)
	m := startMonitorPhone(t, e, "")
	probes(t, 10, 8)
	m.checkCollector(t, m.journal(t), 60*time.Second)

	m.rs.Stop(t)
	delivered := maxSeq(t, m.rs.Lines(t))
	probes(t, 11, 8)
	m.stop(t)
	m.start(t)
	probes(t, 12, 8)
	waitFor(t, 20*time.Second, func() bool { return tallyOf(t, m.journal(t)).total("sip.scanner") >= 24 })
	backlog := m.journal(t)
	waiting := backlog[len(backlog)-1].Seq - delivered
	t.Logf("journal holds %d records, %d of them written while the collector was down", len(backlog), waiting)
	if waiting < 16 {
		t.Fatalf("%d records written during the outage, want at least the 16 probes'", waiting)
	}
	m.rs.Restart(t)
	resent := m.checkCollector(t, backlog, 120*time.Second)
	t.Logf("collector: all %d records in order after the outage, %d resent", len(backlog), resent)
	// The restarted exporter went on from the cursor in the state file, not
	// from the start of the journal.
	if uint64(resent) >= delivered {
		t.Errorf("%d records sent twice, want fewer than the %d delivered before the outage", resent, delivered)
	}
	ta := tallyOf(t, backlog)
	if ta.total("sip.scanner") != 24 {
		t.Errorf("sip.scanner events + suppressed = %d, want the 24 probes (%s)", ta.total("sip.scanner"), ta)
	}
	m.verify(t)
}

// TestMonitorFlood: a flood meant to fill the disk and exhaust the agent —
// SIPp INVITEs from a foreign source as fast as it can send them, and a
// spray of scanner probes from more addresses than the rate limiter keeps
// peers — is refused, counted, and held back by the rate limit: the
// journal gets a bounded number of events and suppression summaries that
// count the rest exactly, the agent's memory and goroutines stay bounded
// and come back once the flood's transactions expire, and the agent keeps
// running and registered.
func TestMonitorFlood(t *testing.T) {
	e := newEnv(t)
	m := startMonitorPhone(t, e, "")
	pid := m.proc.cmd.Process.Pid
	probeFrom(t, "127.0.1.1")
	// The baseline: the agent settled (registered, its events exported).
	m.checkCollector(t, m.journal(t), 60*time.Second)
	base := resourceSample{rssKB: procStatus(t, pid, "VmRSS"), goroutines: m.status(t).Runtime.Goroutines}
	before, drops0 := m.counters(t), udpDrops(t)
	start := time.Now()
	stop := make(chan struct{})
	peak := m.sampleResources(t, stop)

	// A spray from 2000 addresses, twice the limiter's peer table.
	spray := make(chan error, 1)
	go func() {
		for i := range 2000 {
			c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 2, byte(i/250), byte(1+i%250))}, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(plainListen)))
			if err != nil {
				spray <- err
				return
			}
			la := c.LocalAddr().String()
			_, err = c.Write([]byte("OPTIONS sip:100@" + plainListen + " SIP/2.0\r\nVia: SIP/2.0/UDP " + la + ";branch=z9hG4bK-" + randHex(8) +
				"\r\nFrom: <sip:100@1.1.1.1>;tag=" + randHex(4) + "\r\nTo: <sip:100@1.1.1.1>\r\nCall-ID: " + randHex(8) +
				"\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nUser-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n"))
			c.Close()
			if err != nil {
				spray <- err
				return
			}
		}
		spray <- nil
	}()
	res := test.RunSIPpTimeout(t, 2*time.Minute, "-sn", "uac", "-s", "alice", "-i", "127.0.0.1", "-p", "5098",
		"-m", "20000", "-r", "2000", "-l", "4000", "-timeout", "90s", "-recv_timeout", "2000", plainListen)
	if err := <-spray; err != nil {
		t.Fatalf("spray: %v", err)
	}
	t.Logf("sipp exit %d after %v: %s", res.ExitCode, res.Duration.Round(time.Millisecond), lastLines(res.Output, 4))

	recs, ta, c := m.waitAccounted(t, 120*time.Second)
	close(stop)
	p := <-peak
	elapsed := time.Since(start)
	t.Logf("refused %d (journal: %s) in %v; agent: RSS %d -> peak %d kB, goroutines %d -> peak %d",
		c.ForeignSource, ta, elapsed.Round(time.Second), base.rssKB, p.rssKB, base.goroutines, p.goroutines)
	// Every datagram sent was refused and counted once, unless the kernel
	// dropped it for a full socket buffer (the namespace's UDP counters
	// say how many it dropped, on any socket).
	drops := udpDrops(t) - drops0
	const sent = 20000 + 2000
	if got := uint64(c.ForeignSource - before.ForeignSource); got > sent || got+drops < sent {
		t.Errorf("foreign_source rose by %d with %d datagrams dropped by the kernel, want the %d sent", got, drops, sent)
	}
	// The rate limit bounds what is journaled: per kind a burst of 30 and
	// one every 2 s after, whatever the flood.
	for _, k := range []string{"sip.foreign_source", "sip.scanner"} {
		limit := uint64(30 + elapsed.Seconds()/2 + 1)
		if n := ta[k]; n == nil || n.events > limit || n.suppressed == 0 {
			t.Errorf("%s: %+v, want at most %d journaled in %v and the rest suppressed", k, n, limit, elapsed.Round(time.Second))
		}
	}
	if len(recs) > 400 {
		t.Errorf("journal of %d records after the flood, want the rate limit to keep it small", len(recs))
	}
	// Nothing crashed: the same process answers, registered.
	if m.proc.cmd.ProcessState != nil {
		t.Fatalf("agent exited: %v", m.proc.cmd.ProcessState)
	}
	if st := m.status(t); !st.Accounts[0].Registered {
		t.Errorf("registration lost under the flood: %+v", st.Accounts[0])
	}
	probeFrom(t, "127.0.1.2")
	// Bounded: the flood's transactions (kept for RFC 3261's timers) and
	// their goroutines go; the agent is back near its size.
	var now resourceSample
	waitFor(t, 90*time.Second, func() bool {
		now = resourceSample{rssKB: procStatus(t, pid, "VmRSS"), goroutines: m.status(t).Runtime.Goroutines}
		return now.goroutines <= base.goroutines+10
	})
	t.Logf("after the flood: RSS %d kB, goroutines %d", now.rssKB, now.goroutines)
	// Refused datagrams hold nothing (no goroutine, no transaction, no
	// pool entry): the agent barely grows, however long the flood.
	if p.rssKB > base.rssKB+32*1024 || p.goroutines > base.goroutines+30 {
		t.Errorf("agent peaked at %d kB RSS and %d goroutines from %d kB and %d: a refusal holds state",
			p.rssKB, p.goroutines, base.rssKB, base.goroutines)
	}
	m.checkCollector(t, recs, 60*time.Second)
	m.verify(t)
}
