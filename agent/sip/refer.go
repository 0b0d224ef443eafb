package sip

// REFER (RFC 3515) on the wire: the Refer-To a transferor names, the
// refer event package's NOTIFYs with their message/sipfrag bodies (RFC
// 3515 §2.4.4-§2.4.6, RFC 3420), and Referred-By (RFC 3892). Everything
// here parses or builds; transfer.go and transferee.go act.

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/emiago/sipgo/sip"
)

// Refusals of a REFER or a Replaces by policy, each also a warn-text.
var (
	errTransferPolicy = errors.New("call transfer is off (allow_refer)")
	errTransferFlow   = errors.New("transfer requests are taken only over the registrar's TLS flow")
	errReferSyntax    = errors.New("malformed Refer-To")
	errReferTarget    = errors.New("Refer-To refused")
)

// maxReferToLen bounds a Refer-To value: a SIP URI with one Replaces.
const maxReferToLen = 1024

// headerValues returns the values of a header by its name and its compact
// form (RFC 3261 §7.3.3; sipgo keeps "r", "o" and "b" under those names).
func headerValues(req *sip.Request, name, compact string) []string {
	var out []string
	for _, h := range req.Headers() {
		if n := h.Name(); strings.EqualFold(n, name) || compact != "" && strings.EqualFold(n, compact) {
			out = append(out, h.Value())
		}
	}
	return out
}

// parseNameAddr reads a name-addr or addr-spec followed by generic
// parameters (RFC 3261 §25.1, as Refer-To and Referred-By use it) and
// returns the URI text. The parameters are dropped; anything else after
// the URI (a second value after a comma) is refused.
func parseNameAddr(v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", errors.New("empty")
	}
	if v[0] == '"' {
		// quoted-string display name
		i := 1
		for ; i < len(v); i++ {
			if v[i] == '\\' {
				i++
				continue
			}
			if v[i] == '"' {
				break
			}
		}
		if i >= len(v) {
			return "", errors.New("unterminated display name")
		}
		v = strings.TrimSpace(v[i+1:])
		if !strings.HasPrefix(v, "<") {
			return "", errors.New("display name without <URI>")
		}
	}
	if lt := strings.IndexByte(v, '<'); lt >= 0 {
		gt := strings.IndexByte(v, '>')
		if gt < lt || strings.Count(v, "<") != 1 || strings.Count(v, ">") != 1 {
			return "", errors.New("unbalanced <URI>")
		}
		if rest := strings.TrimSpace(v[gt+1:]); rest != "" && rest[0] != ';' {
			return "", fmt.Errorf("%q after the URI", rest)
		}
		return v[lt+1 : gt], nil
	}
	// addr-spec: RFC 3261 §20 puts a URI with ',', ';' or '?' in <>, so
	// here ';' starts the header parameters.
	uri, _, _ := strings.Cut(v, ";")
	if strings.ContainsAny(uri, ",? \t") {
		return "", errors.New("addr-spec with ',', '?' or blanks")
	}
	return uri, nil
}

// referredBy returns the URI of a request's one Referred-By (RFC 3892).
func referredBy(req *sip.Request) (sip.Uri, error) {
	vs := headerValues(req, "Referred-By", "b")
	if len(vs) != 1 {
		return sip.Uri{}, fmt.Errorf("%d Referred-By headers", len(vs))
	}
	s, err := parseNameAddr(vs[0])
	if err != nil {
		return sip.Uri{}, fmt.Errorf("referred-by: %w", err)
	}
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		return sip.Uri{}, fmt.Errorf("referred-by: %w", err)
	}
	if u.Scheme != "sip" && u.Scheme != "sips" {
		return sip.Uri{}, fmt.Errorf("referred-by: scheme %q", u.Scheme)
	}
	return u, nil
}

// referTarget is what a REFER asks this phone to call, once checked.
type referTarget struct {
	// URI is sip:user@host and nothing else: no port, parameters or
	// headers survive from the Refer-To.
	URI sip.Uri
	// Replaces is set for an attended transfer: the dialog at the target
	// our INVITE takes over (RFC 3891).
	Replaces *replaces
}

