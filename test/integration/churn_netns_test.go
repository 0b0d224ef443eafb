//go:build linux

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/hal/nft"
	"github.com/hardphone/hardphone/test"
)

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("read /proc/self/fd: %v", err)
	}
	return len(ents)
}

// TestCallChurnReleasesEverything: a few hundred calls come and go (some
// with media both ways, some ended before their media is up, some
// refused at the cap) under a lockdown policy, and afterwards the agent
// holds what it held before: goroutines, file descriptors, RTP ports,
// pinholes, call slots and recordings (the inbound sink of every call is
// closed).
func TestCallChurnReleasesEverything(t *testing.T) {
	e := newHostileEnv(t)
	lo, hi := nextPorts()
	policy := fmt.Sprintf("version = 1\n\n[firewall]\nloopback = \"open\"\n\n[rtp]\nports = [%d, %d]\npeers = [\"127.0.0.0/8\"]\n", lo, hi)
	policyPath := filepath.Join(t.TempDir(), "lockdown.toml")
	if err := os.WriteFile(policyPath, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteTable(t, nft.TableName) })
	sinks := &sinkCount{}
	// Four calls up at once, each answered by itself: no call waiting.
	path := e.writeConfig(t, phoneConf{user: "alice", mediaSecurity: "sdes", portMin: lo, portMax: hi, extra: "call_waiting = \"parallel\"\n",
		top: fmt.Sprintf("lockdown_policy = %q\nlockdown_check_interval = \"1h\"\n", policyPath)})
	p := startPhoneFrom(t, path, sinks.inbound)
	f := e.hostile.Flow(t, 10*time.Second)
	p.waitRegistered(t)
	peer := newSRTPPeer(t)

	call := func(media bool) {
		t.Helper()
		c := newHCall(t, f)
		res := c.invite(peer.offer())
		if res.Status() != 200 {
			t.Fatalf("INVITE answered %q, want 200", res.Start)
		}
		c.ack()
		if media {
			waitFor(t, 10*time.Second, func() bool {
				cs := callsByID(p, c.callID)
				return len(cs) == 1 && cs[0].Status().State == "established"
			})
			key, addr := phoneMedia(t, res.Body)
			stop := peer.talk(t, addr)
			peer.expectMedia(t, key)
			cs := callsByID(p, c.callID)
			waitFor(t, 10*time.Second, func() bool { return cs[0].Media().Stats().PacketsReceived > 0 })
			if els := setElements(t, nft.SetRTP4); len(els) == 0 {
				t.Fatalf("no pinhole while a call is up")
			}
			stop()
		}
		if res := c.inDialog("BYE", c.from, c.to, ""); res.Status() != 200 {
			t.Fatalf("BYE answered %q, want 200", res.Start)
		}
	}
	settled := func() {
		t.Helper()
		waitFor(t, 30*time.Second, func() bool { return len(p.acct.Calls()) == 0 && len(setElements(t, nft.SetRTP4)) == 0 })
	}
	// Warm up: whatever is made once per agent (pools, the flow) is made.
	call(true)
	call(false)
	settled()
	runtime.GC()
	baseG, baseFD := runtime.NumGoroutine(), openFDs(t)
	if n := boundPorts(t, p); n != 0 {
		t.Fatalf("%d RTP ports bound with no call", n)
	}

	const calls = 300
	for i := range calls {
		call(i%20 == 0)
	}
	// At the cap: four calls up, the fifth refused before binding a port.
	var up []*hcall
	for range 4 {
		c := newHCall(t, f)
		if res := c.invite(peer.offer()); res.Status() != 200 {
			t.Fatalf("INVITE answered %q, want 200", res.Start)
		}
		c.ack()
		up = append(up, c)
	}
	if res := newHCall(t, f).invite(peer.offer()); res.Status() != 486 {
		t.Fatalf("fifth INVITE answered %q, want 486", res.Start)
	}
	for _, c := range up {
		if res := c.inDialog("BYE", c.from, c.to, ""); res.Status() != 200 {
			t.Fatalf("BYE answered %q, want 200", res.Start)
		}
	}
	settled()

	if n := boundPorts(t, p); n != 0 {
		t.Errorf("%d RTP ports still bound after %d calls", n, calls)
	}
	var g, fd int
	// Goroutines of ended transactions wind down on their own timers.
	deadline := time.Now().Add(60 * time.Second)
	for {
		runtime.GC()
		g, fd = runtime.NumGoroutine(), openFDs(t)
		if (g <= baseG+2 && fd <= baseFD) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("after %d calls: goroutines %d (baseline %d), fds %d (baseline %d)", calls, g, baseG, fd, baseFD)
	if g > baseG+2 {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines = %d after the churn, baseline %d\n%s", g, baseG, buf[:runtime.Stack(buf, true)])
	}
	if fd > baseFD {
		t.Errorf("open fds = %d after the churn, baseline %d", fd, baseFD)
	}
	if open := sinks.open(); open != 0 {
		t.Errorf("%d inbound recordings still open after their calls ended", open)
	}
	// The slots came back: the cap admits as many calls as before.
	for range 4 {
		call(false)
	}
	if st := p.acct.Status(); st.Counters.CallCap != 1 {
		t.Errorf("call_cap = %d, want 1 (the one INVITE beyond the cap)", st.Counters.CallCap)
	}
}

// sinkCount stands where `hardphone run --record-dir` puts a recording: an
// audio sink per inbound call, closed when the call is done.
type sinkCount struct {
	mu    sync.Mutex
	count int
}

func (s *sinkCount) open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

func (s *sinkCount) inbound(c *sip.Call) sip.CallOptions {
	s.mu.Lock()
	s.count++
	s.mu.Unlock()
	go func() {
		<-c.Done()
		s.mu.Lock()
		s.count--
		s.mu.Unlock()
	}()
	return sip.CallOptions{}
}

// TestMediaInactivityEndsCall: a peer that stops sending is hung up on
// after media.inactivity_timeout with a BYE that carries a Reason; the
// call's slot and ports come back.
func TestMediaInactivityEndsCall(t *testing.T) {
	e := newHostileEnv(t)
	p, f := hostilePhone(t, e, phoneConf{media: "inactivity_timeout = \"2s\"\n"})
	peer := newSRTPPeer(t)
	c := newHCall(t, f)
	key, addr := establish(t, p, c, peer)
	call := oneCall(t, p, c.callID)
	stop := peer.talk(t, addr)
	peer.expectMedia(t, key)
	waitFor(t, 10*time.Second, func() bool { return call.Media().Stats().PacketsReceived > 10 })
	stop()
	bye := f.Next(t, 15*time.Second, test.SIPRequestOf("BYE", c.callID))
	respond(t, f, bye, 200, "OK", "", "")
	if r := bye.Get("Reason"); !strings.Contains(r, "inactivity") {
		t.Errorf("BYE Reason = %q, want one naming the media inactivity", r)
	}
	<-call.Done()
	if r := call.EndReason(); r != "media inactivity" {
		t.Errorf("end reason = %q, want media inactivity", r)
	}
	if got := p.acct.Status().Counters.MediaInactive; got != 1 {
		t.Errorf("media_inactive = %d, want 1", got)
	}
	if n := boundPorts(t, p); n != 0 {
		t.Errorf("%d RTP ports still bound", n)
	}
}
