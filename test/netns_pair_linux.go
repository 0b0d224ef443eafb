package test

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// Peer is a second network namespace joined to the test's own private
// namespace by a veth pair: a remote host for probing firewall rules. The
// test's side of the link has Local4 and Local6; the peer's side has every
// address in Peer4 and Peer6, so a probe can choose its source.
type Peer struct {
	// Name is the namespace's name under /run/netns.
	Name string
	// LocalIf is the veth end in the test's namespace.
	LocalIf        string
	Local4, Local6 netip.Addr
	Peer4, Peer6   []netip.Addr
}

var peerSeq atomic.Uint32

// NewPeer creates a named namespace with `ip netns add`, links it to the
// test's namespace with a veth pair and addresses both ends from a /24 and a
// /64 of the test's own (10.77.N.0/24, fd77:0:0:N::/64); the peer gets
// addresses .2 to .(1+n) and ::2 to ::(1+n). t.Cleanup deletes the
// namespace, and with it the veth pair, by name. It needs the private
// namespace of RunInNetns and the ip program.
func NewPeer(t testing.TB, n int) *Peer {
	t.Helper()
	requireNetns(t)
	ip := requireBinary(t, "ip")
	if n < 1 || n > 200 {
		t.Fatalf("NewPeer(%d): want 1 to 200 peer addresses", n)
	}
	seq := peerSeq.Add(1)
	if seq > 250 {
		t.Fatalf("NewPeer: more than 250 peers in one test binary")
	}
	p := &Peer{
		Name:    fmt.Sprintf("hp-peer-%d-%d", os.Getpid(), seq),
		LocalIf: fmt.Sprintf("hpv%d", seq),
		Local4:  netip.AddrFrom4([4]byte{10, 77, byte(seq), 1}),
		Local6:  netip.MustParseAddr(fmt.Sprintf("fd77:0:0:%x::1", seq)),
	}
	peerIf := fmt.Sprintf("hpp%d", seq)
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command(ip, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", p.Name)
	t.Cleanup(func() {
		if out, err := exec.Command(ip, "netns", "del", p.Name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", p.Name, err, out)
		}
	})
	run("link", "add", p.LocalIf, "type", "veth", "peer", "name", peerIf, "netns", p.Name)
	run("addr", "add", p.Local4.String()+"/24", "dev", p.LocalIf)
	// nodad: duplicate address detection would hold the address tentative
	// (unusable) for a second or more.
	run("addr", "add", p.Local6.String()+"/64", "dev", p.LocalIf, "nodad")
	run("link", "set", p.LocalIf, "up")
	run("-n", p.Name, "link", "set", "lo", "up")
	for i := 0; i < n; i++ {
		a4 := netip.AddrFrom4([4]byte{10, 77, byte(seq), byte(2 + i)})
		a6 := netip.MustParseAddr(fmt.Sprintf("fd77:0:0:%x::%x", seq, 2+i))
		run("-n", p.Name, "addr", "add", a4.String()+"/24", "dev", peerIf)
		run("-n", p.Name, "addr", "add", a6.String()+"/64", "dev", peerIf, "nodad")
		p.Peer4 = append(p.Peer4, a4)
		p.Peer6 = append(p.Peer6, a6)
	}
	run("-n", p.Name, "link", "set", peerIf, "up")
	return p
}

// Do runs fn on an OS thread switched into the peer namespace. Sockets fn
// creates belong to the peer namespace and keep working after Do returns;
// fn must not start goroutines that create sockets.
func (p *Peer) Do(fn func() error) error {
	target, err := os.Open("/run/netns/" + p.Name)
	if err != nil {
		return fmt.Errorf("open peer netns: %w", err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		// This goroutine's thread changes namespace; it stays locked, and so
		// is thrown away when the goroutine ends, unless it made it back.
		runtime.LockOSThread()
		self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			errc <- fmt.Errorf("open own netns: %w", err)
			return
		}
		defer self.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns into %s: %w", p.Name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns back from %s: %w (after fn: %v)", p.Name, err, ferr)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
