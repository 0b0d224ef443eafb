package sip

// The Replaces header, RFC 3891: an INVITE that names one of our dialogs
// (Call-ID, our tag, the peer's tag) asks to take that call over. It is how
// an attended transfer ends (RFC 5589 §7), and it is a hijack if anyone
// else can send it, so an INVITE with Replaces is accepted only when the
// account allows transfers, over the registrar's TLS flow, for a confirmed
// dialog of ours matched on all three parts, from the party of that call
// or one it referred (replacedCall).

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// replaces is one Replaces header value (RFC 3891 §6.1). ToTag and FromTag
// are as the UAS that receives it sees them: ToTag is its local tag,
// FromTag the remote one (§3).
type replaces struct {
	CallID    string
	ToTag     string
	FromTag   string
	EarlyOnly bool
}

// maxReplacesLen bounds a Replaces value: a Call-ID and two tags.
const maxReplacesLen = maxCallIDLen + 2*maxTagLen + 64

var errReplacesSyntax = errors.New("malformed Replaces")

// parseReplaces reads a Replaces value (RFC 3891 §6.1):
//
//	Replaces        = "Replaces" HCOLON callid *(SEMI replaces-param)
//	replaces-param  = to-tag / from-tag / early-flag / generic-param
//	to-tag          = "to-tag" EQUAL token
//	from-tag        = "from-tag" EQUAL token
//	early-flag      = "early-only"
//
// Both tags are required and each may appear once: a dialog is named by all
// three parts or not at all.
func parseReplaces(v string) (replaces, error) {
	if len(v) > maxReplacesLen {
		return replaces{}, fmt.Errorf("%w: %d bytes", errReplacesSyntax, len(v))
	}
	parts := strings.Split(v, ";")
	r := replaces{CallID: strings.TrimSpace(parts[0])}
	if !validCallID(r.CallID) {
		return replaces{}, fmt.Errorf("%w: call-id", errReplacesSyntax)
	}
	var to, from bool
	for _, p := range parts[1:] {
		name, val, hasVal := strings.Cut(strings.TrimSpace(p), "=")
		name, val = strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(val)
		switch name {
		case "to-tag", "from-tag":
			seen := &to
			dst := &r.ToTag
			if name == "from-tag" {
				seen, dst = &from, &r.FromTag
			}
			if *seen || !hasVal || val == "" || !validTag(val) {
				return replaces{}, fmt.Errorf("%w: %s", errReplacesSyntax, name)
			}
			*seen, *dst = true, val
		case "early-only":
			if hasVal || r.EarlyOnly {
				return replaces{}, fmt.Errorf("%w: early-only", errReplacesSyntax)
			}
			r.EarlyOnly = true
		default:
			// generic-param: a token name, ignored.
			if name == "" || !validTag(name) {
				return replaces{}, fmt.Errorf("%w: parameter %q", errReplacesSyntax, name)
			}
		}
	}
	if !to || !from {
		return replaces{}, fmt.Errorf("%w: to-tag and from-tag are both required", errReplacesSyntax)
	}
	return r, nil
}

// String renders the value as parseReplaces reads it.
func (r replaces) String() string {
	s := r.CallID + ";to-tag=" + r.ToTag + ";from-tag=" + r.FromTag
	if r.EarlyOnly {
		s += ";early-only"
	}
	return s
}

// dialog is the dialog r names, as the UAS receiving it keys its calls.
// RFC 3891 §3: "the to-tag parameter is compared to the local tag, and the
// from-tag parameter is compared to the remote tag".
func (r replaces) dialog() DialogID {
	return DialogID{CallID: r.CallID, LocalTag: r.ToTag, RemoteTag: r.FromTag}
}

// replacesFor is the Replaces a transferee sends our peer on d to take over
// our dialog d with it: the peer's tag is its local one.
func replacesFor(d DialogID) replaces {
	return replaces{CallID: d.CallID, ToTag: d.RemoteTag, FromTag: d.LocalTag}
}

