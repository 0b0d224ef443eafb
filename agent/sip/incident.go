package sip

import (
	"net/netip"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Incident names what a security event says happened; the agent turns each
// into a security event of its own kind (agent/events).
type Incident string

// Incidents. Each but AuthFailure and DialRefused is also a counter in
// Counters under the same name.
const (
	// IncidentForeignSource: a request from outside the registrar's flow
	// (or a plain listener's one peer), refused 403.
	IncidentForeignSource Incident = "foreign_source"
	// IncidentScanner: a refused request whose User-Agent is a known SIP
	// scanner's ("friendly-scanner", "sipvicious", "sipcli", ...).
	IncidentScanner Incident = "scanner"
	// IncidentForeignDialog: an in-dialog request or CANCEL matching no
	// dialog or transaction of ours.
	IncidentForeignDialog Incident = "foreign_dialog"
	// IncidentREFERRefused: a REFER refused by policy.
	IncidentREFERRefused Incident = "refer_refused"
	// IncidentINVITEFlood: INVITEs above the per-source rate.
	IncidentINVITEFlood Incident = "invite_flood"
	// IncidentCallCap: a call refused at the concurrent-call cap.
	IncidentCallCap Incident = "call_cap"
	// IncidentChallengeRefused: a digest challenge not answered (another
	// realm, no qop=auth, weaker than digest_min, not over the flow).
	IncidentChallengeRefused Incident = "challenges_refused"
	// IncidentMediaDestination: an SDP aimed media at a refused address.
	IncidentMediaDestination Incident = "media_destinations_refused"
	// IncidentAuthFailure: the registrar refused our digest answer (401,
	// 407 or 403 after we answered a challenge).
	IncidentAuthFailure Incident = "auth_failure"
	// IncidentDialRefused: an outbound call refused by the account's
	// dialling policy (the toll-fraud guard).
	IncidentDialRefused Incident = "dial_refused"
)

// Security is a security incident's particulars (Event.Security).
type Security struct {
	Incident Incident
	// Peer is the request's source, when the incident is a request.
	Peer netip.AddrPort
	// Method is the request's method, when the incident is a request.
	Method string
	// Detail says why, in a few words; never a secret.
	Detail string
	// Target is the URI a refused outbound call was for
	// (IncidentDialRefused): the attempt goes into the call history.
	Target string
}

// EventSecurity reports a security incident (Event.Security says which).
const EventSecurity EventKind = "security"

// incident reports a security incident to the agent. Every one is
// reported: the agent's recorder rate-limits per kind and counts what it
// suppresses, so a flood costs a counter, not the journal.
func (a *Account) incident(s Security) {
	if len(s.Detail) > 200 {
		s.Detail = s.Detail[:200]
	}
	a.events(Event{Account: a.cfg.Name, Kind: EventSecurity, Security: &s})
}

// requestIncident reports an incident about req.
func (a *Account) requestIncident(what Incident, req *sip.Request, detail string) {
	s := Security{Incident: what, Method: string(req.Method), Detail: detail}
	if ap, err := netip.ParseAddrPort(req.Source()); err == nil {
		s.Peer = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	a.incident(s)
}

// scannerAgents are User-Agent substrings of SIP scanners and war-diallers
// (lowercase).
var scannerAgents = []string{"friendly-scanner", "sipvicious", "sipcli", "sip-scan", "sipsak", "sundayddr", "iwar", "vaxasip", "pplsip", "sipptk", "sipscan", "smap"}

// isScanner reports whether req's User-Agent is a known scanner's.
func isScanner(req *sip.Request) bool {
	h := req.GetHeader("User-Agent")
	if h == nil {
		return false
	}
	ua := strings.ToLower(h.Value())
	for _, s := range scannerAgents {
		if strings.Contains(ua, s) {
			return true
		}
	}
	return false
}
