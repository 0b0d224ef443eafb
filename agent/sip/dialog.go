package sip

// Dialogs, RFC 3261 §12: a call is named by its Call-ID and both tags,
// never by the Call-ID alone. Every request inside a dialog (re-INVITE,
// ACK, BYE, anything with a To tag) is matched on all three before it
// touches a call, and its CSeq must move forward (§12.2.2).

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	lru "github.com/hashicorp/golang-lru/v2/simplelru"
)

// DialogID names one dialog as this phone sees it (RFC 3261 §12): the
// Call-ID, our tag and the peer's tag. Two calls may share a Call-ID (a
// second INVITE with another From tag, a forked call), never a DialogID.
type DialogID struct {
	CallID    string
	LocalTag  string
	RemoteTag string
}

// String renders the dialog as "CALL-ID;LOCAL-TAG;REMOTE-TAG": the form the
// control protocol's call.dialog takes. Neither a Call-ID nor a tag may
// contain ';' (RFC 3261 §25.1: callid is word["@"word], a tag a token), and
// validate refuses requests whose do.
func (d DialogID) String() string { return d.CallID + ";" + d.LocalTag + ";" + d.RemoteTag }

// MarshalText renders the dialog as String does, for status JSON.
func (d DialogID) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

var errDialogSyntax = errors.New("dialog: want CALL-ID;LOCAL-TAG;REMOTE-TAG")

// ParseDialogID parses the String form.
func ParseDialogID(s string) (DialogID, error) {
	f := strings.Split(s, ";")
	if len(f) != 3 || f[0] == "" || f[1] == "" || f[2] == "" {
		return DialogID{}, fmt.Errorf("%q: %w", s, errDialogSyntax)
	}
	return DialogID{CallID: f[0], LocalTag: f[1], RemoteTag: f[2]}, nil
}

// requestDialog is the dialog a request from the peer names: our tag is in
// its To header, the peer's in its From header (RFC 3261 §12.2.2). ok is
// false for a request without a To tag (outside any dialog).
func requestDialog(req *sip.Request) (id DialogID, ok bool) {
	to, from := req.To(), req.From()
	if to == nil || from == nil {
		return DialogID{}, false
	}
	local, ok := to.Params.Get("tag")
	if !ok || local == "" {
		return DialogID{}, false
	}
	remote, _ := from.Params.Get("tag")
	return DialogID{CallID: callID(req), LocalTag: local, RemoteTag: remote}, true
}

// fromTag is a request's From tag ("" without one).
func fromTag(req *sip.Request) string {
	if f := req.From(); f != nil {
		t, _ := f.Params.Get("tag")
		return t
	}
	return ""
}

// inOrder applies RFC 3261 §12.2.2 to a request's CSeq number got against
// the dialog's remote sequence number (set false while it is empty: an
// outbound call before the peer's first request). §12.2.2: "If the remote
// sequence number was not empty, but the sequence number of the request is
// lower than the remote sequence number, the request is out of order and
// MUST be rejected with a 500". A request equal to it is not a new request
// either (a retransmission is absorbed by the transaction layer before it
// gets here), so it is refused the same way.
func inOrder(remote uint32, set bool, got uint32) bool {
	return !set || got > remote
}

// Bounds on what may name a dialog: a Call-ID or a tag longer than this is
// refused (400) before it reaches a call, a log line or a firewall key.
const (
	maxCallIDLen = 256
	maxTagLen    = 128
)

// validCallID reports whether s is an RFC 3261 §25.1 callid (word ["@"
// word]) of a sane length.
func validCallID(s string) bool {
	if s == "" || len(s) > maxCallIDLen {
		return false
	}
	left, right, at := strings.Cut(s, "@")
	return isWord(left) && (!at || isWord(right))
}

// isWord: RFC 3261 §25.1 word = 1*(alphanum / "-" / "." / "!" / "%" / "*" /
// "_" / "+" / "`" / "'" / "~" / "(" / ")" / "<" / ">" / ":" / "\" / DQUOTE /
// "/" / "[" / "]" / "?" / "{" / "}").
func isWord(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("-.!%*_+`'~()<>:\\\"/[]?{}", rune(c)) {
			return false
		}
	}
	return true
}

// validTag reports whether s is an RFC 3261 §25.1 token of a sane length
// ("" is allowed: no tag).
func validTag(s string) bool {
	if len(s) > maxTagLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("-.!%*_+`'~", rune(c)) {
			return false
		}
	}
	return true
}

// responseDialog is the dialog our response res to req names: its To tag
// ours, the request's From tag theirs.
func responseDialog(req *sip.Request, res *sip.Response) (DialogID, bool) {
	to := res.To()
	if to == nil {
		return DialogID{}, false
	}
	local, ok := to.Params.Get("tag")
	if !ok || local == "" {
		return DialogID{}, false
	}
	return DialogID{CallID: callID(req), LocalTag: local, RemoteTag: fromTag(req)}, true
}

// refusedInvites remembers the dialogs our non-2xx answers to INVITEs
// named, for as long as their ACK may come (RFC 3261 §17.2.1, Timer H:
// 64*T1), in a bounded LRU so a flood of refused INVITEs costs at most
// refusedKept entries.
type refusedInvites struct {
	mu  sync.Mutex // guards lru
	lru *lru.LRU[DialogID, time.Time]
}

const (
	refusedKept = 512
	refusedFor  = 32 * time.Second
)

func newRefusedInvites() *refusedInvites {
	c, err := lru.NewLRU[DialogID, time.Time](refusedKept, nil)
	if err != nil {
		// Only a non-positive size fails.
		panic(err)
	}
	return &refusedInvites{lru: c}
}

func (r *refusedInvites) add(id DialogID, now time.Time) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.lru.Add(id, now)
	r.mu.Unlock()
}

func (r *refusedInvites) has(id DialogID, now time.Time) bool {
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.lru.Get(id)
	return ok && now.Sub(at) < refusedFor
}
