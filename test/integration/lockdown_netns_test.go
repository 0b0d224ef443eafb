//go:build linux

package integration

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/hal/audio"
	"github.com/hardphone/hardphone/hal/nft"
	"github.com/hardphone/hardphone/test"
)

// countTable is the test's own nftables table: named counters on either
// side of the hardphone input chain, to see what that chain drops.
const countTable = "hptest"

// lockdownRig is what both calls share: a peer namespace holding Kamailio
// and baresip, and the addresses in it.
type lockdownRig struct {
	e    *env
	b    *test.Baresip
	peer *test.Peer
	// kamailio, baresip and stranger are addresses of the peer namespace;
	// the stranger only sends what the firewall must drop.
	kamailio, baresip, stranger netip.Addr
	ours                        string // WAV hardphone plays
	recDir                      string // where baresip records
}

// TestLockdownCallPinhole is issue 5 item 6 with real calls, in both roles:
// while hardphone, locked down, talks SRTP with baresip, the call's pinhole
// is in the nft set naming baresip's address and media ports, the tones
// cross both ways, media without a pinhole is dropped, and the agent's own
// periodic check accounts for the pinhole; after hang-up the set is empty.
//
// Kamailio and baresip run in a peer namespace behind a veth rather than on
// loopback next to the agent, for three reasons. The default policy accepts
// loopback wholesale, so only traffic from another interface meets the
// default-drop input chain, as it would from a real network. The check
// counts every listening socket of the namespace it runs in: Kamailio's and
// baresip's sockets there would be drift, and listing them in the policy
// (SIP, ctrl_tcp and 20 RTP ports) would prove nothing about the phone.
// And the pinhole then names a real remote address, with a second address
// beside it to play the stranger.
func TestLockdownCallPinhole(t *testing.T) {
	peer := test.NewPeer(t, 3)
	// baresip takes the peer's first (primary) address: it binds its RTP
	// sockets to the wildcard, so the kernel sends its media from there
	// whatever address its SDP names.
	r := &lockdownRig{peer: peer, baresip: peer.Peer4[0], kamailio: peer.Peer4[1], stranger: peer.Peer4[2]}
	dir := t.TempDir()
	r.ours = filepath.Join(dir, "ours.wav")
	theirs := filepath.Join(dir, "theirs.wav")
	// aufile hangs up at the end of its file: outlast both calls.
	test.WriteToneWAV(t, r.ours, toneOurs, 60*time.Second, 8000)
	test.WriteToneWAV(t, theirs, toneTheirs, 60*time.Second, 8000)
	r.recDir = filepath.Join(dir, "baresip-rec")
	peer.Run(t, func() {
		r.e = newEnv(t, test.KamailioListenIP(r.kamailio.String()))
		r.b = test.StartBaresip(t, test.BaresipKamailio(r.e.k, "carol"), test.BaresipListenIP(r.baresip.String()),
			test.BaresipMediaEnc("srtp-mand"), test.BaresipAudioSource(theirs), test.BaresipRecordDir(r.recDir))
	})
	for _, tc := range []struct {
		name     string
		user     string // a user of its own, so no stale binding forks the call
		outbound bool   // hardphone calls baresip
	}{
		{"hardphone_calls_baresip", "alice", true},
		{"baresip_calls_hardphone", "bob", false},
	} {
		t.Run(tc.name, func(t *testing.T) { r.call(t, tc.user, tc.outbound) })
	}
	// The other tests of this binary share the namespace: nothing of ours
	// may outlive the calls.
	for _, name := range []string{nft.TableName, countTable} {
		if tables := test.Nft(t, "list", "tables"); strings.Contains(tables, "table inet "+name+"\n") {
			t.Errorf("nft list tables after the calls = %q, want no table inet %s", tables, name)
		}
	}
}

