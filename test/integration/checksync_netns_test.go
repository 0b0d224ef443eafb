package integration

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/test"
)

// notify is a NOTIFY as Kamailio's tm.t_uac_start sends it for the
// fleet's check-sync: out of dialog, no subscription behind it.
func notify(local, remote, callID, event, toUser, toTag string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "NOTIFY sip:alice@%s;transport=tls SIP/2.0\r\n", remote)
	fmt.Fprintf(&b, "Via: SIP/2.0/TLS %s;branch=z9hG4bK%s\r\n", local, randHex(8))
	fmt.Fprintf(&b, "Max-Forwards: 70\r\nFrom: <sip:hpfleet@hostile.test>;tag=%s\r\n", randHex(6))
	to := "<sip:" + toUser + "@hostile.test>"
	if toTag != "" {
		to += ";tag=" + toTag
	}
	fmt.Fprintf(&b, "To: %s\r\nCall-ID: %s\r\nCSeq: 1 NOTIFY\r\n", to, callID)
	if event != "" {
		fmt.Fprintf(&b, "Event: %s\r\n", event)
	}
	b.WriteString("Subscription-State: terminated;reason=noresource\r\nContent-Length: 0\r\n\r\n")
	return b.String()
}

// TestCheckSyncNotify: over the registrar's own flow a NOTIFY with
// Event: check-sync for the account's user is accepted (200) and tells
// the agent; another event package is 489, another user 404, an
// in-dialog NOTIFY 481, and a NOTIFY from anywhere but the flow 403,
// none of them telling the agent anything.
func TestCheckSyncNotify(t *testing.T) {
	e := newHostileEnv(t)
	p, f := hostilePhone(t, e, phoneConf{top: `listen = ["udp:127.0.0.1:5091"]
listen_peer = "127.0.0.1:5097"`})
	send := func(event, toUser, toTag string) *test.SIPMessage {
		t.Helper()
		id := "cs-" + randHex(8) + "@test"
		f.Write(t, notify(f.Local(), f.Remote(), id, event, toUser, toTag))
		return f.Next(t, 10*time.Second, test.SIPResponseTo("NOTIFY", id, true))
	}
	for _, tt := range []struct {
		name, event, user, tag string
		want                   int
	}{
		{"check-sync", "check-sync", "alice", "", 200},
		{"check-sync with a parameter", "check-sync;reboot=false", "alice", "", 200},
		{"another package", "presence", "alice", "", 489},
		{"case differs (byte-by-byte)", "Check-Sync", "alice", "", 489},
		{"no Event header", "", "alice", "", 489},
		{"another user", "check-sync", "bob", "", 404},
		{"in a dialog that is not ours", "check-sync", "alice", "evil-tag", 481},
	} {
		t.Run(tt.name, func(t *testing.T) {
			drain(p.events)
			res := send(tt.event, tt.user, tt.tag)
			if res.Status() != tt.want {
				t.Fatalf("NOTIFY (%s) answered %q, want %d", tt.name, res.Start, tt.want)
			}
			got := seen(p.events, sip.EventCheckSync, time.Second)
			if got != (tt.want == 200) {
				t.Fatalf("NOTIFY (%s): check-sync event seen = %v, want %v", tt.name, got, tt.want == 200)
			}
		})
	}
	// A plain listener's datagram from anywhere but its one peer: the
	// source policy refuses it before the NOTIFY is read.
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5091})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	drain(p.events)
	msg := strings.Replace(notify(c.LocalAddr().String(), "127.0.0.1:5091", "cs-foreign@test", "check-sync", "alice", ""), "SIP/2.0/TLS", "SIP/2.0/UDP", 1)
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("foreign NOTIFY: no answer: %v", err)
	}
	if line, _, _ := strings.Cut(string(buf[:n]), "\r\n"); !strings.HasPrefix(line, "SIP/2.0 403") {
		t.Fatalf("NOTIFY from a foreign source answered %q, want 403", line)
	}
	if seen(p.events, sip.EventCheckSync, time.Second) {
		t.Fatalf("a foreign NOTIFY told the agent to check sync")
	}
	st := p.acct.Status().Counters
	if st.CheckSync != 2 || st.NotifyRefused != 4 || st.ForeignSource < 1 {
		t.Fatalf("counters check_sync=%d notify_refused=%d foreign_source=%d, want 2, 4, >= 1", st.CheckSync, st.NotifyRefused, st.ForeignSource)
	}
}

// drain empties an event channel.
func drain(ch chan sip.Event) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// seen reports whether an event of kind arrives within d. The answer to
// the NOTIFY is sent before the event, so a short wait is enough for one
// that comes; d bounds the wait for one that must not.
func seen(ch chan sip.Event, kind sip.EventKind, d time.Duration) bool {
	deadline := time.After(d)
	for {
		select {
		case ev := <-ch:
			if ev.Kind == kind {
				return true
			}
		case <-deadline:
			return false
		}
	}
}