// escapeHeaderValue escapes a value for a URI header (RFC 3261 §19.1.1,
// hvalue = *( hnv-unreserved / unreserved / escaped )): everything but
// unreserved characters is %HH, which is always allowed.
func escapeHeaderValue(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// aorKey is the address of record a URI names, as calls are compared:
// user (case-sensitive, unescaped, RFC 3261 §19.1.4) at host (not).
func aorKey(u sip.Uri) string {
	user, err := url.PathUnescape(u.User)
	if err != nil {
		user = u.User
	}
	return user + "@" + strings.ToLower(u.Host)
}

// Replacement refusals: RFC 3891 §3 and this phone's policy.
var (
	errReplacesNoMatch = errors.New("Replaces matches no confirmed dialog of ours")
	errReplacesEarly   = errors.New("Replaces names a dialog that is not confirmed")
	errReplacesEnded   = errors.New("Replaces names a call that has ended or is being replaced")
	errReplacesParty   = errors.New("Replaces from a party neither in the replaced call nor referred by it")
)

// replacedCall applies RFC 3891 §3 to an INVITE without To tag that
// carries Replaces. It returns the call to replace, or the response that
// refuses the INVITE (and changes nothing): code 0 with c nil means the
// INVITE has no Replaces. A call it returns is marked as being replaced;
// the caller unmarks it (c.releaseReplace) when the new call fails.
func (a *Account) replacedCall(req *sip.Request) (c *Call, code int, why error) {
	hs := req.GetHeaders("Replaces")
	if len(hs) == 0 {
		return nil, 0, nil
	}
	// RFC 3891 §3: "If more than one Replaces header field is present in
	// an INVITE ... the UAS MUST reject the request with a 400".
	if len(hs) > 1 {
		return nil, 400, fmt.Errorf("%w: %d Replaces headers", errReplacesSyntax, len(hs))
	}
	// §3: a header with "contradictory semantics" (Join, RFC 3911) is 400.
	if req.GetHeader("Join") != nil {
		return nil, 400, fmt.Errorf("%w: Replaces with Join", errReplacesSyntax)
	}
	r, err := parseReplaces(hs[0].Value())
	if err != nil {
		return nil, 400, err
	}
	if !a.cfg.AllowRefer {
		return nil, 403, errTransferPolicy
	}
	if !strings.EqualFold(req.Transport(), "TLS") {
		return nil, 403, errTransferFlow
	}
	c = a.callByDialog(r.dialog())
	if c == nil {
		// §3: "If no match is found, the UAS rejects the INVITE and returns
		// a 481".
		return nil, 481, errReplacesNoMatch
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.state == "ended" || c.replacing:
		// §3: a dialog that "has already terminated" is 603 Declined; one
		// another INVITE is taking over is as good as ended.
		return nil, 603, errReplacesEnded
	case c.state != "established":
		// §3 lets a UA replace an early dialog it initiated (call pickup);
		// this phone lists an outbound call only once it is confirmed, so
		// every early dialog here is one it did not initiate: "it returns
		// a 481 ... and leaves the matched dialog unchanged".
		return nil, 481, errReplacesEarly
	case r.EarlyOnly:
		// §3: a confirmed dialog with the early-only flag is 486 Busy Here.
		return nil, 486, fmt.Errorf("Replaces is early-only and the call is confirmed")
	case !c.tlsHop:
		return nil, 403, errTransferFlow
	}
	// §3: "the UA MUST verify that the initiator of the new INVITE is
	// authorized to replace the matched dialog": the caller (whose From the
	// registrar authenticated) is the party of that call, or that party
	// referred it (Referred-By, RFC 3892, as an attended transfer's REFER
	// hands it on). Knowing all three parts of the dialog is the rest of
	// the proof: only the two parties and their proxy see them.
	from := req.From()
	ok := from != nil && aorKey(from.Address) == c.peerAOR
	if !ok {
		if by, err := referredBy(req); err == nil && aorKey(by) == c.peerAOR {
			ok = true
		}
	}
	if !ok {
		return nil, 403, errReplacesParty
	}
	c.replacing = true
	return c, 0, nil
}

// releaseReplace undoes replacedCall's mark when the new call failed: RFC
// 3891 §3, the UA "MUST leave the matched dialog unchanged".
func (c *Call) releaseReplace() {
	c.mu.Lock()
	c.replacing = false
	c.mu.Unlock()
}

// reasonPhrase is the RFC 3261 §21 reason phrase of the codes replacedCall
// answers.
func reasonPhrase(code int) string {
	switch code {
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 481:
		return "Call/Transaction Does Not Exist"
	case 486:
		return "Busy Here"
	case 603:
		return "Decline"
	}
	return "Server Internal Error"
}
