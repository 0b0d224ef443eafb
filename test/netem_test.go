//go:build linux

package test

import (
	"net"
	"net/netip"
	"sort"
	"testing"
	"time"
)

// TestNetem sends 1000 UDP datagrams, one every 5 ms, from this namespace
// to a peer namespace over the veth that StartNetem impairs: about 5 % are
// lost, the rest arrive delayed 40 ms ± 20 ms (both directions cross the
// queue, but only the outbound one is measured here), and some overtake
// others.
func TestNetem(t *testing.T) {
	if testing.Short() {
		t.Skip("short: real servers end to end; make test runs it")
	}
	peer := NewPeer(t, 1)
	var rx *net.UDPConn
	if err := peer.Do(func() error {
		var err error
		rx, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(peer.Peer4[0], 0)))
		return err
	}); err != nil {
		t.Fatalf("listen in peer: %v", err)
	}
	defer rx.Close()
	tx, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(peer.Local4, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	spec := NetemSpec{Delay: 40 * time.Millisecond, Jitter: 20 * time.Millisecond, Loss: 0.05, Seed: 1}
	n := StartNetem(t, peer.LocalIf, spec)

	const count = 1000
	sent := make([]time.Time, count)
	type arrival struct {
		seq int
		at  time.Time
	}
	got := make(chan arrival, count)
	go func() {
		buf := make([]byte, 64)
		for {
			k, err := rx.Read(buf)
			if err != nil {
				close(got)
				return
			}
			if k == 2 {
				got <- arrival{int(buf[0])<<8 | int(buf[1]), time.Now()}
			}
		}
	}()
	to := rx.LocalAddr().(*net.UDPAddr)
	tick := time.NewTicker(5 * time.Millisecond)
	for i := range count {
		<-tick.C
		sent[i] = time.Now()
		if _, err := tx.WriteToUDP([]byte{byte(i >> 8), byte(i)}, to); err != nil {
			t.Fatal(err)
		}
	}
	tick.Stop()
	// Everything still in flight lands within Delay+Jitter; a datagram
	// marks the end of the wait (the emulator holds it as long as any).
	var arr []arrival
	deadline := time.After(spec.Delay + spec.Jitter + 2*time.Second)
collect:
	for len(arr) < count {
		select {
		case a := <-got:
			arr = append(arr, a)
		case <-deadline:
			break collect
		}
	}
	var delays []float64
	reordered := 0
	for i, a := range arr {
		delays = append(delays, float64(a.at.Sub(sent[a.seq]))/float64(time.Millisecond))
		if i > 0 && a.seq < arr[i-1].seq {
			reordered++
		}
	}
	sort.Float64s(delays)
	lost := count - len(arr)
	t.Logf("%d of %d lost, %d reordered, delay min %.1f median %.1f max %.1f ms; emulator saw %d, dropped %d",
		lost, count, reordered, delays[0], delays[len(delays)/2], delays[len(delays)-1], n.Seen.Load(), n.Dropped.Load())
	if lost < 25 || lost > 80 {
		t.Fatalf("%d of %d lost, want about 5 %% (25..80)", lost, count)
	}
	// The shape of the impairment is checked on what the emulator drew;
	// the wall clock can only add to it, so it gives lower bounds (nothing
	// arrives before its delay) and a generous upper one (nothing is held
	// for good), whatever else loads the machine.
	var drawn []float64
	for _, d := range n.Delays() {
		drawn = append(drawn, float64(d)/float64(time.Millisecond))
	}
	sort.Float64s(drawn)
	if len(drawn) < count-80 {
		t.Fatalf("emulator recorded %d delays, want one per packet passed", len(drawn))
	}
	if lo, med, hi := drawn[len(drawn)/50], drawn[len(drawn)/2], drawn[len(drawn)*49/50]; lo < 20 || lo > 23 || med < 37 || med > 43 || hi < 57 || hi > 60 {
		t.Fatalf("drawn delay 2nd/50th/98th percentile %.1f/%.1f/%.1f ms, want about 20.8/40/59.2", lo, med, hi)
	}
	if lo, med, hi := delays[len(delays)/50], delays[len(delays)/2], delays[len(delays)-1]; lo < 19 || med < 35 || hi > drawn[len(drawn)-1]+1000 {
		t.Fatalf("measured delay 2nd/50th percentile and max %.1f/%.1f/%.1f ms, want at least 19/35 and under %.0f", lo, med, hi, drawn[len(drawn)-1]+1000)
	}
	if reordered == 0 {
		t.Fatalf("no datagram overtook another, want some (jitter 20 ms exceeds the 5 ms spacing)")
	}
}
