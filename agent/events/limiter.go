package events

import (
	"container/list"
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// Limits are the Recorder's rate limits: a token bucket per kind, and one
// per kind and peer address (the port is ignored: a scanner changes it).
// An event passes only when both its buckets hold a token.
type Limits struct {
	// KindRate is the sustained events per second of one kind; KindBurst
	// how many may come at once.
	KindRate  float64
	KindBurst int
	// PeerRate and PeerBurst are the same for one kind from one peer.
	PeerRate  float64
	PeerBurst int
	// MaxPeers bounds the per-peer table; the least recently seen peer is
	// forgotten first. A spray from many addresses then meets the
	// per-kind bucket only, which still bounds what is written.
	MaxPeers int
}

// DefaultLimits allow 30 events of a kind at once and one every two
// seconds after (1800 an hour), and 5 at once and one every ten seconds
// from one peer.
var DefaultLimits = Limits{KindRate: 0.5, KindBurst: 30, PeerRate: 0.1, PeerBurst: 5, MaxPeers: 1024}

func (l Limits) check() error {
	if l.KindRate <= 0 || l.PeerRate <= 0 || l.KindBurst < 1 || l.PeerBurst < 1 || l.MaxPeers < 1 || l.MaxPeers > 1<<20 {
		return fmt.Errorf("limits %+v: rates must be > 0, bursts >= 1, peers in 1..%d", l, 1<<20)
	}
	return nil
}

// tokenBucket holds up to burst tokens, refilled at rate per second.
type tokenBucket struct {
	tokens float64
	last   time.Time
}

func (b *tokenBucket) refill(now time.Time, rate float64, burst int) {
	if b.last.IsZero() {
		b.tokens, b.last = float64(burst), now
		return
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(float64(burst), b.tokens+d.Seconds()*rate)
		b.last = now
	}
}

// suppression counts what one kind's limit held back since its last
// summary.
type suppression struct {
	count    uint64
	first    time.Time
	lastPeer netip.AddrPort
}

type kindState struct {
	bucket tokenBucket
	sup    suppression
}

type peerKey struct {
	kind Kind
	addr netip.Addr
}

type peerEntry struct {
	key    peerKey
	bucket tokenBucket
}

// limiter applies Limits. Its memory is bounded: one state per known kind
// (sanitize refuses unknown kinds) and at most MaxPeers peer buckets. Not
// safe for concurrent use; the Recorder holds its lock.
type limiter struct {
	l     Limits
	kinds map[Kind]*kindState
	peers map[peerKey]*list.Element // of *peerEntry
	lru   *list.List                // front: most recently seen
}

func newLimiter(l Limits) *limiter {
	return &limiter{l: l, kinds: make(map[Kind]*kindState), peers: make(map[peerKey]*list.Element), lru: list.New()}
}

// peer returns the bucket of kind k from addr, creating it and forgetting
// the least recently seen one when the table is full.
func (m *limiter) peer(k Kind, addr netip.Addr) *tokenBucket {
	key := peerKey{k, addr}
	if e, ok := m.peers[key]; ok {
		m.lru.MoveToFront(e)
		return &e.Value.(*peerEntry).bucket
	}
	if m.lru.Len() >= m.l.MaxPeers {
		old := m.lru.Back()
		m.lru.Remove(old)
		delete(m.peers, old.Value.(*peerEntry).key)
	}
	pe := &peerEntry{key: key}
	m.peers[key] = m.lru.PushFront(pe)
	return &pe.bucket
}

// allow decides on ev at now. When it passes and events of its kind were
// suppressed before, the summary of those comes back too, to be written
// first: the limit has let up.
func (m *limiter) allow(ev *Event, now time.Time) (bool, *Event) {
	ks := m.kinds[ev.Kind]
	if ks == nil {
		ks = &kindState{}
		m.kinds[ev.Kind] = ks
	}
	ks.bucket.refill(now, m.l.KindRate, m.l.KindBurst)
	var pb *tokenBucket
	ok := ks.bucket.tokens >= 1
	if ev.Peer.IsValid() {
		pb = m.peer(ev.Kind, ev.Peer.Addr())
		pb.refill(now, m.l.PeerRate, m.l.PeerBurst)
		ok = ok && pb.tokens >= 1
	}
	if !ok {
		m.suppress(ks, ev, now)
		return false, nil
	}
	ks.bucket.tokens--
	if pb != nil {
		pb.tokens--
	}
	return true, summary(ev.Kind, ks, now)
}

func (m *limiter) suppress(ks *kindState, ev *Event, now time.Time) {
	if ks.sup.count == 0 {
		ks.sup.first = now
	}
	ks.sup.count++
	if ev.Peer.IsValid() {
		ks.sup.lastPeer = ev.Peer
	}
}

// summary returns the suppression summary of kind k and resets its count,
// or nil when nothing was suppressed.
func summary(k Kind, ks *kindState, now time.Time) *Event {
	if ks.sup.count == 0 {
		return nil
	}
	d := Detail{
		"kind":  string(k),
		"count": strconv.FormatUint(ks.sup.count, 10),
		"since": ks.sup.first.UTC().Format(time.RFC3339),
	}
	if ks.sup.lastPeer.IsValid() {
		d["last_peer"] = ks.sup.lastPeer.String()
	}
	ks.sup = suppression{}
	return &Event{Kind: KindSuppressed, Time: now, Detail: d}
}

// due returns the summaries of kinds whose limit has let up (their bucket
// holds a token again, which the summary takes), or of every kind with a
// count when force is set.
func (m *limiter) due(now time.Time, force bool) []*Event {
	var out []*Event
	for _, k := range sortedKindStates(m.kinds) {
		ks := m.kinds[k]
		if ks.sup.count == 0 {
			continue
		}
		ks.bucket.refill(now, m.l.KindRate, m.l.KindBurst)
		if !force {
			if ks.bucket.tokens < 1 {
				continue
			}
			ks.bucket.tokens--
		}
		out = append(out, summary(k, ks, now))
	}
	return out
}

// requeue puts a summary's count back when the queue had no room for it.
func (m *limiter) requeue(ev *Event) {
	k := Kind(ev.Detail["kind"])
	ks := m.kinds[k]
	if ks == nil {
		return
	}
	n, _ := strconv.ParseUint(ev.Detail["count"], 10, 64) // we wrote it
	ks.sup.count += n
	if t, err := time.Parse(time.RFC3339, ev.Detail["since"]); err == nil && (ks.sup.first.IsZero() || t.Before(ks.sup.first)) {
		ks.sup.first = t
	}
}

func sortedKindStates(m map[Kind]*kindState) []Kind {
	out := make([]Kind, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sortKinds(out)
	return out
}

// drop counts ev as suppressed although the limit let it pass (the
// Recorder's queue was full).
func (m *limiter) drop(ev *Event, now time.Time) {
	ks := m.kinds[ev.Kind]
	if ks == nil {
		ks = &kindState{}
		m.kinds[ev.Kind] = ks
	}
	m.suppress(ks, ev, now)
}
