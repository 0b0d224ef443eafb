package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/audit"
)

// The device, settings, assignment and anomaly endpoints of the admin
// API. With admin sessions and an audit log (hpfleet with an audit key)
// each needs, like the rollout endpoints, a session of the certificate's
// admin holding one permission of adminauth's table (step-up where the
// table says), and every state-changing call is recorded: an intent entry
// before the handler runs (an action the log cannot record does not
// happen), its outcome after, and a refusal when it is refused before.
// Without them (no audit key) the admin certificate alone is checked, as
// before; hpfleet warns about that mode at start.

// auditTimeout bounds one append for an admin action.
const auditTimeout = 10 * time.Second

// Refusals of requests that carry no admin certificate are recorded at
// most this fast; the excess is counted into the next such entry.
const (
	strangerRate  = 1.0 // entries per second
	strangerBurst = 20
)

// sessions reports whether admin endpoints need a session (adminauth and
// an audit log configured).
func (s *Server) sessions() bool { return s.auth != nil && s.auditLog != nil }

// guarded is an admin endpoint that needs perm with sessions and is
// recorded as action when it changes state.
func (s *Server) guarded(h adminHandler, perm adminauth.Permission, action audit.Action) func(http.ResponseWriter, *http.Request) error {
	certOnly := s.admin(h)
	withSession := s.recordRefusals(action, []adminauth.Permission{perm}, s.authorized(func(w http.ResponseWriter, r *http.Request, p principal) error {
		if !isChange(r) {
			return h(w, r, p.name)
		}
		return s.recorded(w, r, p, h, action)
	}, perm))
	return func(w http.ResponseWriter, r *http.Request) error {
		if !s.sessions() {
			return certOnly(w, r)
		}
		return withSession(w, r)
	}
}

func isChange(r *http.Request) bool { return r.Method != http.MethodGet && r.Method != http.MethodHead }

// recordRefusals records a state-changing call that h refuses and that no
// entry records yet (a refusal before the handler: no session, another
// admin's session, a role without the permission, no step-up; or a
// rollout handler's refusal).
func (s *Server) recordRefusals(action audit.Action, perms []adminauth.Permission, h func(http.ResponseWriter, *http.Request) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if !s.sessions() || !isChange(r) {
			return h(w, r)
		}
		notes := &auditNotes{details: map[string]string{}}
		r = r.WithContext(context.WithValue(r.Context(), notesKey{}, notes))
		err := h(w, r)
		if err != nil && !notes.isRecorded() {
			s.refusedAdmin(r, action, perms, err)
		}
		return err
	}
}

// auditNotes carries what a handler adds to its outcome entry (counts, a
// reason, a value); nil when the call is not recorded.
type auditNotes struct {
	mu       sync.Mutex
	details  map[string]string // guarded by mu
	recorded bool              // an entry records the call; guarded by mu
}

func (n *auditNotes) isRecorded() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.recorded
}

// markRecorded says an entry already records the request's outcome.
func markRecorded(ctx context.Context) {
	if n, _ := ctx.Value(notesKey{}).(*auditNotes); n != nil {
		n.mu.Lock()
		n.recorded = true
		n.mu.Unlock()
	}
}

type notesKey struct{}

// note adds a detail to the request's outcome entry, when it is recorded.
func note(r *http.Request, key, value string) {
	n, _ := r.Context().Value(notesKey{}).(*auditNotes)
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.details) < audit.MaxDetails-4 {
		n.details[key] = value
	}
}