// startLockedPhone runs an agent for user under a policy that lets it reach
// the registrar only and media in through pinholes only, with the drift
// check every second. inbound supplies the audio of calls it answers. It
// returns the phone and the policy's path.
func (r *lockdownRig) startLockedPhone(t *testing.T, user string, inbound sip.Inbound) (*phone, string) {
	t.Helper()
	_, kport, err := net.SplitHostPort(r.e.k.Addr())
	if err != nil {
		t.Fatalf("Kamailio address %q: %v", r.e.k.Addr(), err)
	}
	lo, hi := nextPorts()
	policy := fmt.Sprintf(`version = 1

[firewall]
loopback = "open"
outbound = "restrict"

[[outbound]]
name = "registrar"
proto = "tcp"
port = %s
to = [%q]

[rtp]
ports = [%d, %d]
peers = [%q]
`, kport, r.kamailio, lo, hi, netip.PrefixFrom(r.kamailio, 24).Masked())
	policyPath := filepath.Join(t.TempDir(), "lockdown.toml")
	if err := os.WriteFile(policyPath, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	path := r.e.writeConfig(t, phoneConf{user: user, mediaSecurity: "sdes", portMin: lo, portMax: hi,
		top: fmt.Sprintf("lockdown_policy = %q\nlockdown_check_interval = \"1s\"\n", policyPath)})
	// Media must be offered on the veth, where baresip can reach it.
	cfg, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const loopbackMedia = `local_ip = "127.0.0.1"`
	if n := strings.Count(string(cfg), loopbackMedia); n != 1 {
		t.Fatalf("config %s has %d lines %q, want 1 to replace", path, n, loopbackMedia)
	}
	cfg = []byte(strings.Replace(string(cfg), loopbackMedia, fmt.Sprintf("local_ip = %q", r.peer.Local4), 1))
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	// The agent leaves its table in the kernel when it stops (a phone stays
	// locked down); the other tests share this namespace, so remove it once
	// the agent is gone. Cleanups run last-in first-out: this one after the
	// agent's.
	t.Cleanup(func() { deleteTable(t, nft.TableName) })
	return startPhoneFrom(t, path, inbound), policyPath
}

func (r *lockdownRig) call(t *testing.T, user string, outbound bool) {
	ctx := context.Background()
	rec := filepath.Join(t.TempDir(), "hardphone-rec.wav")
	sink, err := audio.CreateWAV(rec, 8000)
	if err != nil {
		t.Fatal(err)
	}
	src, err := audio.OpenWAV(r.ours)
	if err != nil {
		t.Fatal(err)
	}
	opts := sip.CallOptions{Source: src, Sink: sink}
	var once sync.Once
	inbound := func(*sip.Call) sip.CallOptions {
		var o sip.CallOptions
		once.Do(func() { o = opts })
		return o
	}
	p, policyPath := r.startLockedPhone(t, user, inbound)
	p.waitRegistered(t)
	reg := r.e.k.WaitRegistered(t, user, 5*time.Second)
	if !strings.HasPrefix(reg.Socket, "tls:") {
		t.Fatalf("%s's binding socket = %q, want Kamailio's TLS listener (which demands a client certificate)", user, reg.Socket)
	}
	st := p.ag.Status()
	if st.Lockdown == nil || st.Lockdown.Policy != policyPath {
		t.Fatalf("Status().Lockdown = %+v after Run applied %s, want that policy", st.Lockdown, policyPath)
	}
	if got := setElements(t, nft.SetRTP4); len(got) != 0 {
		t.Fatalf("set %s before any call = %v, want empty", nft.SetRTP4, got)
	}

	recsBefore := r.b.RecordedWAVs()
	var call *sip.Call
	if outbound {
		call, err = p.acct.Dial(ctx, "sip:carol@"+r.kamailio.String(), opts)
		if err != nil {
			t.Fatalf("Dial(carol) = %v\n%s", err, r.e.k.SIPDump())
		}
		r.b.WaitEvent(t, "CALL_ESTABLISHED", 10*time.Second)
	} else {
		r.b.Dial(t, "sip:"+user+"@"+r.kamailio.String())
		call = p.waitEvent(t, sip.EventCallStarted, 15*time.Second).Call
	}
	// Should the test fail mid-call, end the call before its agent stops:
	// a stopped agent leaves calls up, and their RTP sockets would be drift
	// to the next agent in this namespace. Hangup of an ended call is a
	// no-op.
	t.Cleanup(func() { call.Hangup(ctx) })
	if s := call.Media().Stats().Suite; s == "" {
		t.Fatalf("call established without an SRTP suite: %+v", call.Media().Stats())
	}
	waitFor(t, 10*time.Second, func() bool { return call.Media().Stats().PacketsReceived >= 50 })

	// The pinhole: every media endpoint baresip's SDP gave, to each of our
	// media ports, and nothing else.
	peers, locals := call.RemoteMedia(), call.Media().LocalAddrs()
	bLo, bHi := r.b.RTPPorts()
	if len(peers) == 0 || len(locals) == 0 {
		t.Fatalf("RemoteMedia() = %v, LocalAddrs() = %v, want endpoints on both sides", peers, locals)
	}
	var want []string
	for _, pe := range peers {
		if pe.Addr() != r.baresip || int(pe.Port()) < bLo || int(pe.Port()) > bHi {
			t.Fatalf("RemoteMedia() = %v, want %s with ports in baresip's %d-%d", peers, r.baresip, bLo, bHi)
		}
		for _, l := range locals {
			want = append(want, fmt.Sprintf("%s . %d . %d", pe.Addr(), pe.Port(), l.Port()))
		}
	}
	slices.Sort(want)
	if got := setElements(t, nft.SetRTP4); !slices.Equal(got, want) {
		t.Errorf("set %s during the call = %v, want %v", nft.SetRTP4, got, want)
	} else {
		t.Logf("pinholes during the call: %v", got)
	}
	if got := setElements(t, nft.SetRTP6); len(got) != 0 {
		t.Errorf("set %s during the call = %v, want empty", nft.SetRTP6, got)
	}

	r.probeClosed(t, call)

	before := call.Media().Stats().PacketsReceived
	waitFor(t, 10*time.Second, func() bool { return call.Media().Stats().PacketsReceived >= before+50 })
	r.checkNoDrift(t, p, locals[0].Port())

	if outbound {
		call.Hangup(ctx)
	} else {
		r.b.Hangup(t)
	}
	r.b.WaitEvent(t, "CALL_CLOSED", 10*time.Second)
	// The agent closes the pinhole before its other watchers hear of the
	// end, so the set is empty once call_ended arrives here.
	for p.waitEvent(t, sip.EventCallEnded, 10*time.Second).Call != call {
		// another call's end; this test makes one at a time
	}
	if got := setElements(t, nft.SetRTP4); len(got) != 0 {
		t.Errorf("set %s after hang-up = %v, want empty", nft.SetRTP4, got)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}

	if mst := call.Media().Stats(); mst.AuthFailures > 5 {
		t.Errorf("SRTP auth failures = %d, want few (baresip's plain RTCP only)", mst.AuthFailures)
	}
	for _, l := range strings.Split(r.e.k.SIPDump(), "\n") {
		if strings.HasPrefix(l, "m=audio") && !strings.Contains(l, " RTP/SAVP ") {
			t.Errorf("media line in the signalling is not SRTP: %q", strings.TrimSpace(l))
		}
	}
	samples, rate, err := test.ReadWAV(rec)
	if err != nil {
		t.Fatal(err)
	}
	if ratio := test.DetectTone(samples, rate, toneTheirs); ratio < 0.5 {
		t.Errorf("DetectTone(hardphone recording, %v Hz) = %.2f, want >= 0.5", toneTheirs, ratio)
	}
	// Our media left through the output pinhole too (outbound = "restrict").
	heard := false
	for _, f := range r.b.RecordedWAVs() {
		if slices.Contains(recsBefore, f) {
			continue
		}
		if s, sr, err := test.ReadWAV(f); err == nil && test.DetectTone(s, sr, toneOurs) >= 0.5 {
			heard = true
		}
	}
	if !heard {
		t.Errorf("baresip's recordings of this call (%v, less %v): no %v Hz tone", r.b.RecordedWAVs(), recsBefore, toneOurs)
	}
}

// probeClosed shows that the firewall is closed, during the call, for media
// without a pinhole: datagrams to our RTP port from the stranger's address
// (inside rtp.peers) and from baresip's address on a port its SDP did not
// name reach the input hook, yet never get past the hardphone chain, while
// baresip's media does. Counters in a table of the test's own, in chains
// before and after ours, tell: nftables runs every base chain of a hook in
// priority order, an accept goes on to the next one, and a drop ends the
// walk.
func (r *lockdownRig) probeClosed(t *testing.T, call *sip.Call) {
	t.Helper()
	media := call.RemoteMedia()[0]
	ours := call.Media().LocalAddrs()[0].Port()
	var stranger, wrongPort *net.UDPConn
	// Ephemeral ports: outside baresip's RTP range, so in no pinhole.
	// (baresip holds its media port on the wildcard address, so the
	// stranger cannot borrow it.)
	err := r.peer.Do(func() (err error) {
		if stranger, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(r.stranger, 0))); err != nil {
			return err
		}
		wrongPort, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(r.baresip, 0)))
		return err
	})
	for _, c := range []*net.UDPConn{stranger, wrongPort} {
		if c != nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	if err != nil {
		t.Fatalf("probe sockets in the peer namespace: %v", err)
	}
	probes := []struct {
		name string
		conn *net.UDPConn
	}{{"stranger", stranger}, {"wrongport", wrongPort}}
	var rules4 []string
	rule := func(chain, counter string, from netip.AddrPort) {
		rules4 = append(rules4, fmt.Sprintf("add rule inet %s %s ip saddr %s udp sport %d udp dport %d counter name %q",
			countTable, chain, from.Addr(), from.Port(), ours, counter))
	}
	for _, pr := range probes {
		from := netip.MustParseAddrPort(pr.conn.LocalAddr().String())
		rule("before", pr.name+"_seen", from)
		rule("after", pr.name+"_passed", from)
	}
	rule("after", "media_passed", media)
	script := fmt.Sprintf(`table inet %[1]s {
	counter stranger_seen { }
	counter stranger_passed { }
	counter wrongport_seen { }
	counter wrongport_passed { }
	counter media_passed { }
	chain before { type filter hook input priority -10; policy accept; }
	chain after { type filter hook input priority 10; policy accept; }
}
%[2]s
`, countTable, strings.Join(rules4, "\n"))
	t.Cleanup(func() { deleteTable(t, countTable) })
	test.NftInput(t, script)

	const sent = 3
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(r.peer.Local4, ours))
	for _, pr := range probes {
		for i := 0; i < sent; i++ {
			// An RTP-looking header; its content does not matter to nft.
			if _, err := pr.conn.WriteToUDP([]byte("\x80\x00\x00\x01probe"), to); err != nil {
				t.Fatalf("%s probe: send to %v: %v", pr.name, to, err)
			}
		}
	}
	// A packet walks the chains of a hook in one go, so once the first
	// counter has it, its fate in the later chain is settled.
	waitFor(t, 5*time.Second, func() bool {
		return counter(t, "stranger_seen") == sent && counter(t, "wrongport_seen") == sent && counter(t, "media_passed") > 0
	})
	for _, pr := range probes {
		if got := counter(t, pr.name+"_passed"); got != 0 {
			t.Errorf("%s probe from %v: %d of %d datagrams to our RTP port %d passed the hardphone chain, want 0", pr.name, pr.conn.LocalAddr(), got, sent, ours)
		}
	}
	t.Logf("probes to port %d: stranger %v seen %d passed %d, wrong port %v seen %d passed %d; baresip's media passed %d",
		ours, stranger.LocalAddr(), counter(t, "stranger_seen"), counter(t, "stranger_passed"),
		wrongPort.LocalAddr(), counter(t, "wrongport_seen"), counter(t, "wrongport_passed"), counter(t, "media_passed"))
}

