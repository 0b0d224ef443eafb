package sip

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// request builds a request with the given Call-ID, From tag and To tag
// ("" for none) and CSeq.
func request(method sip.RequestMethod, callID, from, to string, cseq uint32) *sip.Request {
	r := sip.NewRequest(method, sip.Uri{Scheme: "sip", User: "alice", Host: "127.0.0.1"})
	fh := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "bob", Host: "example.org"}, Params: sip.NewParams()}
	if from != "" {
		fh.Params.Add("tag", from)
	}
	th := &sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "example.org"}, Params: sip.NewParams()}
	if to != "" {
		th.Params.Add("tag", to)
	}
	id := sip.CallIDHeader(callID)
	r.AppendHeader(fh)
	r.AppendHeader(th)
	r.AppendHeader(&id)
	r.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: method})
	return r
}

// RFC 3261 §12.2.2: an in-dialog request names the dialog by its Call-ID,
// our tag in To and the peer's in From.
func TestRequestDialog(t *testing.T) {
	tests := []struct {
		name   string
		req    *sip.Request
		want   DialogID
		wantOK bool
	}{
		{"in dialog", request(sip.BYE, "c1@h", "theirs", "ours", 2), DialogID{"c1@h", "ours", "theirs"}, true},
		{"no To tag: outside any dialog", request(sip.INVITE, "c1@h", "theirs", "", 1), DialogID{}, false},
		{"no From tag", request(sip.BYE, "c1@h", "", "ours", 2), DialogID{"c1@h", "ours", ""}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := requestDialog(tt.req)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("requestDialog = %+v, %v; want %+v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// The dialog key is exact: a request that differs from a call's dialog in
// any of the three parts finds no call.
func TestDialogLookupExact(t *testing.T) {
	a := &Account{calls: map[DialogID]*Call{}}
	c := &Call{dlg: DialogID{"c1@h", "ours", "theirs"}}
	a.addCall(c)
	tests := []struct {
		name string
		req  *sip.Request
		want *Call
	}{
		{"the dialog", request(sip.BYE, "c1@h", "theirs", "ours", 2), c},
		{"foreign remote tag", request(sip.BYE, "c1@h", "evil", "ours", 2), nil},
		{"foreign local tag", request(sip.BYE, "c1@h", "theirs", "evil", 2), nil},
		{"tags swapped", request(sip.BYE, "c1@h", "ours", "theirs", 2), nil},
		{"another Call-ID", request(sip.BYE, "c2@h", "theirs", "ours", 2), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, _ := requestDialog(tt.req)
			if got := a.callByDialog(id); got != tt.want {
				t.Errorf("callByDialog(%s) = %p, want %p", id, got, tt.want)
			}
		})
	}
	a.removeCall(c)
	if got := a.callByDialog(c.dlg); got != nil {
		t.Errorf("callByDialog after removeCall = %p, want nil", got)
	}
}

// RFC 3261 §12.2.2: lower (and, a retransmission being absorbed below,
// equal) CSeq is out of order; an empty remote sequence takes anything.
func TestInOrder(t *testing.T) {
	tests := []struct {
		remote uint32
		set    bool
		got    uint32
		want   bool
	}{
		{0, false, 1, true},
		{0, false, 0, true},
		{5, true, 6, true},
		{5, true, 1000, true},
		{5, true, 5, false},
		{5, true, 4, false},
		{5, true, 0, false},
	}
	for _, tt := range tests {
		if got := inOrder(tt.remote, tt.set, tt.got); got != tt.want {
			t.Errorf("inOrder(%d, %v, %d) = %v, want %v", tt.remote, tt.set, tt.got, got, tt.want)
		}
	}
}

func TestDialogIDRoundTrip(t *testing.T) {
	d := DialogID{"a84b4c76e66710@pc33.atlanta.com", "1928301774", "a6c85cf"}
	got, err := ParseDialogID(d.String())
	if err != nil || got != d {
		t.Fatalf("ParseDialogID(%q) = %+v, %v; want %+v", d.String(), got, err, d)
	}
	for _, bad := range []string{"", "a;b", "a;b;c;d", ";b;c", "a;;c", "a;b;"} {
		if _, err := ParseDialogID(bad); !errors.Is(err, errDialogSyntax) {
			t.Errorf("ParseDialogID(%q) = %v, want errDialogSyntax", bad, err)
		}
	}
}

// RFC 3261 §25.1: callid = word ["@" word]; tag = token.
func TestValidCallIDAndTag(t *testing.T) {
	ids := []struct {
		in   string
		want bool
	}{
		{"a84b4c76e66710@pc33.atlanta.com", true},
		{"f81d4fae-7dec-11d0-a765-00a0c91e6bf6", true},
		{`x<y>:"z"/[a]?{b}`, true},
		{"", false},
		{"a;b", false},
		{"a b", false},
		{"a@b@c", false},
		{"@b", false},
		{strings.Repeat("x", maxCallIDLen), true},
		{strings.Repeat("x", maxCallIDLen+1), false},
	}
	for _, tt := range ids {
		if got := validCallID(tt.in); got != tt.want {
			t.Errorf("validCallID(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	tags := []struct {
		in   string
		want bool
	}{
		{"", true},
		{"1928301774", true},
		{"a6c85cf-x.y!z", true},
		{"a;b", false},
		{"a@b", false},
		{strings.Repeat("t", maxTagLen+1), false},
	}
	for _, tt := range tags {
		if got := validTag(tt.in); got != tt.want {
			t.Errorf("validTag(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	r := request(sip.BYE, "ok@h", "a;b", "ours", 2)
	if code, _ := validate(r); code != 400 {
		t.Errorf("validate(From tag with ';') = %d, want 400", code)
	}
}

func TestCallLimit(t *testing.T) {
	l := NewCallLimit(2)
	if !l.take() || !l.take() {
		t.Fatalf("take() below the cap = false, want true")
	}
	if l.take() {
		t.Fatalf("take() at the cap = true, want false")
	}
	l.release()
	if !l.take() {
		t.Fatalf("take() after release = false, want true")
	}
}

// admit holds one slot under both caps until release, and release is
// idempotent: a call ended twice gives its slot back once.
func TestAdmit(t *testing.T) {
	global := NewCallLimit(3)
	a := &Account{global: global}
	a.cfg.MaxCalls = 2
	r1, ok1 := a.admit()
	_, ok2 := a.admit()
	if !ok1 || !ok2 {
		t.Fatalf("admit below the account cap refused")
	}
	if _, ok := a.admit(); ok {
		t.Fatalf("admit at the account cap (2) = ok, want refused")
	}
	r1()
	r1()
	if a.active != 1 || global.n != 1 {
		t.Fatalf("after one release twice: active %d, global %d; want 1, 1", a.active, global.n)
	}
	b := &Account{global: global}
	b.cfg.MaxCalls = 4
	if _, ok := b.admit(); !ok {
		t.Fatalf("second account below the global cap refused")
	}
	if _, ok := b.admit(); !ok {
		t.Fatalf("second account at global 2 of 3 refused")
	}
	if _, ok := b.admit(); ok {
		t.Fatalf("admit at the global cap (3) = ok, want refused")
	}
	if b.active != 2 {
		t.Errorf("a refusal by the global cap left active = %d, want 2", b.active)
	}
}

func TestInviteLimiter(t *testing.T) {
	l := newInviteLimiter()
	now := time.Unix(1000, 0)
	for i := range inviteBurst {
		if !l.allow("aor:mallory@h", now) {
			t.Fatalf("INVITE %d of the burst refused", i+1)
		}
	}
	if l.allow("aor:mallory@h", now) {
		t.Fatalf("INVITE beyond the burst allowed")
	}
	if !l.allow("aor:bob@h", now) {
		t.Fatalf("another source refused while one floods")
	}
	if !l.allow("aor:mallory@h", now.Add(inviteEvery)) {
		t.Fatalf("INVITE after %v refused", inviteEvery)
	}
	// Bounded: a spray of sources keeps at most inviteSources buckets.
	for i := range 2 * inviteSources {
		l.allow("ip:"+strings.Repeat("x", i%50)+string(rune('a'+i%26))+time.Duration(i).String(), now)
	}
	if n := l.sources.Len(); n > inviteSources {
		t.Errorf("limiter tracks %d sources, want at most %d", n, inviteSources)
	}
}

func TestInviteSource(t *testing.T) {
	tests := []struct {
		transport, src, user, host, want string
	}{
		{"TLS", "127.0.0.1:5061", "Mallory", "Example.org", "aor:mallory@example.org"},
		{"UDP", "192.0.2.1:5060", "mallory", "h", "ip:192.0.2.1"},
		{"TCP", "[2001:db8::1]:40000", "mallory", "h", "ip:2001:db8::1"},
	}
	for _, tt := range tests {
		if got := inviteSource(tt.transport, tt.src, tt.user, tt.host); got != tt.want {
			t.Errorf("inviteSource(%s, %s) = %q, want %q", tt.transport, tt.src, got, tt.want)
		}
	}
}

// stepClock moves time forward by exactly what each After asks for, and
// fires at once: code that waits on it runs synchronously.
type stepClock struct{ now time.Time }

func (c *stepClock) Now() time.Time { return c.now }

func (c *stepClock) After(d time.Duration) <-chan time.Time {
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

// idleFor ends a call only after a whole timeout without a packet: SRTCP
// alone (a held call, one report every 5 s) keeps it up.
func TestIdleFor(t *testing.T) {
	const d = 8 * time.Second
	start := time.Unix(0, 0)
	clock := &stepClock{now: start}
	// One packet every 5 s for a minute, then silence.
	received := func() uint64 {
		e := clock.now.Sub(start)
		if e > time.Minute {
			e = time.Minute
		}
		return uint64(e / (5 * time.Second))
	}
	if !idleFor(make(chan struct{}), clock, d, received) {
		t.Fatalf("idleFor = false, want idle")
	}
	lastPacket := start.Add(time.Minute)
	if got := clock.now.Sub(lastPacket); got < d || got > d+d/4 {
		t.Errorf("idle reported %v after the last packet, want %v to %v", got, d, d+d/4)
	}
	done := make(chan struct{})
	close(done)
	if idleFor(done, &stepClock{now: start}, d, func() uint64 { return 0 }) {
		t.Errorf("idleFor on an ended call = true, want false")
	}
}

// RFC 3261 §17.1.1.3: the ACK of a non-2xx carries the response's To tag.
// Remembered refusals make it no foreign dialog, for Timer H and no
// longer, and the memory is bounded.
func TestRefusedInvites(t *testing.T) {
	r := newRefusedInvites()
	now := time.Unix(1000, 0)
	req := request(sip.INVITE, "c1@h", "theirs", "", 1)
	res := sip.NewResponseFromRequest(req, 486, "Busy Here", nil)
	id, ok := responseDialog(req, res)
	if !ok || id.CallID != "c1@h" || id.RemoteTag != "theirs" || id.LocalTag == "" {
		t.Fatalf("responseDialog = %+v, %v; want c1@h, a tag of ours, theirs", id, ok)
	}
	r.add(id, now)
	ack, _ := requestDialog(request(sip.ACK, "c1@h", "theirs", id.LocalTag, 1))
	if !r.has(ack, now.Add(refusedFor-time.Second)) {
		t.Errorf("ACK of a refused INVITE not recognised")
	}
	if r.has(ack, now.Add(refusedFor)) {
		t.Errorf("ACK recognised after Timer H")
	}
	if r.has(DialogID{"c1@h", "evil", "theirs"}, now) {
		t.Errorf("another tag recognised")
	}
	for i := range 2 * refusedKept {
		r.add(DialogID{CallID: "flood", LocalTag: time.Duration(i).String(), RemoteTag: "x"}, now)
	}
	if n := r.lru.Len(); n > refusedKept {
		t.Errorf("refusals kept = %d, want at most %d", n, refusedKept)
	}
}