// recorded runs an authorized state-changing call between its intent
// entry and its outcome entry.
func (s *Server) recorded(w http.ResponseWriter, r *http.Request, p principal, h adminHandler, action audit.Action) error {
	target := auditTarget(r)
	base := func() map[string]string {
		return map[string]string{"endpoint": r.Pattern, "role": string(p.role)}
	}
	e := audit.Entry{Actor: audit.Actor{Kind: audit.ActorAdmin, ID: p.name}, Action: action, Target: target,
		Outcome: audit.OutcomePending, Source: p.addr, Details: base()}
	markRecorded(r.Context())
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), auditTimeout)
	intent, err := s.auditLog.Append(ctx, e)
	cancel()
	if err != nil {
		s.log.Error("audit entry not written: admin action not done", "action", string(action), "admin", p.name, "target", target, "err", err)
		return &refusal{code: api.CodeUnavailable, msg: "audit log: the action could not be recorded, so it was not done", cause: err}
	}
	notes, _ := r.Context().Value(notesKey{}).(*auditNotes)
	if notes == nil {
		notes = &auditNotes{details: map[string]string{}}
		r = r.WithContext(context.WithValue(r.Context(), notesKey{}, notes))
	}
	herr := h(w, r, p.name)
	e.Outcome, e.Details = audit.OutcomeSuccess, base()
	notes.mu.Lock()
	for k, v := range notes.details {
		e.Details[k] = v
	}
	notes.mu.Unlock()
	e.Details["intent"] = strconv.FormatInt(intent, 10)
	if herr != nil {
		e.Outcome = audit.OutcomeFailure
		var rf *refusal
		if errors.As(herr, &rf) {
			e.Details["code"] = string(rf.code)
			if rf.code == api.CodeForbidden {
				e.Outcome = audit.OutcomeDenied
			}
		}
		e.Details["reason"] = trunc(herr.Error(), audit.MaxDetailValueLen)
	}
	ctx, cancel = context.WithTimeout(context.WithoutCancel(r.Context()), auditTimeout)
	defer cancel()
	if _, err := s.auditLog.Append(ctx, e); err != nil {
		// The intent entry stands for it; the action is done.
		s.log.Error("audit outcome entry not written", "action", string(action), "admin", p.name, "intent", intent, "err", err)
	}
	return herr
}

// refusedAdmin records a refused state-changing admin call: as
// access.denied when the caller was not let in (no or a wrong session, a
// role without the permission, no step-up), else as the action that
// failed. A caller with an admin certificate is named by it; one without
// is recorded at a bounded rate.
func (s *Server) refusedAdmin(r *http.Request, action audit.Action, perms []adminauth.Permission, err error) {
	actor := audit.Actor{Kind: audit.ActorUnknown, ID: "no admin certificate"}
	if leaf, root := verifiedRoot(r); leaf != nil && s.isAdminCA(root) {
		actor = audit.Actor{Kind: audit.ActorAdmin, ID: leaf.Subject.CommonName}
		if actor.ID == "" {
			actor.ID = leaf.Subject.String()
		}
	}
	ps := make([]string, len(perms))
	for i, p := range perms {
		ps[i] = string(p)
	}
	details := map[string]string{"endpoint": r.Pattern, "permission": strings.Join(ps, ",")}
	e := audit.Entry{Actor: actor, Action: audit.ActionAccessDenied, Target: auditTarget(r), Outcome: audit.OutcomeDenied,
		Source: clientOf(r).Addr, Details: details}
	var rf *refusal
	if errors.As(err, &rf) {
		details["code"] = string(rf.code)
		details["reason"] = trunc(rf.msg, audit.MaxDetailValueLen)
		if rf.code != api.CodeForbidden && rf.code != api.CodeUnauthenticated {
			e.Action, e.Outcome = action, audit.OutcomeFailure
		}
	} else {
		details["reason"] = trunc(err.Error(), audit.MaxDetailValueLen)
	}
	if e.Action == audit.ActionAccessDenied {
		details["attempted"] = string(action)
	}
	if actor.Kind == audit.ActorUnknown {
		n, ok := s.strangers.admit(s.o.now())
		if !ok {
			s.metrics.add("audit_refusals_suppressed")
			return
		}
		if n > 0 {
			details["suppressed"] = strconv.Itoa(n)
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), auditTimeout)
	defer cancel()
	if _, err := s.auditLog.Append(ctx, e); err != nil {
		s.log.Error("audit entry not written", "action", string(e.Action), "attempted", string(action), "err", err)
	}
}

// auditTarget names what a call acts on, from its path.
func auditTarget(r *http.Request) string {
	switch {
	case r.PathValue("key") != "":
		return "setting " + r.PathValue("key")
	case r.PathValue("kind") != "":
		return r.PathValue("kind") + " " + r.PathValue("name")
	case r.PathValue("id") != "":
		return "device " + r.PathValue("id")
	case r.URL.Path == api.PathAdminAllowList:
		return "allow-list"
	}
	return r.URL.Path
}

// strangerLimit bounds the entries of refused callers without an admin
// certificate, counting the ones left out.
type strangerLimit struct {
	mu         sync.Mutex
	b          bucket // guarded by mu
	suppressed int    // guarded by mu
}

// admit says whether one more entry may be written now, and how many were
// left out since the last one.
func (l *strangerLimit) admit(now time.Time) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.b.take(1, strangerRate, strangerBurst, now) {
		l.suppressed++
		return 0, false
	}
	n := l.suppressed
	l.suppressed = 0
	return n, true
}
