//go:build linux

package lockdown

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hardphone/hardphone/hal/nft"
	"github.com/hardphone/hardphone/hal/services"
	"github.com/hardphone/hardphone/hal/sysctl"
	"github.com/hardphone/hardphone/test"
)

// probeTimeout bounds a connection attempt that the firewall drops: a drop
// has no answer, so only waiting can show it. Allowed connections over the
// veth complete in well under a millisecond.
const probeTimeout = 1500 * time.Millisecond

// env is one test's lockdown: a staged BusyBox root for services, a
// modprobe file of its own, and cleanup of the hardphone table.
type env struct {
	root     string
	modprobe string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	test.RequireNetns(t)
	e := &env{root: t.TempDir()}
	e.modprobe = filepath.Join(t.TempDir(), "modprobe.d", "hardphone-lockdown.conf")
	writeFile(t, filepath.Join(e.root, "etc/init.d/rcS"), "#!/bin/sh\n", 0o755)
	t.Cleanup(func() {
		c, err := nft.Open()
		if err != nil {
			t.Errorf("nft.Open() = %v", err)
			return
		}
		defer c.Close()
		if err := c.Remove(); err != nil {
			t.Errorf("remove hardphone table: %v", err)
		}
	})
	return e
}

func (e *env) lockdown(t *testing.T, src string, opts ...Option) *Lockdown {
	t.Helper()
	p, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse() = %v\n%s", err, src)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts = append([]Option{WithModprobeFile(e.modprobe), WithLogger(log)}, opts...)
	fw, err := nft.Open()
	if err != nil {
		t.Fatalf("nft.Open() = %v", err)
	}
	t.Cleanup(func() {
		if err := fw.Close(); err != nil {
			t.Errorf("firewall Close() = %v", err)
		}
	})
	svc, err := services.New(services.WithRoot(e.root))
	if err != nil {
		t.Fatalf("services.New() = %v", err)
	}
	sys, err := sysctl.New()
	if err != nil {
		t.Fatalf("sysctl.New() = %v", err)
	}
	l, err := New(p, Parts{Firewall: fw, Services: svc, Sysctl: sys}, opts...)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	return l
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

func writeFile(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// listenTCP accepts and closes connections on addr until the test ends.
func listenTCP(t *testing.T, addr string) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
}

type probe struct {
	src  netip.Addr
	dst  netip.AddrPort
	open bool
}

// dial connects from src (an address of the peer namespace) to dst and
// says whether the connection was made, or fails the test when it was
// refused rather than dropped: a refusal means a packet got through.
func dial(peer *test.Peer, src netip.Addr, dst netip.AddrPort) (bool, error) {
	var open bool
	err := peer.Do(func() error {
		d := net.Dialer{Timeout: probeTimeout, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
		c, err := d.Dial("tcp", dst.String())
		if err == nil {
			open = true
			return c.Close()
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		return fmt.Errorf("dial %s from %s: %w (not dropped)", dst, src, err)
	})
	return open, err
}

func runProbes(t *testing.T, peer *test.Peer, probes []probe) {
	t.Helper()
	type result struct {
		open bool
		err  error
	}
	res := make([]result, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i].open, res[i].err = dial(peer, p.src, p.dst)
		}()
	}
	wg.Wait()
	for i, p := range probes {
		if res[i].err != nil {
			t.Errorf("probe %s -> %s: %v", p.src, p.dst, res[i].err)
			continue
		}
		if res[i].open != p.open {
			t.Errorf("probe %s -> %s: open = %v, want %v", p.src, p.dst, res[i].open, p.open)
		}
	}
}

// warmProbes dials each probe (all expected open: no policy yet) until it
// connects, for up to 20 s: the first contact from each source settles its
// neighbour entries, which on a loaded machine can take longer than one
// probe's timeout.
func warmProbes(t *testing.T, peer *test.Peer, probes []probe) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, p := range probes {
		for {
			open, err := dial(peer, p.src, p.dst)
			if err != nil {
				t.Fatalf("warm-up probe %s -> %s: %v", p.src, p.dst, err)
			}
			if open {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("warm-up probe %s -> %s: no connection within 20 s with no policy applied", p.src, p.dst)
			}
		}
	}
}

