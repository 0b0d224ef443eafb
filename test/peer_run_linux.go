package test

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// Run calls fn on an OS thread switched into the peer namespace, for
// starting peer programs there: StartKamailio and StartBaresip fork on the
// calling thread, so the processes they start, and the sockets their
// readiness probes open, live in the peer namespace, reached over the veth.
//
// Unlike Do, fn may fail the test with t.Fatalf: Run then switches the
// thread back and stops the test too. The thread is returned to the
// scheduler switched back rather than discarded, because the peers were
// started with Pdeathsig, which fires when the forking thread exits.
func (p *Peer) Run(t testing.TB, fn func()) {
	t.Helper()
	target, err := os.Open("/run/netns/" + p.Name)
	if err != nil {
		t.Fatalf("Peer.Run: open peer netns: %v", err)
	}
	defer target.Close()
	var (
		returned bool  // fn returned rather than calling runtime.Goexit
		nsErr    error // failure to switch namespace
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			nsErr = fmt.Errorf("open own netns: %w", err)
			return
		}
		defer self.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			nsErr = fmt.Errorf("setns into %s: %w", p.Name, err)
			return
		}
		// Deferred, so it also runs when fn calls t.FailNow.
		defer func() {
			if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
				// Still locked: the thread dies with this goroutine and
				// never carries the peer namespace back into the pool.
				nsErr = fmt.Errorf("setns back from %s: %w", p.Name, err)
				return
			}
			runtime.UnlockOSThread()
		}()
		fn()
		returned = true
	}()
	<-done
	if nsErr != nil {
		t.Fatalf("Peer.Run: %v", nsErr)
	}
	if !returned {
		// fn failed the test and gave up its goroutine.
		t.FailNow()
	}
}

// BaresipListenIP makes baresip bind SIP, RTP and ctrl_tcp to ip and offer
// it in its SDP; the default is 127.0.0.1. With a Peer address, start
// baresip inside Peer.Run.
func BaresipListenIP(ip string) BaresipOption {
	return func(o *baresipOptions) error {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("listen IP %q is not an IP address", ip)
		}
		o.ip = ip
		return nil
	}
}
