package sip

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/emiago/sipgo/sip"
)

var errNotFromRegistrar = errors.New("request not from the registrar")

// allowed is the SIP request source policy: a request is served only when it
// arrived over this account's own TLS flow to the registrar, or over a plain
// listener that the config enabled from its one peer (listen_peer, by
// default the registrar's address): over UDP its IP and port, since a
// datagram's source IP alone is one spoofed packet away; over TCP its IP.
// Anything else is refused before any of it is acted on.
func (a *Account) allowed(req *sip.Request) error {
	src := req.Source()
	a.mu.Lock()
	flow := a.flowRemote
	a.mu.Unlock()
	switch strings.ToUpper(req.Transport()) {
	case "TLS":
		if flow != "" && src == flow {
			return nil
		}
		return fmt.Errorf("%w: tls from %s, flow is %q", errNotFromRegistrar, src, flow)
	case "UDP", "TCP":
		ap, err := netip.ParseAddrPort(src)
		if err != nil {
			return fmt.Errorf("%w: source %q: %v", errNotFromRegistrar, src, err)
		}
		ip := ap.Addr().Unmap()
		if ip == a.plainPeer.Addr() && (ap.Port() == a.plainPeer.Port() || strings.EqualFold(req.Transport(), "TCP")) {
			// UDP: IP and port, since a datagram's source is whatever the
			// sender wrote. TCP: the handshake proved the address, and a
			// peer connects from an ephemeral port.
			return nil
		}
		return fmt.Errorf("%w: %s from %s, plain listeners take requests from %s only", errNotFromRegistrar, req.Transport(), src, a.plainPeer)
	}
	return fmt.Errorf("%w: transport %q", errNotFromRegistrar, req.Transport())
}

// guard wraps a handler with the source policy. Refused requests get 403,
// except ACK which has no response and is dropped (RFC 3261 §17.2.3).
func (a *Account) guard(h func(*sip.Request, sip.ServerTransaction)) func(*sip.Request, sip.ServerTransaction) {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		if err := a.allowed(req); err != nil {
			a.refused(req, err)
			if !req.IsAck() {
				respond(a, tx, req, 403, "Forbidden", nil)
			}
			return
		}
		if code, reason := validate(req); code != 0 {
			if !req.IsAck() {
				respond(a, tx, req, code, reason, nil)
			}
			return
		}
		h(req, tx)
	}
}

// refused counts and reports a request the source policy refused.
func (a *Account) refused(req *sip.Request, why error) {
	a.mu.Lock()
	a.counters.ForeignSource++
	n := a.counters.ForeignSource
	a.mu.Unlock()
	// Rate-limit: a flood of rogue requests must not flood the log.
	if n <= 10 || n%100 == 0 {
		a.log.Warn("request refused", "method", string(req.Method), "error", why, "refused_total", n)
	}
	what := IncidentForeignSource
	if isScanner(req) {
		what = IncidentScanner
	}
	a.requestIncident(what, req, "not from the registrar's flow")
}

// validate applies the RFC 3261 checks sipgo's parser leaves to the UAS,
// in the order RFC 3261 §8.2 gives them.
func validate(req *sip.Request) (int, string) {
	// RFC 3261 §8.2.2.1 / RFC 4475 §3.4.2: another SIP version is 505.
	if req.SipVersion != "SIP/2.0" {
		return 505, "Version Not Supported"
	}
	// RFC 3261 §8.2.2.1: "If the Request-URI uses a scheme not supported by
	// the UAS, it SHOULD reject the request with a 416".
	switch strings.ToLower(req.Recipient.Scheme) {
	case "sip", "sips", "tel":
	default:
		return 416, "Unsupported URI Scheme"
	}
	// RFC 3261 §8.1.1.5: the CSeq method MUST match the request method.
	if cs := req.CSeq(); cs == nil || !strings.EqualFold(string(cs.MethodName), string(req.Method)) {
		return 400, "Bad Request (CSeq method)"
	}
	// RFC 3261 §20.22: Max-Forwards is 0-255.
	if mf := req.MaxForwards(); mf != nil && uint32(*mf) > 255 {
		return 400, "Bad Request (Max-Forwards)"
	}
	// What names a dialog must be what RFC 3261 §25.1 allows, and short:
	// it keys calls, firewall pinholes and log lines.
	if id := callID(req); id != "" && !validCallID(id) {
		return 400, "Bad Request (Call-ID)"
	}
	if f, t := req.From(), req.To(); f != nil && t != nil {
		ft, _ := f.Params.Get("tag")
		tt, _ := t.Params.Get("tag")
		if !validTag(ft) || !validTag(tt) {
			return 400, "Bad Request (tag)"
		}
	}
	// RFC 3891 §3: "if a Replaces header field is present in a request
	// other than INVITE, the UAS MUST reject the request with a 400". An
	// INVITE inside a dialog is refused too: it cannot replace a dialog,
	// it belongs to one.
	if req.GetHeader("Replaces") != nil {
		if _, inDialog := requestDialog(req); req.Method != sip.INVITE || inDialog {
			return 400, "Bad Request (Replaces)"
		}
	}
	return 0, ""
}

func respond(a *Account, tx sip.ServerTransaction, req *sip.Request, code int, reason string, body []byte, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, body)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if err := tx.Respond(res); err != nil {
		a.log.Debug("respond", "code", code, "error", err)
	}
}