// TestProbeFromPeer is issue 5 item 4: after apply, a second host finds
// only the allowed ports open, and only from the allowed sources.
func TestProbeFromPeer(t *testing.T) {
	e := newEnv(t)
	peer := test.NewPeer(t, 2)
	registrar4, registrar6 := peer.Peer4[0], peer.Peer6[0]
	other4, other6 := peer.Peer4[1], peer.Peer6[1]
	const sipPort, mgmtPort, strayPort, closedPort = 5061, 8443, 8080, 9999
	policy := fmt.Sprintf(`version = 1
[firewall]
outbound = "restrict"

[[listener]]
name = "sip-tls"
proto = "tcp"
port = %d
from = [%q, %q]

[[listener]]
name = "mgmt"
proto = "tcp"
port = %d
from = ["%s/32"]

[rtp]
ports = [20000, 20099]
`, sipPort, registrar4, registrar6, mgmtPort, other4)
	for _, port := range []int{sipPort, mgmtPort, strayPort} {
		listenTCP(t, fmt.Sprintf("[::]:%d", port))
	}
	at := func(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }
	local4, local6 := peer.Local4, peer.Local6

	// Without lockdown the stray port answers: the probe can see an open
	// port. From every source, v4 and v6: this also settles the neighbour
	// entries (ARP, and NDP, whose first resolution on a loaded machine
	// can outlast a probe's timeout and pass for a drop).
	// A probe that timed out here is retried: nothing drops yet, so a
	// timeout can only be that resolution.
	warmProbes(t, peer, []probe{{other4, at(local4, strayPort), true}, {registrar4, at(local4, strayPort), true},
		{other6, at(local6, strayPort), true}, {registrar6, at(local6, strayPort), true}})

	l := e.lockdown(t, policy)
	pl, err := l.Apply(context.Background())
	if err != nil {
		t.Fatalf("Apply() = %v", err)
	}
	if pl.Empty() {
		t.Fatalf("Apply() on a bare system changed nothing")
	}
	runProbes(t, peer, []probe{
		{registrar4, at(local4, sipPort), true},
		{registrar6, at(local6, sipPort), true},
		{other4, at(local4, sipPort), false},
		{other6, at(local6, sipPort), false},
		{other4, at(local4, mgmtPort), true},
		{registrar4, at(local4, mgmtPort), false},
		{other6, at(local6, mgmtPort), false},
		{registrar4, at(local4, strayPort), false},
		{registrar4, at(local4, closedPort), false},
	})
	// Loopback stays open (firewall.loopback defaults to "open").
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", strayPort), probeTimeout)
	if err != nil {
		t.Errorf("loopback dial after apply: %v", err)
	} else {
		c.Close()
	}
}

// startRogue runs a copy of the test binary named rogued that listens on
// spec ("tcp:0.0.0.0:2323,udp:0.0.0.0:6969") and returns its PID; cleanup
// stops it.
func startRogue(t *testing.T, spec string) int {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "rogued")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), rogueEnv+"="+spec)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = &unix.SysProcAttr{Pdeathsig: unix.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start rogue: %v", err)
	}
	t.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("rogue exit: %v", err)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("rogue did not get ready: %q, %v", line, err)
	}
	return cmd.Process.Pid
}

