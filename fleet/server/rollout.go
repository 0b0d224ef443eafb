package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/rollout"
	"github.com/hardphone/hardphone/fleet/store"
)

// rolloutRoutes registers the staged rollout, approval and audit export
// endpoints. Each names the permissions of adminauth's table it needs.
func (s *Server) rolloutRoutes(handle func(pattern, name string, h func(http.ResponseWriter, *http.Request) error)) {
	read := []adminauth.Permission{adminauth.PermRolloutRead}
	approve := []adminauth.Permission{adminauth.PermApproveRollout, adminauth.PermApproveSecurity}
	control := []adminauth.Permission{adminauth.PermRolloutControl}
	// A refused state-changing call is recorded here; the engine records
	// what it does.
	change := func(action audit.Action, h roleHandler, perms ...adminauth.Permission) func(http.ResponseWriter, *http.Request) error {
		return s.recordRefusals(action, perms, s.authorized(h, perms...))
	}
	handle("POST "+api.PathAdminRollouts, "rollout_create", change(audit.ActionRolloutCreate, s.createRollout, adminauth.PermRolloutStart, adminauth.PermPolicyWrite))
	handle("GET "+api.PathAdminRollouts, "rollout_list", s.authorized(s.listRollouts, read...))
	handle("GET "+api.PathAdminRollout, "rollout_show", s.authorized(s.showRollout, read...))
	handle("GET "+api.PathAdminRolloutDevices, "rollout_devices", s.authorized(s.rolloutDevices, read...))
	handle("GET "+api.PathAdminRolloutStaged, "rollout_staged", s.authorized(s.stagedRollout, read...))
	handle("POST "+api.PathAdminRolloutApprove, "rollout_approve", change(audit.ActionApprovalGrant, s.approveRollout, approve...))
	handle("POST "+api.PathAdminRolloutSignatures, "rollout_signatures", change(audit.ActionApprovalGrant, s.signRollout, approve...))
	handle("POST "+api.PathAdminRolloutHalt, "rollout_halt", change(audit.ActionRolloutHalt, s.haltRollout, control...))
	handle("POST "+api.PathAdminRolloutResume, "rollout_resume", change(audit.ActionRolloutResume, s.resumeRollout, control...))
	handle("POST "+api.PathAdminRolloutAbort, "rollout_abort", change(audit.ActionRolloutAbort, s.abortRollout, control...))
	handle("POST "+api.PathAdminApproverKeys, "approver_key_register", change(audit.ActionKeyChange, s.registerApproverKey, approve...))
	handle("GET "+api.PathAdminApproverKeys, "approver_key_list", s.authorized(s.listApproverKeys, read...))
	handle("GET "+api.PathAdminAuditExport, "audit_export", s.authorized(s.exportAudit, adminauth.PermAuditExport))
}

func (s *Server) needRollouts() error {
	if s.rollouts == nil {
		return refuse(api.CodeNotConfigured, "this fleet server runs without staged rollouts (no director)")
	}
	return nil
}

// rolloutError maps the engine's refusals.
func rolloutError(what string, err error) error {
	var rf *refusal
	switch {
	case errors.As(err, &rf):
		return rf
	case errors.Is(err, rollout.ErrInvalid):
		return refuseErr(api.CodeBadRequest, err, "%s", what)
	case errors.Is(err, rollout.ErrNotFound):
		return refuseErr(api.CodeNotFound, err, "%s", what)
	case errors.Is(err, rollout.ErrState), errors.Is(err, rollout.ErrSamePerson), errors.Is(err, rollout.ErrNeedsApproval):
		return refuseErr(api.CodeConflict, err, "%s", what)
	case errors.Is(err, rollout.ErrSignature):
		return refuseErr(api.CodeForbidden, err, "%s", what)
	}
	return directorError(what, err)
}

func actor(p principal) rollout.Actor { return rollout.Actor{Name: p.name, Source: p.addr} }

