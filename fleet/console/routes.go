package console

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/console/consoleapi"
)

// access is what a route needs before its handler runs.
type access int

const (
	// accessPublic: nothing (the login form, static files). Its
	// handler checks what it needs (the login form's CSRF cookie).
	accessPublic access = iota
	// accessFactor: a session token of any kind, for proving a factor
	// (pending login, re-verification, step-up) or logging out;
	// adminauth checks the kind.
	accessFactor
	// accessEnrol: an enrolment session (first login) or a full one
	// with a recent second factor; adminauth checks.
	accessEnrol
	// accessSession: a full session, no permission (who am I).
	accessSession
	// accessFull: a full session whose role holds the route's
	// permission now (adminauth.Authorize, step-up included).
	accessFull
)

// route is one endpoint. Every route of accessFull names its permission.
type route struct {
	method, path string
	access       access
	perm         adminauth.Permission
	// also is a second permission that admits the request as well
	// (starting a rollout: rollout.start, or policy.write for a security
	// policy change); the handler then authorizes the one the action
	// needs. "" for none.
	also adminauth.Permission
	// api: a consoleapi route (bearer token, client certificate, JSON);
	// otherwise a web route (cookie, Origin and CSRF token, HTML).
	api bool
	// back is the page a web POST returns to after a step-up.
	back string
	h    func(*req) error
}