// TestRogueListener is issue 5 item 5: a process that binds a port after
// apply makes check report drift naming the port and the process.
func TestRogueListener(t *testing.T) {
	e := newEnv(t)
	l := e.lockdown(t, `version = 1
[[listener]]
name = "sip-tls"
proto = "tcp"
port = 5061
from = ["10.0.0.0/8"]
process = "hardphone"
`)
	ctx := context.Background()
	if _, err := l.Apply(ctx); err != nil {
		t.Fatalf("Apply() = %v", err)
	}
	r, err := l.Check(ctx)
	if err != nil || !r.OK {
		t.Fatalf("Check() after Apply = %+v, %v, want no drift", r.Drift, err)
	}

	pid := startRogue(t, "tcp:0.0.0.0:2323,udp:[::]:6969,udp:127.0.0.1:6970")
	// The test binary itself takes the SIP port: allowed port, wrong owner.
	listenTCP(t, "127.0.0.1:5061")

	ticks := make(chan time.Time)
	mctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { l.Monitor(mctx, ticks, nil); close(done) }()
	t.Cleanup(func() { stop(); <-done })

	r, err = l.Check(ctx)
	if err != nil {
		t.Fatalf("Check() = %v", err)
	}
	// Go binds 0.0.0.0 for "tcp" as a dual-stack [::] socket. The test
	// binary runs re-executed through /proc/self/exe, so its comm is "exe";
	// its executable name tells.
	want := []struct {
		subject, process string
		pid              int
	}{
		{"tcp [::]:2323", "rogued", pid},
		{"udp [::]:6969", "rogued", pid},
		{"udp 127.0.0.1:6970", "rogued", pid},
		{"tcp 127.0.0.1:5061", "lockdown.test", os.Getpid()},
	}
	for _, w := range want {
		if !slices.ContainsFunc(r.Drift, func(f Finding) bool {
			return f.Kind == kindListener && f.Subject == w.subject && (f.Process == w.process || f.Exe == w.process) && f.PID == w.pid
		}) {
			t.Errorf("Check() drift = %v, want a listener finding %s by %s[%d]", r.Drift, w.subject, w.process, w.pid)
		}
	}
	var de *DriftError
	if err := r.Err(); !errors.As(err, &de) || !errors.Is(err, ErrDrift) || de.ExitCode() != 3 {
		t.Errorf("Report.Err() = %v, want a *DriftError with exit code 3", err)
	}
	if !strings.Contains(r.Err().Error(), "rogued") && !strings.Contains(r.Err().Error(), "lockdown.test") {
		t.Errorf("DriftError = %q, want it to name a process", r.Err())
	}
	// Apply cannot stop a stranger's process: the plan says so.
	pl, err := l.Plan(ctx)
	if err != nil || !pl.Empty() || !slices.ContainsFunc(pl.Cannot, func(f Finding) bool { return f.Subject == "tcp [::]:2323" }) {
		t.Errorf("Plan() = %+v, %v, want no changes and the rogue under Cannot", pl, err)
	}

	ticks <- time.Now()
	deadline := time.Now().Add(10 * time.Second)
	for l.DriftEvents() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Monitor did not count the drift")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// udpPair is a media socket on our side and two on the peer's.
type udpPair struct {
	agent *net.UDPConn
	peer  map[uint16]*net.UDPConn // by local port of the peer socket
}

func (u *udpPair) send(t *testing.T, from uint16, msg string) {
	t.Helper()
	if _, err := u.peer[from].WriteToUDPAddrPort([]byte(msg), netip.MustParseAddrPort(u.agent.LocalAddr().String())); err != nil {
		t.Fatalf("send %q from peer port %d: %v", msg, from, err)
	}
}

// next reads the agent's next datagram; the deadline is only a safety net
// for a broken pinhole, the assertions never depend on it.
func (u *udpPair) next(t *testing.T) string {
	t.Helper()
	u.agent.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 100)
	n, err := u.agent.Read(b)
	if err != nil {
		t.Fatalf("agent read: %v", err)
	}
	return string(b[:n])
}