// parseReferTo reads a Refer-To value under this phone's policy and
// returns what to call. The policy, on top of RFC 3515's syntax:
//   - the scheme is sip: a tel:, sips:, http: or any other URI is refused
//     (RFC 3515 §2.4.2: a UA "SHOULD NOT accept REFER requests" to URIs it
//     cannot access; every call here is a sip: call over the registrar's
//     TLS flow, and a sips: target asks for end-to-end TLS the phone
//     cannot verify past its proxy);
//   - the host is the account's domain (or its registrar's host): the
//     referred call goes where a number typed on the phone would, not to
//     a server the REFER names;
//   - the user part is an RFC 3261 §25.1 user of at most maxReferUser
//     bytes;
//   - no password, port or URI parameter survives (maddr, transport and
//     method could aim or turn the request elsewhere; a method other than
//     INVITE is refused outright);
//   - of the URI's embedded headers (RFC 3261 §19.1.5) only one Replaces
//     is taken; any other (Route, From, Contact, Require, a body) is
//     refused, never copied into our INVITE.
//
// The user part then meets the dialling policy like any dialled number.
func parseReferTo(v string, domains ...string) (referTarget, error) {
	if len(v) > maxReferToLen {
		return referTarget{}, fmt.Errorf("%w: %d bytes", errReferSyntax, len(v))
	}
	s, err := parseNameAddr(v)
	if err != nil {
		return referTarget{}, fmt.Errorf("%w: %v", errReferSyntax, err)
	}
	// The embedded headers are read here, not by sipgo's URI parser,
	// which keeps one value per name: two Replaces must be seen as two.
	s, hdrs, hasHdrs := strings.Cut(s, "?")
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		return referTarget{}, fmt.Errorf("%w: %v", errReferSyntax, err)
	}
	if u.Scheme != "sip" {
		return referTarget{}, fmt.Errorf("%w: scheme %q, only sip: is called", errReferTarget, u.Scheme)
	}
	if u.User == "" || u.Host == "" || u.Password != "" || u.Wildcard {
		return referTarget{}, fmt.Errorf("%w: want sip:user@%s", errReferTarget, domains[0])
	}
	if !validUser(u.User) {
		return referTarget{}, fmt.Errorf("%w: user part %q", errReferTarget, short(u.User))
	}
	if !slices.ContainsFunc(domains, func(d string) bool { return d != "" && strings.EqualFold(u.Host, d) }) {
		return referTarget{}, fmt.Errorf("%w: host %q is not the account's domain %q", errReferTarget, short(u.Host), domains[0])
	}
	if m, ok := u.UriParams.Get("method"); ok && !strings.EqualFold(m, "INVITE") {
		return referTarget{}, fmt.Errorf("%w: method %q", errReferTarget, short(m))
	}
	t := referTarget{URI: sip.Uri{Scheme: "sip", User: u.User, Host: u.Host}}
	if !hasHdrs {
		return t, nil
	}
	// RFC 3261 §19.1.1: headers = "?" header *( "&" header ).
	for _, h := range strings.Split(hdrs, "&") {
		k, v, _ := strings.Cut(h, "=")
		name, err := url.PathUnescape(k)
		if err != nil {
			return referTarget{}, fmt.Errorf("%w: header name: %v", errReferSyntax, err)
		}
		if !strings.EqualFold(name, "Replaces") {
			return referTarget{}, fmt.Errorf("%w: embedded header %q (only Replaces is taken)", errReferTarget, short(name))
		}
		if t.Replaces != nil {
			return referTarget{}, fmt.Errorf("%w: two Replaces", errReferTarget)
		}
		val, err := url.PathUnescape(v)
		if err != nil {
			return referTarget{}, fmt.Errorf("%w: Replaces: %v", errReferSyntax, err)
		}
		r, err := parseReplaces(val)
		if err != nil {
			return referTarget{}, err
		}
		t.Replaces = &r
	}
	return t, nil
}

// maxReferUser bounds the user part a REFER may have the phone call.
const maxReferUser = 128

