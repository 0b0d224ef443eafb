package sip

import (
	"strconv"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// withVia gives r a top Via with branch and a source address.
func withVia(r *sip.Request, branch, source string) *sip.Request {
	v := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "TLS", Host: "127.0.0.1", Port: 5061, Params: sip.NewParams()}
	if branch != "" {
		v.Params.Add("branch", branch)
	}
	r.PrependHeader(v)
	r.SetSource(source)
	return r
}

// TestACKOfRefusal: RFC 3261 §17.1.1.3 — the ACK of a final non-2xx
// response repeats the INVITE's top Via (its branch): within Timer H it
// is absorbed as the INVITE's transaction would absorb it; an ACK of
// another transaction, source or call is not, nor one after Timer H.
func TestACKOfRefusal(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	const flow = "127.0.0.1:5061"
	var r recentTxs
	r.remember(withVia(request(sip.INVITE, "call-1", "ft", "", 1), "z9hG4bK-inv1", flow), now)
	tests := []struct {
		name string
		ack  *sip.Request
		at   time.Time
		want bool
	}{
		{"ACK of the refusal", withVia(request(sip.ACK, "call-1", "ft", "tt", 1), "z9hG4bK-inv1", flow), now.Add(time.Second), true},
		{"retransmitted ACK", withVia(request(sip.ACK, "call-1", "ft", "tt", 1), "z9hG4bK-inv1", flow), now.Add(2 * time.Second), true},
		{"at Timer H", withVia(request(sip.ACK, "call-1", "ft", "tt", 1), "z9hG4bK-inv1", flow), now.Add(recentTxLife), true},
		{"after Timer H", withVia(request(sip.ACK, "call-1", "ft", "tt", 1), "z9hG4bK-inv1", flow), now.Add(recentTxLife + time.Millisecond), false},
		{"another branch (an ACK for a 2xx)", withVia(request(sip.ACK, "call-1", "ft", "tt", 1), "z9hG4bK-other", flow), now.Add(time.Second), false},
		{"another source", withVia(request(sip.ACK, "call-1", "ft", "tt", 1), "z9hG4bK-inv1", "127.0.0.1:5099"), now.Add(time.Second), false},
		{"another call", withVia(request(sip.ACK, "call-2", "ft", "tt", 1), "z9hG4bK-inv1", flow), now.Add(time.Second), false},
		{"no branch", withVia(request(sip.ACK, "call-1", "ft", "tt", 1), "", flow), now.Add(time.Second), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.ackOfRefusal(tt.ack, tt.at); got != tt.want {
				t.Errorf("ackOfRefusal() = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestRecentTxsBounded: a flood of INVITEs keeps at most recentTxsMax
// transactions; the oldest go first.
func TestRecentTxsBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var r recentTxs
	const n = 3 * recentTxsMax
	for i := range n {
		r.remember(withVia(request(sip.INVITE, "call-"+strconv.Itoa(i), "ft", "", 1), "z9hG4bK-"+strconv.Itoa(i), "127.0.0.1:5061"), now)
	}
	if len(r.seen) != recentTxsMax || r.n != recentTxsMax {
		t.Fatalf("after %d INVITEs: %d remembered (%d in the ring), want %d", n, len(r.seen), r.n, recentTxsMax)
	}
	ack := func(i int) bool {
		return r.ackOfRefusal(withVia(request(sip.ACK, "call-"+strconv.Itoa(i), "ft", "tt", 1), "z9hG4bK-"+strconv.Itoa(i), "127.0.0.1:5061"), now)
	}
	if ack(n - recentTxsMax - 1) {
		t.Errorf("ackOfRefusal(INVITE %d) = true, want it forgotten", n-recentTxsMax-1)
	}
	if !ack(n-recentTxsMax) || !ack(n-1) {
		t.Errorf("ackOfRefusal of the newest %d INVITEs = false, want them remembered", recentTxsMax)
	}
}

// TestRememberRetransmission: RFC 3261 §17.2 — a request with the branch,
// source and Call-ID of one seen within Timer H is a retransmission of it
// (a stateless refusal answers it again but counts it once); after Timer
// H, or with another branch, it is a request of its own.
func TestRememberRetransmission(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	req := func(branch string) *sip.Request {
		return withVia(request(sip.OPTIONS, "call-1", "ft", "", 1), branch, "127.0.0.9:5060")
	}
	var r recentTxs
	steps := []struct {
		name string
		req  *sip.Request
		at   time.Time
		want bool
	}{
		{"first", req("z9hG4bK-a"), now, false},
		{"retransmitted", req("z9hG4bK-a"), now.Add(500 * time.Millisecond), true},
		{"another branch", req("z9hG4bK-b"), now.Add(time.Second), false},
		{"after Timer H of the last copy", req("z9hG4bK-a"), now.Add(500*time.Millisecond + recentTxLife + time.Millisecond), false},
		{"no branch", req(""), now, false},
		{"no branch again", req(""), now, false},
	}
	for _, s := range steps {
		if got := r.remember(s.req, s.at); got != s.want {
			t.Errorf("%s: remember() = %v, want %v", s.name, got, s.want)
		}
	}
}