// table lists every route.
func (c *Console) table() []route {
	web := func(method, path string, a access, p adminauth.Permission, back string, h func(*req) error) route {
		return route{method: method, path: path, access: a, perm: p, back: back, h: h}
	}
	api := func(method, path string, a access, p adminauth.Permission, h func(*req) error) route {
		return route{method: method, path: path, access: a, perm: p, api: true, h: h}
	}
	const none = adminauth.Permission("")
	return []route{
		web("GET", "/console/{$}", accessPublic, none, "", c.webRoot),
		web("GET", "/console/static/{file}", accessPublic, none, "", c.webStatic),
		web("GET", "/console/login", accessPublic, none, "", c.webLoginPage),
		web("POST", "/console/login", accessPublic, none, "", c.webLogin),
		web("POST", "/console/login/totp", accessFactor, none, "", c.webProveTOTP),
		web("GET", "/console/reverify", accessFactor, none, "", c.webFactorPage),
		web("GET", "/console/stepup", accessFactor, none, "", c.webFactorPage),
		web("POST", "/console/webauthn/begin", accessFactor, none, "", c.webPasskeyBegin),
		web("POST", "/console/webauthn/finish", accessFactor, none, "", c.webPasskeyFinish),
		web("POST", "/console/logout", accessFactor, none, "", c.webLogout),
		web("GET", "/console/enrol", accessEnrol, none, "", c.webEnrolPage),
		web("POST", "/console/enrol/totp", accessEnrol, none, "/console/enrol", c.webEnrolTOTP),
		web("POST", "/console/enrol/totp/confirm", accessEnrol, none, "/console/enrol", c.webEnrolTOTPConfirm),
		web("POST", "/console/enrol/webauthn/begin", accessEnrol, none, "/console/enrol", c.webPasskeyRegisterBegin),
		web("POST", "/console/enrol/webauthn/finish", accessEnrol, none, "/console/enrol", c.webPasskeyRegisterFinish),
		web("GET", "/console/inventory", accessFull, adminauth.PermInventoryRead, "", c.webInventory),
		web("GET", "/console/devices/{id}", accessFull, adminauth.PermInventoryRead, "", c.webDevice),
		web("GET", "/console/events", accessFull, adminauth.PermEventsRead, "", c.webEvents),
		web("GET", "/console/rollouts", accessFull, adminauth.PermRolloutRead, "", c.webRollouts),
		web("GET", "/console/rollouts/new", accessFull, adminauth.PermRolloutStart, "", c.webRolloutNew).or(adminauth.PermPolicyWrite),
		web("POST", "/console/rollouts", accessFull, adminauth.PermRolloutStart, "/console/rollouts/new", c.webRolloutCreate).or(adminauth.PermPolicyWrite),
		web("GET", "/console/rollouts/{id}", accessFull, adminauth.PermRolloutRead, "", c.webRollout),
		web("POST", "/console/rollouts/{id}/approve", accessFull, adminauth.PermApproveRollout, "/console/rollouts", c.webRolloutDecide(true)).or(adminauth.PermApproveSecurity),
		web("POST", "/console/rollouts/{id}/refuse", accessFull, adminauth.PermApproveRollout, "/console/rollouts", c.webRolloutDecide(false)).or(adminauth.PermApproveSecurity),
		web("POST", "/console/rollouts/{id}/halt", accessFull, adminauth.PermRolloutControl, "/console/rollouts", c.webRolloutControl(RolloutHalt)),
		web("POST", "/console/rollouts/{id}/resume", accessFull, adminauth.PermRolloutControl, "/console/rollouts", c.webRolloutControl(RolloutResume)),
		web("POST", "/console/rollouts/{id}/abort", accessFull, adminauth.PermRolloutControl, "/console/rollouts", c.webRolloutControl(RolloutAbort)),
		web("GET", "/console/audit", accessFull, adminauth.PermAuditRead, "", c.webAudit),
		web("GET", "/console/audit/export", accessFull, adminauth.PermAuditExport, "/console/audit", c.webAuditExport),
		web("GET", "/console/admins", accessFull, adminauth.PermAdminRead, "", c.webAdmins),
		web("POST", "/console/admins", accessFull, adminauth.PermAdminManage, "/console/admins", c.webProposeAdmin),
		web("POST", "/console/admins/{id}/role", accessFull, adminauth.PermAdminManage, "/console/admins", c.webProposeRole),
		web("POST", "/console/admins/{id}/disable", accessFull, adminauth.PermAdminManage, "/console/admins", c.webProposeDisable),
		web("GET", "/console/approvals", accessFull, adminauth.PermAdminRead, "", c.webApprovals),
		web("POST", "/console/approvals/{id}/approve", accessFull, adminauth.PermApproveSecurity, "/console/approvals", c.webApprove),
		web("POST", "/console/approvals/{id}/refuse", accessFull, adminauth.PermApproveSecurity, "/console/approvals", c.webRefuse),

		api("POST", consoleapi.PathLogin, accessPublic, none, c.apiLogin),
		api("POST", consoleapi.PathLoginTOTP, accessFactor, none, c.apiProveTOTP),
		api("POST", consoleapi.PathStepUp, accessFactor, none, c.apiProveTOTP),
		api("POST", consoleapi.PathLogout, accessFactor, none, c.apiLogout),
		api("GET", consoleapi.PathSession, accessSession, none, c.apiSession),
		api("POST", consoleapi.PathEnrolTOTP, accessEnrol, none, c.apiEnrolTOTP),
		api("POST", consoleapi.PathEnrolTOTPFinish, accessEnrol, none, c.apiEnrolTOTPConfirm),
		api("GET", consoleapi.PathDevices, accessFull, adminauth.PermInventoryRead, c.apiDevices),
		api("GET", consoleapi.PathDeviceEvents, accessFull, adminauth.PermEventsRead, c.apiDeviceEvents),
		api("GET", consoleapi.PathAudit, accessFull, adminauth.PermAuditRead, c.apiAudit),
		api("GET", consoleapi.PathAuditExport, accessFull, adminauth.PermAuditExport, c.webAuditExport),
		api("GET", consoleapi.PathAdmins, accessFull, adminauth.PermAdminRead, c.apiAdmins),
		api("POST", consoleapi.PathAdmins, accessFull, adminauth.PermAdminManage, c.apiProposeAdmin),
		api("POST", consoleapi.PathAdminRole, accessFull, adminauth.PermAdminManage, c.apiProposeRole),
		api("POST", consoleapi.PathAdminDisable, accessFull, adminauth.PermAdminManage, c.apiProposeDisable),
		api("GET", consoleapi.PathApprovals, accessFull, adminauth.PermAdminRead, c.apiApprovals),
		api("POST", consoleapi.PathApprove, accessFull, adminauth.PermApproveSecurity, c.apiApprove),
		api("POST", consoleapi.PathRefuse, accessFull, adminauth.PermApproveSecurity, c.apiRefuse),
	}
}

// or admits the route's requests with a second permission too.
func (rt route) or(p adminauth.Permission) route {
	rt.also = p
	return rt
}

// routes builds the multiplexer.
func (c *Console) routes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range c.table() {
		mux.Handle(rt.method+" "+rt.path, c.endpoint(rt))
	}
	// Everything else under the prefixes: 404 in the right shape.
	mux.Handle(WebPrefix, c.endpoint(route{path: WebPrefix, h: func(*req) error {
		return refuse(consoleapi.CodeNotFound, "not_found", "no such page")
	}}))
	mux.Handle(consoleapi.Prefix, c.endpoint(route{path: consoleapi.Prefix, api: true, h: func(*req) error {
		return refuse(consoleapi.CodeNotFound, "not_found", "no such endpoint")
	}}))
	return mux
}

// req is one request as the handlers see it.
type req struct {
	w      http.ResponseWriter
	r      *http.Request
	ctx    context.Context
	rt     route
	client adminauth.Client
	// token is the session token presented (cookie or bearer); "" none.
	token string
	// info is the session, once authenticated (accessSession,
	// accessFull, or a handler that authenticated).
	info *adminauth.SessionInfo
}

