package sip

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

// EventCheckSync: the registrar asked the phone, over the account's own
// TLS flow, to check its provisioning now (NOTIFY with Event: check-sync,
// the de-facto "re-provision" event). The agent refreshes its fleet
// metadata; the NOTIFY itself carries nothing it acts on.
const EventCheckSync EventKind = "check_sync"

// checkSyncEvent is the only event package an out-of-dialog NOTIFY may
// carry. RFC 3265 §7.2.1 (kept by RFC 6665): the event-type is compared
// byte by byte, so "Check-Sync" is another package.
const checkSyncEvent = "check-sync"

// onNotify serves NOTIFY after the source policy (guard) let it through:
// only over this account's flow to the registrar, or a configured plain
// listener's one peer. The only subscriptions the phone holds are its
// REFERs' implicit ones, so an in-dialog NOTIFY goes to onReferNotify (481
// for anything else), and an out-of-dialog one is accepted only for
// check-sync addressed to this account's user; any other event package is
// 489 Bad Event (RFC 3265 §7.3.2). The body, if any, is ignored: the phone
// trusts what it then fetches and verifies, not the NOTIFY.
func (a *Account) onNotify(req *sip.Request, tx sip.ServerTransaction) {
	if _, ok := requestDialog(req); ok {
		a.onReferNotify(req, tx)
		return
	}
	pkg := ""
	if h := req.GetHeader("Event"); h != nil {
		pkg, _, _ = strings.Cut(h.Value(), ";")
		pkg = strings.TrimSpace(pkg)
	}
	if pkg != checkSyncEvent {
		a.count(&a.counters.NotifyRefused)
		respond(a, tx, req, 489, "Bad Event", nil, warning("only check-sync is accepted"))
		return
	}
	if to := req.To(); to == nil || (to.Address.User != a.cfg.User && to.Address.User != a.cfg.AuthUser) {
		a.count(&a.counters.NotifyRefused)
		respond(a, tx, req, 404, "Not Found", nil, warning("not this account's user"))
		return
	}
	respond(a, tx, req, 200, "OK", nil)
	if a.count(&a.counters.CheckSync) {
		a.log.Info("check-sync from the registrar", "call_id", callID(req))
	}
	a.events(Event{Account: a.cfg.Name, Kind: EventCheckSync})
}