func newUDPPair(t *testing.T, peer *test.Peer, local, remote netip.Addr, agentPort uint16, peerPorts ...uint16) *udpPair {
	t.Helper()
	a, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, agentPort)))
	if err != nil {
		t.Fatalf("agent socket: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	u := &udpPair{agent: a, peer: map[uint16]*net.UDPConn{}}
	for _, pp := range peerPorts {
		err := peer.Do(func() error {
			c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(remote, pp)))
			u.peer[pp] = c
			return err
		})
		if err != nil {
			t.Fatalf("peer socket %d: %v", pp, err)
		}
		t.Cleanup(func() { u.peer[pp].Close() })
	}
	return u
}

// TestPinholeTraffic is issue 5 item 6 at the API the agent calls: UDP
// between namespaces passes exactly while a call's pinhole is open. Each
// drop is shown by a datagram sent after it on an open path arriving first.
func TestPinholeTraffic(t *testing.T) {
	e := newEnv(t)
	peer := test.NewPeer(t, 2)
	l := e.lockdown(t, fmt.Sprintf(`version = 1
[rtp]
ports = [20000, 20099]
peers = ["%s/24", "%s/64"]
`, netip.PrefixFrom(peer.Local4, 24).Masked().Addr(), netip.PrefixFrom(peer.Local6, 64).Masked().Addr()), WithPinholeOwner())
	ctx := context.Background()
	if _, err := l.Apply(ctx); err != nil {
		t.Fatalf("Apply() = %v", err)
	}
	for _, fam := range []struct {
		name          string
		local, remote netip.Addr
		stranger      netip.Addr
	}{
		{"ipv4", peer.Local4, peer.Peer4[0], peer.Peer4[1]},
		{"ipv6", peer.Local6, peer.Peer6[0], peer.Peer6[1]},
	} {
		t.Run(fam.name, func(t *testing.T) {
			u := newUDPPair(t, peer, fam.local, fam.remote, 20000, 4000, 4001, 4002)
			var stranger *net.UDPConn
			if err := peer.Do(func() (err error) {
				stranger, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(fam.stranger, 4000)))
				return err
			}); err != nil {
				t.Fatalf("stranger socket: %v", err)
			}
			t.Cleanup(func() { stranger.Close() })
			peerAt := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(fam.remote, port) }
			call := "call-" + fam.name

			u.send(t, 4000, "before")
			if err := l.OpenPinhole(call, []netip.AddrPort{peerAt(4000)}, 20000); err != nil {
				t.Fatalf("OpenPinhole() = %v", err)
			}
			u.send(t, 4000, "open")
			if got := u.next(t); got != "open" {
				t.Fatalf("first datagram = %q, want %q: the one sent before the pinhole got through", got, "open")
			}
			// Replies go out through the same pinhole.
			if _, err := u.agent.WriteToUDPAddrPort([]byte("pong"), peerAt(4000)); err != nil {
				t.Fatalf("reply: %v", err)
			}
			u.peer[4000].SetReadDeadline(time.Now().Add(10 * time.Second))
			b := make([]byte, 10)
			if n, err := u.peer[4000].Read(b); err != nil || string(b[:n]) != "pong" {
				t.Fatalf("peer read = %q, %v, want pong", b[:n], err)
			}
			// Another port of the same peer, and a stranger, stay out.
			u.send(t, 4001, "wrong port")
			u.send(t, 4000, "marker")
			if got := u.next(t); got != "marker" {
				t.Fatalf("datagram = %q, want marker: another peer port got through", got)
			}
			if _, err := stranger.WriteToUDPAddrPort([]byte("stranger"), netip.MustParseAddrPort(u.agent.LocalAddr().String())); err != nil {
				t.Fatalf("stranger send: %v", err)
			}
			u.send(t, 4000, "marker2")
			if got := u.next(t); got != "marker2" {
				t.Fatalf("datagram = %q, want marker2: another address got through", got)
			}

			r, err := l.Check(ctx)
			if err != nil || !r.OK || len(r.Pinholes) != 1 {
				t.Fatalf("Check() during call = %v pinholes %v, %v, want no drift and one pinhole", r.Drift, r.Pinholes, err)
			}
			listing := test.Nft(t, "list", "table", "inet", nft.TableName)
			if !strings.Contains(listing, fmt.Sprintf("%s . 4000 . 20000", fam.remote)) {
				t.Errorf("nft listing lacks the pinhole:\n%s", listing)
			}

			// Hang-up. Conntrack has an established entry for this flow now;
			// the pinhole rule comes first, so it must not matter.
			if err := l.ClosePinhole(call); err != nil {
				t.Fatalf("ClosePinhole() = %v", err)
			}
			if err := l.ClosePinhole(call); err != nil {
				t.Errorf("second ClosePinhole() = %v, want nil", err)
			}
			if err := l.OpenPinhole(call+"-2", []netip.AddrPort{peerAt(4002)}, 20000); err != nil {
				t.Fatalf("OpenPinhole(second call) = %v", err)
			}
			u.send(t, 4000, "after hang-up")
			u.send(t, 4002, "second call")
			if got := u.next(t); got != "second call" {
				t.Fatalf("datagram = %q, want \"second call\": media passed after hang-up", got)
			}
			if err := l.ClosePinhole(call + "-2"); err != nil {
				t.Fatal(err)
			}
			if r, err := l.Check(ctx); err != nil || !r.OK || len(r.Pinholes) != 0 {
				t.Fatalf("Check() after hang-up = %v pinholes %v, %v, want none", r.Drift, r.Pinholes, err)
			}
		})
	}

	refused := []struct {
		name  string
		peers []netip.AddrPort
		ports []uint16
	}{
		{"peer outside rtp.peers", []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:4000")}, []uint16{20000}},
		{"port outside rtp.ports", []netip.AddrPort{netip.AddrPortFrom(peer.Peer4[0], 4000)}, []uint16{20100}},
		{"multicast", []netip.AddrPort{netip.MustParseAddrPort("224.0.0.1:4000")}, []uint16{20000}},
		{"port 0", []netip.AddrPort{netip.AddrPortFrom(peer.Peer4[0], 0)}, []uint16{20000}},
		{"no peers", nil, []uint16{20000}},
		{"no ports", []netip.AddrPort{netip.AddrPortFrom(peer.Peer4[0], 4000)}, nil},
	}
	for _, tt := range refused {
		if err := l.OpenPinhole("refused", tt.peers, tt.ports...); !errors.Is(err, ErrPinholeRefused) {
			t.Errorf("OpenPinhole(%s) = %v, want ErrPinholeRefused", tt.name, err)
		}
	}
	// A pinhole nobody opened is drift for the agent's own check.
	test.Nft(t, "add", "element", "inet", nft.TableName, nft.SetRTP4, fmt.Sprintf("{ %s . 5000 . 20002 }", peer.Peer4[1]))
	r, err := l.Check(ctx)
	if err != nil || !slices.ContainsFunc(r.Drift, func(f Finding) bool { return f.Kind == kindPinhole }) {
		t.Errorf("Check() with a stray pinhole = %v, %v, want pinhole drift", r.Drift, err)
	}
}