// stateChanging reports whether the method may change state: every
// method but GET and HEAD.
func stateChanging(m string) bool { return m != http.MethodGet && m != http.MethodHead }

// endpoint wraps a route's handler in the checks its access needs.
func (c *Console) endpoint(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w, r, rt.api)
		q := &req{w: w, r: r, ctx: r.Context(), rt: rt, client: clientOf(r)}
		if err := c.admit(q); err != nil {
			c.fail(q, err)
			return
		}
		if err := rt.h(q); err != nil {
			c.fail(q, err)
		}
	})
}

// admit runs the checks of the route's access, cheapest first: body
// bound, Origin, token form, CSRF token, client certificate, then the
// session in the store.
func (c *Console) admit(q *req) error {
	r := q.r
	if stateChanging(r.Method) {
		r.Body = http.MaxBytesReader(q.w, r.Body, maxBody)
	}
	if q.rt.api {
		if o := r.Header.Get("Origin"); o != "" && !c.origins[o] {
			// A browser page elsewhere calling the JSON API.
			return refuse(consoleapi.CodeForbidden, "cross_origin", "cross-origin request refused")
		}
		if _, err := c.adminCert(r); err != nil {
			return err
		}
		tok, err := bearer(r)
		if err != nil {
			return err
		}
		q.token = tok
	} else {
		if stateChanging(r.Method) {
			if err := c.checkOrigin(r); err != nil {
				return err
			}
		}
		q.token = sessionCookie(r)
	}
	if q.rt.access == accessPublic {
		return nil
	}
	if q.token == "" {
		return refuse(consoleapi.CodeUnauthenticated, "no_session", "log in first")
	}
	if !q.rt.api && stateChanging(r.Method) {
		if err := checkCSRF(r, q.token); err != nil {
			return err
		}
	}
	switch q.rt.access {
	case accessSession:
		info, err := c.auth.Authenticate(q.ctx, q.token, q.client)
		if err != nil {
			return authError(err)
		}
		q.info = &info
	case accessFull:
		if q.rt.perm == "" {
			return internal("route", errors.New(q.rt.path+" has no permission"))
		}
		info, err := c.auth.Authorize(q.ctx, q.token, q.client, q.rt.perm)
		if errors.Is(err, adminauth.ErrForbidden) && q.rt.also != "" {
			info, err = c.auth.Authorize(q.ctx, q.token, q.client, q.rt.also)
		}
		if err != nil {
			// Name the admin in the refusal's audit entry when the
			// session itself is good (forbidden, step-up).
			if i, aerr := c.auth.Authenticate(q.ctx, q.token, q.client); aerr == nil {
				q.info = &i
			}
			return authError(err)
		}
		q.info = &info
	}
	if q.rt.api && q.info != nil {
		if err := c.certMatches(r, q.info.Name); err != nil {
			return err
		}
	}
	return nil
}

// authError maps adminauth's answers to refusals. The messages are the
// same whatever the cause behind a bad credential.
func authError(err error) error {
	var lock *adminauth.LockoutError
	switch {
	case errors.As(err, &lock):
		return &refusal{code: consoleapi.CodeLockedOut, reason: "locked_out", retry: lock.RetryAfter,
			msg: "too many failed attempts; try again later"}
	case errors.Is(err, adminauth.ErrSessionInvalid):
		return refuse(consoleapi.CodeUnauthenticated, "session_invalid", "session expired or ended; log in again")
	case errors.Is(err, adminauth.ErrSecondFactorRequired):
		return refuse(consoleapi.CodeSecondFactor, "second_factor_required",
			"this session is used from another network or client: prove the second factor again")
	case errors.Is(err, adminauth.ErrStepUpRequired):
		return refuse(consoleapi.CodeStepUp, "step_up_required", "this action needs a fresh second factor")
	case errors.Is(err, adminauth.ErrForbidden):
		return refuse(consoleapi.CodeForbidden, "forbidden", "your role does not allow this")
	case errors.Is(err, adminauth.ErrBadCredentials), errors.Is(err, adminauth.ErrReplay):
		return refuse(consoleapi.CodeUnauthenticated, "bad_credentials", "authentication failed")
	case errors.Is(err, adminauth.ErrBusy):
		return unavailable("authentication", err)
	case errors.Is(err, adminauth.ErrInvalid):
		return &refusal{code: consoleapi.CodeBadRequest, reason: "invalid", msg: "request not valid", cause: err}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return unavailable("authentication", err)
	}
	return internal("authentication", err)
}

// pathID reads a path value, bounded.
func pathID(q *req, name string) string {
	v := q.r.PathValue(name)
	if len(v) > 128 {
		return ""
	}
	return strings.TrimSpace(v)
}
