package sip

// Call admission: a cap on concurrent calls per account and across the
// phone, checked before a call binds a single port, and a per-source rate
// limit on inbound INVITEs. Anyone who can reach the phone can send
// INVITEs; without these, 128 of them bind every RTP port of the default
// range and the phone takes no call until they time out.

import (
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"
)

// CallLimit bounds the calls of every account that shares it: the phone's
// global cap. The agent makes one and hands it to each account.
type CallLimit struct {
	mu  sync.Mutex // guards n
	max int
	n   int
}

// NewCallLimit returns a cap of max concurrent calls (at least 1).
func NewCallLimit(max int) *CallLimit {
	if max < 1 {
		max = 1
	}
	return &CallLimit{max: max}
}

func (l *CallLimit) take() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n >= l.max {
		return false
	}
	l.n++
	return true
}

// inUse is how many calls hold a slot now.
func (l *CallLimit) inUse() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

func (l *CallLimit) release() {
	l.mu.Lock()
	if l.n > 0 {
		l.n--
	}
	l.mu.Unlock()
}

// admit takes a slot under the account's cap and the global one; the
// caller counts a refusal (Counters.CallCap). release
// is idempotent: every path that ends the call (or refuses it after
// admission) calls it once, the later calls do nothing.
func (a *Account) admit() (release func(), ok bool) {
	a.mu.Lock()
	if a.active >= a.cfg.MaxCalls {
		a.mu.Unlock()
		return nil, false
	}
	a.active++
	a.mu.Unlock()
	if !a.global.take() {
		a.mu.Lock()
		a.active--
		a.mu.Unlock()
		return nil, false
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			a.global.release()
			a.mu.Lock()
			a.active--
			a.mu.Unlock()
		})
	}, true
}

// Inbound INVITE rate limit per source: a burst of inviteBurst, then one
// every inviteEvery. A desk phone's callers ring a few times a minute; a
// flood from one source is answered 503 with Retry-After and counted.
const (
	inviteBurst    = 5
	inviteEvery    = 2 * time.Second
	inviteSources  = 1024 // sources tracked; the least recently seen is forgotten
	maxSourceKeyLn = 256
)

// inviteLimiter is a token bucket per INVITE source in a bounded LRU, so a
// spray of sources costs at most inviteSources buckets.
type inviteLimiter struct {
	mu      sync.Mutex // guards sources
	sources *lru.LRU[string, *rate.Limiter]
}

func newInviteLimiter() *inviteLimiter {
	c, err := lru.NewLRU[string, *rate.Limiter](inviteSources, nil)
	if err != nil {
		// Only a non-positive size fails.
		panic(err)
	}
	return &inviteLimiter{sources: c}
}

// allow reports whether an INVITE from source may be processed at now.
func (l *inviteLimiter) allow(source string, now time.Time) bool {
	if len(source) > maxSourceKeyLn {
		source = source[:maxSourceKeyLn]
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.sources.Get(source)
	if !ok {
		lim = rate.NewLimiter(rate.Every(inviteEvery), inviteBurst)
		l.sources.Add(source, lim)
	}
	return lim.AllowN(now, 1)
}

// inviteSource is what an INVITE is rate-limited by. On a plain listener it
// is the source IP. Over the registrar's TLS flow every request comes from
// the registrar's one address, so there it is the caller's From address of
// record (user@host, as the proxy relays it): one caller flooding through
// the proxy is limited, and the others still get through. A caller that
// varies its From on every INVITE meets the call caps instead.
func inviteSource(transport, src, fromUser, fromHost string) string {
	if !strings.EqualFold(transport, "TLS") {
		if i := strings.LastIndexByte(src, ':'); i > 0 {
			return "ip:" + strings.Trim(src[:i], "[]")
		}
		return "ip:" + src
	}
	return "aor:" + strings.ToLower(fromUser) + "@" + strings.ToLower(fromHost)
}