// badPolicies are refused by Parse with the line given: issue 5 item 7.
var badPolicies = []struct {
	name string
	src  string
	line int
}{
	{"malformed", "version = 1\n[[listener]]\nname = \"sip-tls\"\nport = 5061 5062\n", 4},
	{"contradictory", "version = 1\n[rtp]\nports = [16384, 16639]\n[[listener]]\nname = \"sip-udp\"\nproto = \"udp\"\nport = 16385\nfrom = [\"10.0.0.0/8\"]\n", 7},
	{"unknown key", "version = 1\n[firewall]\nloopback = \"open\"\nallow_all = true\n", 4},
}

// TestBadPolicyKeepsRules is issue 5 item 7: a malformed or contradictory
// policy is refused naming its line, and the running rules stay.
func TestBadPolicyKeepsRules(t *testing.T) {
	e := newEnv(t)
	l := e.lockdown(t, listenerHead)
	if _, err := l.Apply(context.Background()); err != nil {
		t.Fatalf("Apply() = %v", err)
	}
	before := test.Nft(t, "-a", "list", "ruleset")
	for _, tt := range badPolicies {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lockdown.toml")
			writeFile(t, path, tt.src, 0o644)
			p, err := Load(path)
			var pe *PolicyError
			if !errors.As(err, &pe) || pe.Line != tt.line {
				t.Fatalf("Load() = %v, %v, want a *PolicyError at line %d", p, err, tt.line)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("line %d", tt.line)) {
				t.Errorf("Load() error %q does not name line %d", err, tt.line)
			}
		})
	}
	if after := test.Nft(t, "-a", "list", "ruleset"); after != before {
		t.Errorf("ruleset changed by refused policies:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if d, err := l.fw.Diff(l.rules); err != nil || len(d) != 0 {
		t.Errorf("Diff() = %q, %v, want the applied rules intact", d, err)
	}
}

