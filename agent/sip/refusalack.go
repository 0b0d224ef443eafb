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
// cap, an INVITE flood, a busy or declined call). The account remembers
// the transactions of the INVITEs it received lately (recentTxs) so their
// ACKs are absorbed as the transaction would have. (An ACK for a 2xx
// carries a new branch, §13.2.2.4, and finds its dialog.)

const (
	// recentTxsMax is how many transactions a recentTxs remembers unless
	// told otherwise; past its size the oldest is forgotten (an INVITE's
	// ACK that still comes is then counted as foreign, a retransmission
	// refused again counted again: noise, never a request acted on).
	recentTxsMax = 256
	// recentTxLife is Timer H = 64*T1 (T1 = 500 ms, RFC 3261 §17.1.1.1),
	// the longest a server transaction lasts.
	recentTxLife = 64 * 500 * time.Millisecond
)

// txID names a server transaction as a retransmission or an INVITE's ACK
// repeats it: the top Via branch, the source the request came from and
// the Call-ID.
type txID struct {
	branch, source, callID string
}

type recentTx struct {
	tx txID
	at time.Time
}

// recentTxs is a bounded FIFO of server transactions, oldest first: what
// a transaction layer would still hold, without holding it. The zero value
// is ready to use and remembers recentTxsMax; its memory is allocated on
// first use.
type recentTxs struct {
	// size is how many transactions to remember; 0 means recentTxsMax.
	// Set before first use.
	size int

	mu   sync.Mutex // guards the fields below
	ring []recentTx // len size once used
	next int        // where the next entry goes; the oldest when full
	n    int        // entries held
	seen map[txID]int
}

// txOf names req's transaction; ok is false for a request without a
// branch, which nothing can be matched to.
func txOf(req *sip.Request) (txID, bool) {
	v := req.Via()
	if v == nil {
		return txID{}, false
	}
	b, _ := v.Params.Get("branch")
	if b == "" {
		return txID{}, false
	}
	return txID{branch: b, source: req.Source(), callID: callID(req)}, true
}

// remember records req's transaction as seen at now and reports whether it
// had been seen within recentTxLife before: a retransmission.
func (r *recentTxs) remember(req *sip.Request, now time.Time) (again bool) {
	tx, ok := txOf(req)
	if !ok {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		if r.size <= 0 {
			r.size = recentTxsMax
		}
		r.ring, r.seen = make([]recentTx, r.size), make(map[txID]int, r.size)
	}
	if i, ok := r.seen[tx]; ok {
		again = now.Sub(r.ring[i].at) <= recentTxLife
		r.ring[i].at = now
		return again
	}
	if r.n == r.size {
		old := r.ring[r.next].tx
		if r.seen[old] == r.next {
			delete(r.seen, old)
		}
	} else {
		r.n++
	}
	r.ring[r.next] = recentTx{tx: tx, at: now}
	r.seen[tx] = r.next
	r.next = (r.next + 1) % r.size
	return false
}

// ackOfRefusal reports whether ack belongs to the transaction of an INVITE
// remembered within recentTxLife of now: it acknowledges a final non-2xx
// response. The INVITE stays remembered: the transaction would absorb
// retransmissions of its ACK as well.
func (r *recentTxs) ackOfRefusal(ack *sip.Request, now time.Time) bool {
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
	return now.Sub(r.ring[i].at) <= recentTxLife
}