// denied records a refused admin action in the audit log (the request
// itself is answered either way).
func (s *Server) denied(ctx context.Context, p principal, action, target string, err error) {
	if s.auditLog == nil {
		return
	}
	msg := err.Error()
	if len(msg) > audit.MaxDetailValueLen {
		msg = msg[:audit.MaxDetailValueLen]
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	e := audit.Entry{Actor: audit.Actor{Kind: audit.ActorAdmin, ID: p.name}, Action: audit.ActionAccessDenied, Target: target,
		Outcome: audit.OutcomeDenied, Source: p.addr, Details: map[string]string{"attempted": action, "reason": msg}}
	markRecorded(ctx)
	if _, err := s.auditLog.Append(ctx, e); err != nil {
		s.log.Error("audit entry not written", "action", action, "err", err)
	}
}

// rolloutID reads {id}.
func rolloutID(r *http.Request) (store.RolloutID, error) {
	id := store.RolloutID(r.PathValue("id"))
	if err := id.Validate(); err != nil {
		return "", refuse(api.CodeBadRequest, "%v", err)
	}
	return id, nil
}

// reauthorize checks one more permission for the same session (the
// request's handler learned which it needs from the body).
func (s *Server) reauthorize(r *http.Request, p adminauth.Permission) error {
	tok := r.Header.Get("Authorization")[len("Bearer "):]
	if _, err := s.auth.Authorize(r.Context(), tok, clientOf(r), p); err != nil {
		return authError(err, []adminauth.Permission{p})
	}
	return nil
}

type rolloutRequest api.RolloutRequest

func (q *rolloutRequest) Validate() error { return (*api.RolloutRequest)(q).Validate() }

func (s *Server) createRollout(w http.ResponseWriter, r *http.Request, p principal) error {
	if err := s.needRollouts(); err != nil {
		return err
	}
	var req rolloutRequest
	if err := decode(w, r, api.MaxRolloutRequest, &req); err != nil {
		return err
	}
	spec, err := rollout.SpecFromRequest(api.RolloutRequest(req))
	if err != nil {
		return rolloutError("rollout", err)
	}
	// A document that changes the security policy is a security admin's
	// to start; anything else an operator's.
	keys, err := s.rollouts.PolicyChange(r.Context(), spec)
	if err != nil {
		return rolloutError("rollout", err)
	}
	need := adminauth.PermRolloutStart
	if len(keys) > 0 {
		need = adminauth.PermPolicyWrite
	}
	if err := s.reauthorize(r, need); err != nil {
		target := "group " + spec.Group
		if spec.Device != "" {
			target = "device " + spec.Device
		}
		s.denied(r.Context(), p, "rollout.create", target, err)
		return err
	}
	v, err := s.rollouts.Create(r.Context(), spec, actor(p))
	if err != nil {
		return rolloutError("rollout", err)
	}
	writeJSON(w, http.StatusCreated, v)
	return nil
}

func (s *Server) listRollouts(w http.ResponseWriter, r *http.Request, _ principal) error {
	if err := s.needRollouts(); err != nil {
		return err
	}
	pg, err := page(r)
	if err != nil {
		return err
	}
	if pg.Limit > 100 {
		pg.Limit = 100
	}
	vs, next, err := s.rollouts.List(r.Context(), pg.After, pg.Limit)
	if err != nil {
		return rolloutError("rollouts", err)
	}
	writeJSON(w, http.StatusOK, api.RolloutPage{Rollouts: vs, Next: next})
	return nil
}

func (s *Server) showRollout(w http.ResponseWriter, r *http.Request, _ principal) error {
	if err := s.needRollouts(); err != nil {
		return err
	}
	id, err := rolloutID(r)
	if err != nil {
		return err
	}
	v, err := s.rollouts.Get(r.Context(), id)
	if err != nil {
		return rolloutError("rollout", err)
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) rolloutDevices(w http.ResponseWriter, r *http.Request, _ principal) error {
	if err := s.needRollouts(); err != nil {
		return err
	}
	id, err := rolloutID(r)
	if err != nil {
		return err
	}
	pg, err := page(r)
	if err != nil {
		return err
	}
	devs, next, err := s.rollouts.Devices(r.Context(), id, pg.After, pg.Limit)
	if err != nil {
		return rolloutError("rollout devices", err)
	}
	writeJSON(w, http.StatusOK, api.RolloutDevicePage{Devices: devs, Next: next})
	return nil
}

// approvalPermission is what approving this rollout needs: a security
// admin's approval for a security policy change, an operator's otherwise.
func (s *Server) approvalPermission(r *http.Request, id store.RolloutID) error {
	v, err := s.rollouts.Get(r.Context(), id)
	if err != nil {
		return rolloutError("rollout", err)
	}
	need := adminauth.PermApproveRollout
	if len(v.PolicyChange) > 0 {
		need = adminauth.PermApproveSecurity
	}
	return s.reauthorize(r, need)
}

func (s *Server) approveRollout(w http.ResponseWriter, r *http.Request, p principal) error {
	if err := s.needRollouts(); err != nil {
		return err
	}
	id, err := rolloutID(r)
	if err != nil {
		return err
	}
	if err := s.approvalPermission(r, id); err != nil {
		s.denied(r.Context(), p, "approval.grant", "rollout "+string(id), err)
		return err
	}
	v, err := s.rollouts.Approve(r.Context(), id, actor(p))
	if err != nil {
		s.denied(r.Context(), p, "approval.grant", "rollout "+string(id), err)
		return rolloutError("approve", err)
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

type rolloutAction api.RolloutAction

func (a *rolloutAction) Validate() error { return (*api.RolloutAction)(a).Validate() }

func (s *Server) control(w http.ResponseWriter, r *http.Request, p principal,
	do func(context.Context, store.RolloutID, rollout.Actor, string) (rollout.View, error), what string) error {
	if err := s.needRollouts(); err != nil {
		return err
	}
	id, err := rolloutID(r)
	if err != nil {
		return err
	}
	var req rolloutAction
	if err := decode(w, r, api.MaxRequestBody, &req); err != nil {
		return err
	}
	v, err := do(r.Context(), id, actor(p), req.Reason)
	if err != nil {
		return rolloutError(what, err)
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) haltRollout(w http.ResponseWriter, r *http.Request, p principal) error {
	return s.control(w, r, p, s.rollouts.Halt, "halt")
}

func (s *Server) resumeRollout(w http.ResponseWriter, r *http.Request, p principal) error {
	return s.control(w, r, p, s.rollouts.Resume, "resume")
}

func (s *Server) abortRollout(w http.ResponseWriter, r *http.Request, p principal) error {
	return s.control(w, r, p, s.rollouts.Abort, "abort")
}

// directChange refuses an assignment change that must go through an
// approved rollout (fleet/rollout.DirectChange).
func (s *Server) directChange(r *http.Request, sc store.Scope, doc []byte) error {
	if s.rollouts == nil {
		return nil
	}
	if err := s.rollouts.DirectChange(r.Context(), sc, doc); err != nil {
		return rolloutError("change", err)
	}
	return nil
}

// exportAudit streams the audit log as JSON lines (fleet/audit's export),
// recording the export first.
func (s *Server) exportAudit(w http.ResponseWriter, r *http.Request, p principal) error {
	if s.auditLog == nil {
		return refuse(api.CodeNotConfigured, "this fleet server runs without an audit log")
	}
	size, err := s.auditLog.Size(r.Context())
	if err != nil {
		return &refusal{code: api.CodeInternal, msg: "audit log: internal error", cause: err}
	}
	e := audit.Entry{Actor: audit.Actor{Kind: audit.ActorAdmin, ID: p.name}, Action: audit.ActionAuditExport, Outcome: audit.OutcomeSuccess,
		Source: p.addr, Details: map[string]string{"size": strconv.FormatInt(size, 10)}}
	if _, err := s.auditLog.Append(r.Context(), e); err != nil {
		return &refusal{code: api.CodeUnavailable, msg: "audit log: the export could not be recorded", cause: err}
	}
	// A checkpoint covering the export's own entry, so the export ends on
	// a signed head.
	if _, err := s.auditLog.Checkpoint(r.Context()); err != nil {
		return &refusal{code: api.CodeInternal, msg: "audit log: checkpoint", cause: err}
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if err := s.auditLog.Export(r.Context(), w); err != nil {
		// Headers are gone: the client sees a truncated export, which
		// its verification names.
		s.log.Warn("audit export cut", "admin", p.name, "err", err)
	}
	return nil
}