// TestApplyTwice is issue 5 item 8: a second apply changes nothing, and
// tables of others are untouched throughout.
func TestApplyTwice(t *testing.T) {
	e := newEnv(t)
	test.NftInput(t, `table inet theirs {
	set blocked { type ipv4_addr; elements = { 192.0.2.66 } }
	chain input { type filter hook input priority -5; policy accept; ip saddr @blocked drop; tcp dport 22 accept; }
}
table ip6 legacy {
	chain out { type filter hook output priority 10; counter; }
}
`)
	t.Cleanup(func() {
		test.Nft(t, "delete", "table", "inet", "theirs")
		test.Nft(t, "delete", "table", "ip6", "legacy")
	})
	// Rule handles and set contents identify the other tables; counters
	// count, so they are left out of the comparison.
	theirs := func() string {
		out := test.Nft(t, "-a", "list", "table", "inet", "theirs") + test.Nft(t, "-a", "list", "table", "ip6", "legacy")
		var keep []string
		for _, line := range strings.Split(out, "\n") {
			i, j := strings.Index(line, "counter packets"), strings.Index(line, " # handle")
			if i >= 0 && j > i {
				line = line[:i] + "counter" + line[j:]
			}
			keep = append(keep, line)
		}
		return strings.Join(keep, "\n")
	}
	before := theirs()

	pidfile := filepath.Join(t.TempDir(), "pid")
	svc, done := fakeDaemon(t, pidfile)
	writeFile(t, filepath.Join(e.root, "etc/init.d/S40"+svc), fmt.Sprintf("#!/bin/sh\n[ \"$1\" = stop ] && kill $(cat %s)\n", pidfile), 0o755)

	l := e.lockdown(t, listenerHead+fmt.Sprintf(`
[[service]]
name = %q

[modules]
block = ["hp-no-such-module"]

[sysctl]
"net.ipv4.conf.all.accept_redirects" = 0
"net.ipv4.conf.default.accept_redirects" = 0
"net.ipv4.icmp_echo_ignore_broadcasts" = 1
`, svc))
	ctx := context.Background()
	if err := os.WriteFile("/proc/sys/net/ipv4/conf/all/accept_redirects", []byte("1"), 0o644); err != nil {
		t.Fatalf("seed sysctl: %v", err)
	}
	pl, err := l.Plan(ctx)
	if err != nil {
		t.Fatalf("Plan() = %v", err)
	}
	kinds := map[string]bool{}
	for _, c := range pl.Changes {
		kinds[c.Kind+" "+c.Action] = true
	}
	for _, k := range []string{"firewall replace", "sysctl set", "service stop", "service disable", "module write"} {
		if !kinds[k] {
			t.Errorf("Plan() = %v, want a %q change", pl.Changes, k)
		}
	}
	if _, err := l.Apply(ctx); err != nil {
		t.Fatalf("first Apply() = %v", err)
	}
	<-done // the init script stopped the daemon
	ours := test.Nft(t, "-a", "list", "table", "inet", nft.TableName)
	conf, err := os.ReadFile(e.modprobe)
	if err != nil || !strings.Contains(string(conf), "install hp_no_such_module /bin/false") {
		t.Errorf("modprobe file = %q, %v, want the block", conf, err)
	}
	if got, _ := os.ReadFile("/proc/sys/net/ipv4/conf/all/accept_redirects"); strings.TrimSpace(string(got)) != "0" {
		t.Errorf("accept_redirects = %q after Apply, want 0", got)
	}

	pl, err = l.Apply(ctx)
	if err != nil || !pl.Empty() {
		t.Fatalf("second Apply() = %v, %v, want no changes", pl, err)
	}
	if again := test.Nft(t, "-a", "list", "table", "inet", nft.TableName); again != ours {
		t.Errorf("second Apply rewrote the table:\n%s\nthen\n%s", ours, again)
	}
	if r, err := l.Check(ctx); err != nil || !r.OK {
		t.Errorf("Check() after Apply = %v, %v, want no drift", r.Drift, err)
	}
	if after := theirs(); after != before {
		t.Errorf("other tables changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// Drift of each kind is found again.
	if err := os.WriteFile("/proc/sys/net/ipv4/conf/all/accept_redirects", []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(e.root, "etc/init.d/disabled-S40"+svc), filepath.Join(e.root, "etc/init.d/S40"+svc)); err != nil {
		t.Fatal(err)
	}
	test.Nft(t, "add", "rule", "inet", nft.TableName, "input", "tcp", "dport", "23", "accept")
	r, err := l.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{kindSysctl, kindService, kindFirewall} {
		if !slices.ContainsFunc(r.Drift, func(f Finding) bool { return f.Kind == k }) {
			t.Errorf("Check() drift = %v, want a %s finding", r.Drift, k)
		}
	}
}

// fakeDaemon starts a copy of sleep under a unique name, writing its PID to
// pidfile; done closes when it has exited.
func fakeDaemon(t *testing.T, pidfile string) (string, chan struct{}) {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatalf("no sleep program: %v", err)
	}
	name := fmt.Sprintf("hpd%d", os.Getpid())
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), name)
	writeFile(t, bin, string(b), 0o755)
	cmd := exec.Command(bin, "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		// Its exit status is our kill.
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		// Already gone when the lockdown stopped it.
		_ = cmd.Process.Kill()
		<-done
	})
	writeFile(t, pidfile, fmt.Sprint(cmd.Process.Pid), 0o644)
	return name, done
}

