package sip

import (
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// RFC 3261 §17.1.1.3: the ACK that acknowledges a final non-2xx response
// to an INVITE belongs to the INVITE's transaction: "The ACK MUST contain
// a single Via header field, and this MUST be equal to the top Via header
// field of the original request", so it carries the INVITE's branch; the
// server transaction absorbs it in the Completed state (§17.2.1) for Timer
// H, 64*T1. sipgo ends a server transaction over a reliable transport (the
// registrar's TLS flow) as soon as the handler returns, so that ACK
// reaches the core as a request of its own, names no dialog (the INVITE
// was refused), and would be counted as a foreign-dialog attack: one false
// security event for every call the phone refuses over its flow (a call
// cap, an INVITE flood, a busy or declined call). recentInvites remembers
// the transactions of the INVITEs the account received lately so their
// ACKs are absorbed as the transaction would have. (An ACK for a 2xx
// carries a new branch, §13.2.2.4, and finds its dialog.)

const (
	// recentInvitesMax bounds the INVITE transactions remembered; past it
	// the oldest is forgotten (its ACK, if it still comes, is then counted
	// as foreign: noise, never a request acted on).
	recentInvitesMax = 256
	// recentInviteLife is Timer H = 64*T1 (T1 = 500 ms, RFC 3261 §17.1.1.1).
	recentInviteLife = 64 * 500 * time.Millisecond
)

// inviteTx names an INVITE's server transaction as its ACK repeats it:
// the top Via branch, the source the request came from and the Call-ID.
type inviteTx struct {
	branch, source, callID string
}

type recentInvite struct {
	tx inviteTx
	at time.Time
}

// recentInvites is a bounded FIFO of INVITE transactions, oldest first.
// The zero value is ready to use.
type recentInvites struct {
	mu   sync.Mutex // guards the fields below
	ring [recentInvitesMax]recentInvite
	next int // where the next entry goes; the oldest when full
	n    int // entries held
	seen map[inviteTx]int
}

// txOf names req's transaction; ok is false for a request without a
// branch, which no ACK can be matched to.
func txOf(req *sip.Request) (inviteTx, bool) {
	v := req.Via()
	if v == nil {
		return inviteTx{}, false
	}
	b, _ := v.Params.Get("branch")
	if b == "" {
		return inviteTx{}, false
	}
	return inviteTx{branch: b, source: req.Source(), callID: callID(req)}, true
}

// add remembers an INVITE received at now.
func (r *recentInvites) add(req *sip.Request, now time.Time) {
	tx, ok := txOf(req)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = make(map[inviteTx]int, recentInvitesMax)
	}
	if i, ok := r.seen[tx]; ok {
		r.ring[i].at = now // a retransmission the transaction did not absorb
		return
	}
	if r.n == recentInvitesMax {
		old := r.ring[r.next].tx
		if r.seen[old] == r.next {
			delete(r.seen, old)
		}
	} else {
		r.n++
	}
	r.ring[r.next] = recentInvite{tx: tx, at: now}
	r.seen[tx] = r.next
	r.next = (r.next + 1) % recentInvitesMax
}

// ackOfRefusal reports whether ack acknowledges a final response to an
// INVITE received within Timer H of now. The INVITE stays remembered: the
// transaction would absorb retransmissions of its ACK as well.
func (r *recentInvites) ackOfRefusal(ack *sip.Request, now time.Time) bool {
	tx, ok := txOf(ack)
	if !ok {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	i, ok := r.seen[tx]
	if !ok {
		return false
	}
	return now.Sub(r.ring[i].at) <= recentInviteLife
}
