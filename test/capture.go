package test

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const captureReadyTimeout = 10 * time.Second

// Capture is a tcpdump packet capture started by StartCapture.
type Capture struct {
	proc    *process
	file    string
	stopped bool // Stop was called
}

// CapturedPacket is one TCP or UDP packet from a capture.
type CapturedPacket struct {
	Time time.Time
	// Proto is "udp" or "tcp".
	Proto            string
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	// Payload is the transport payload, after the UDP or TCP header.
	Payload []byte
}

// StartCapture runs tcpdump on iface ("lo" inside the test namespace) with a
// BPF filter such as "udp portrange 20000-20019", writing every packet to a
// pcap file, and waits until tcpdump reports it is listening. Stop it with
// Stop before reading Packets.
func StartCapture(t testing.TB, iface, bpfFilter string) *Capture {
	t.Helper()
	requireNetns(t)
	bin := requireBinary(t, "tcpdump")
	dir := t.TempDir()
	c := &Capture{file: filepath.Join(dir, "capture.pcap")}
	args := []string{
		"-i", iface, "-n", "-s", "0",
		// -U flushes each packet to the file as it is written, and
		// --immediate-mode hands it over without the 1 s block timeout
		// that would also delay the exit on SIGTERM. -Z root keeps
		// tcpdump from dropping to a user that cannot write in the test's
		// temp dir.
		"-U", "--immediate-mode", "-Z", "root",
		"-w", c.file,
	}
	if bpfFilter != "" {
		args = append(args, bpfFilter)
	}
	logPath := filepath.Join(dir, "tcpdump.log")
	c.proc = startProcess(t, logPath, dir, bin, args...)
	err := c.proc.waitFor(captureReadyTimeout, func() error {
		b, err := os.ReadFile(logPath)
		if err != nil {
			return err
		}
		if !bytes.Contains(b, []byte("listening on")) {
			return errors.New("tcpdump has not said \"listening on\" yet")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("StartCapture(%s, %q): %v\n%s", iface, bpfFilter, err, c.proc.logTail(2000))
	}
	return c
}

// WaitFor polls the capture file while tcpdump writes it, until done
// accepts the packets captured so far or timeout passes: a probe for "enough
// media has flowed" that needs no sleep.
func (c *Capture) WaitFor(t testing.TB, timeout time.Duration, done func([]CapturedPacket) bool) {
	t.Helper()
	var n int
	err := c.proc.waitFor(timeout, func() error {
		b, err := os.ReadFile(c.file)
		if err != nil {
			return err
		}
		pkts, err := parsePcap(b)
		if err != nil {
			return err // no file header yet
		}
		n = len(pkts)
		if !done(pkts) {
			return fmt.Errorf("condition not met by %d packets", n)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Capture.WaitFor: %v\n%s", err, c.proc.logTail(2000))
	}
}

// File is the pcap file tcpdump writes, for tshark or a failure artefact.
func (c *Capture) File() string { return c.file }

// Stop ends the capture: SIGTERM makes tcpdump flush and close the file.
func (c *Capture) Stop(t testing.TB) {
	t.Helper()
	if c.stopped {
		return
	}
	c.stopped = true
	// ESRCH only means tcpdump already exited; waiting reports that.
	_ = syscall.Kill(c.proc.pid(), syscall.SIGTERM)
	select {
	case <-c.proc.done:
	case <-time.After(stopGrace):
		t.Fatalf("Capture.Stop: tcpdump did not exit within %v", stopGrace)
	}
	// tcpdump exits 0 on SIGTERM; a non-zero exit means it failed.
	if err := c.proc.waitErr; err != nil {
		t.Fatalf("Capture.Stop: tcpdump: %v\n%s", err, c.proc.logTail(2000))
	}
}

// Packets parses the capture file; call Stop first.
func (c *Capture) Packets(t testing.TB) []CapturedPacket {
	t.Helper()
	if !c.stopped {
		t.Fatalf("Capture.Packets: call Stop first, the file is still being written")
	}
	b, err := os.ReadFile(c.file)
	if err != nil {
		t.Fatalf("Capture.Packets: %v", err)
	}
	pkts, err := parsePcap(b)
	if err != nil {
		t.Fatalf("Capture.Packets: %s: %v", c.file, err)
	}
	return pkts
}

// Summary is one line per packet, for failure messages.
func (c *Capture) Summary(t testing.TB) string {
	t.Helper()
	var s strings.Builder
	for _, p := range c.Packets(t) {
		s.WriteString(p.String())
		s.WriteByte('\n')
	}
	return s.String()
}

// String formats p like "udp 127.0.0.1:20000 > 127.0.0.1:20002 172 bytes".
func (p CapturedPacket) String() string {
	return p.Proto + " " + netip.AddrPortFrom(p.Src, p.SrcPort).String() + " > " +
		netip.AddrPortFrom(p.Dst, p.DstPort).String() + " " + strconv.Itoa(len(p.Payload)) + " bytes"
}