func TestListenConfigNoMPTCP(t *testing.T) {
	newEnv(t)
	p, err := Parse([]byte(listenerHead))
	if err != nil {
		t.Fatal(err)
	}
	lc := p.ListenConfig()
	if lc.MultipathTCP() {
		t.Errorf("ListenConfig().MultipathTCP() = true, want false")
	}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:5061")
	if err != nil {
		t.Fatalf("Listen(allowed) = %v", err)
	}
	defer ln.Close()
	raw, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var proto int
	raw.Control(func(fd uintptr) { proto, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PROTOCOL) })
	if err != nil || proto != unix.IPPROTO_TCP {
		t.Errorf("listener protocol = %d, %v, want IPPROTO_TCP", proto, err)
	}
	if _, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:5062"); !errors.Is(err, ErrListenRefused) {
		t.Errorf("Listen(not in policy) = %v, want ErrListenRefused", err)
	}
	if pc, err := lc.ListenPacket(context.Background(), "udp", "127.0.0.1:16384"); err != nil {
		t.Errorf("ListenPacket(RTP port) = %v", err)
	} else {
		pc.Close()
	}
	d := Dialer()
	if d.MultipathTCP() {
		t.Errorf("Dialer().MultipathTCP() = true, want false")
	}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("Dial() = %v", err)
	}
	c.Close()
}