// checkNoDrift shows that the agent's periodic check ran while the call
// was up and did not take the call's pinhole for drift. A successful check
// is silent, so the proof is a drift of our making: a stray pinhole that no
// call opened. Every finding the agent logs must name that stray: the
// call's own pinholes, listed in the same checks, are accounted for.
func (r *lockdownRig) checkNoDrift(t *testing.T, p *phone, ours uint16) {
	t.Helper()
	st := p.ag.Status()
	if st.Lockdown == nil {
		t.Fatalf("Status().Lockdown = nil during the call, want the policy")
	}
	if st.Lockdown.DriftEvents != 0 {
		// The phone runs in this test process: a UDP socket another test
		// left open in it shows up as drift. Say whose, to find the leak.
		ss, _ := exec.Command("ss", "-uanpe").CombinedOutput()
		t.Fatalf("Status().Lockdown.DriftEvents = %d during the call, want 0\n%s\n--- ss -uanpe ---\n%s", st.Lockdown.DriftEvents, driftLines(t, p), ss)
	}
	stray := nft.Pinhole{Peer: netip.AddrPortFrom(r.stranger, 4999), Local: ours}
	elem := fmt.Sprintf("{ %s . %d . %d }", stray.Peer.Addr(), stray.Peer.Port(), stray.Local)
	test.Nft(t, "add", "element", "inet", nft.TableName, nft.SetRTP4, elem)
	waitFor(t, 10*time.Second, func() bool { return p.ag.Status().Lockdown.DriftEvents > 0 })
	test.Nft(t, "delete", "element", "inet", nft.TableName, nft.SetRTP4, elem)
	lines := driftLines(t, p)
	if len(lines) == 0 {
		t.Fatalf("DriftEvents > 0 but the agent logged no drift finding")
	}
	t.Logf("drift the agent's check logged after the stray pinhole was added:\n%s", strings.Join(lines, "\n"))
	for _, l := range lines {
		if !strings.Contains(l, "subject="+stray.String()) {
			t.Errorf("agent's check during the call found drift other than the stray pinhole %s: %s", stray, l)
		}
	}
}