// validUser reports whether s is an RFC 3261 §25.1 user: 1*( unreserved /
// escaped / user-unreserved ), of a sane length.
func validUser(s string) bool {
	if s == "" || len(s) > maxReferUser {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-_.!~*'()&=+$,;?/", c) >= 0:
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			i += 2
		default:
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// short cuts attacker-chosen text for an error message.
func short(s string) string {
	if len(s) <= 64 {
		return s
	}
	// Cut on a rune boundary: a cut inside a multi-byte rune would leave
	// invalid UTF-8 that a second reading changes again.
	i := 64
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// referToValue is the Refer-To a transferor sends: the target, and for an
// attended transfer the Replaces the transferee must put in its INVITE
// (RFC 5589 §7: the Refer-To carries it as an escaped URI header).
func referToValue(target sip.Uri, r *replaces) string {
	u := sip.Uri{Scheme: target.Scheme, User: target.User, Host: target.Host, Port: target.Port}
	s := "<" + u.String()
	if r != nil {
		s += "?Replaces=" + escapeHeaderValue(r.String())
	}
	return s + ">"
}

// sipfrag is a NOTIFY body for the refer package: RFC 3515 §2.4.5, "The
// body of a NOTIFY MUST begin with a SIP Response Status-Line".
func sipfrag(code int, reason string) []byte {
	return []byte(fmt.Sprintf("SIP/2.0 %d %s\r\n", code, reason))
}

// sipfragContentType is the NOTIFY body type (RFC 3515 §2.4.5, RFC 3420).
const sipfragContentType = "message/sipfrag;version=2.0"

// maxSipfragLine bounds the status line read from a NOTIFY body.
const maxSipfragLine = 256

var errSipfrag = errors.New("NOTIFY body is not a message/sipfrag status line")

// parseSipfrag reads the status line a refer NOTIFY's body begins with.
func parseSipfrag(contentType string, body []byte) (int, string, error) {
	mt, _, _ := strings.Cut(contentType, ";")
	if !strings.EqualFold(strings.TrimSpace(mt), "message/sipfrag") {
		return 0, "", fmt.Errorf("%w: content type %q", errSipfrag, short(contentType))
	}
	line := body
	if i := strings.IndexAny(string(line), "\r\n"); i >= 0 {
		line = line[:i]
	}
	if len(line) > maxSipfragLine {
		return 0, "", fmt.Errorf("%w: status line of %d bytes", errSipfrag, len(line))
	}
	f := strings.SplitN(string(line), " ", 3)
	if len(f) < 2 || f[0] != "SIP/2.0" || len(f[1]) != 3 {
		return 0, "", errSipfrag
	}
	code, err := strconv.Atoi(f[1])
	if err != nil || code < 100 || code > 699 {
		return 0, "", fmt.Errorf("%w: status %q", errSipfrag, short(f[1]))
	}
	reason := ""
	if len(f) == 3 {
		reason = strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return -1
			}
			return r
		}, f[2])
	}
	return code, short(reason), nil
}

// referEvent reads a NOTIFY's Event header (RFC 6665 §8.2.1, compact "o"):
// ok when it is the refer package, with its id parameter (RFC 3515 §2.4.6)
// when there is one.
func referEvent(req *sip.Request) (id uint32, hasID, ok bool) {
	vs := headerValues(req, "Event", "o")
	if len(vs) != 1 {
		return 0, false, false
	}
	parts := strings.Split(vs[0], ";")
	if !strings.EqualFold(strings.TrimSpace(parts[0]), "refer") {
		return 0, false, false
	}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(k), "id") {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			if err != nil {
				return 0, false, false
			}
			return uint32(n), true, true
		}
	}
	return 0, false, true
}

// subscriptionTerminated reports whether a NOTIFY's Subscription-State
// (RFC 6665 §8.2.3) ends the implicit refer subscription.
func subscriptionTerminated(req *sip.Request) bool {
	for _, v := range headerValues(req, "Subscription-State", "") {
		state, _, _ := strings.Cut(v, ";")
		if strings.EqualFold(strings.TrimSpace(state), "terminated") {
			return true
		}
	}
	return false
}