// driftLines returns the agent's "lockdown drift" log lines.
func driftLines(t *testing.T, p *phone) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.dir, "agent.log"))
	if err != nil {
		t.Fatalf("agent log: %v", err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, `msg="lockdown drift"`) {
			out = append(out, l)
		}
	}
	return out
}

var elementsRe = regexp.MustCompile(`(?s)elements = \{(.*?)\}`)

// setElements lists the elements of a pinhole set as nft prints them
// ("10.77.1.3 . 10010 . 20000"), sorted.
func setElements(t *testing.T, set string) []string {
	t.Helper()
	m := elementsRe.FindStringSubmatch(test.Nft(t, "list", "set", "inet", nft.TableName, set))
	if m == nil {
		return nil
	}
	var out []string
	for _, e := range strings.Split(m[1], ",") {
		if e = strings.Join(strings.Fields(e), " "); e != "" {
			out = append(out, e)
		}
	}
	slices.Sort(out)
	return out
}

var packetsRe = regexp.MustCompile(`packets (\d+)`)

// counter reads a named counter of the test's table.
func counter(t *testing.T, name string) uint64 {
	t.Helper()
	out := test.Nft(t, "list", "counter", "inet", countTable, name)
	m := packetsRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("nft list counter %s: no packet count in %q", name, out)
	}
	n, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		t.Fatalf("nft list counter %s: %v", name, err)
	}
	return n
}

// deleteTable removes an inet table if it is there.
func deleteTable(t *testing.T, name string) {
	t.Helper()
	if strings.Contains(test.Nft(t, "list", "tables"), "table inet "+name+"\n") {
		test.Nft(t, "delete", "table", "inet", name)
	}
}
