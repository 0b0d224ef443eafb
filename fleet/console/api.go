package console

import (
	"net/http"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/console/approval"
	"github.com/hardphone/hardphone/fleet/console/consoleapi"
	"github.com/hardphone/hardphone/fleet/store"
)

// The JSON API: the same rules as the web console, for hpctl. It is a
// "client certificate + password + TOTP" flow: every request needs an
// admin client certificate (admin CA), the login names the admin the
// certificate names, the password gives a pending token that only a TOTP
// code turns into a session, and the session is bound like a browser's
// (network and user agent: a token copied elsewhere needs the code
// again) and to the certificate's admin. Tokens travel in the
// Authorization header, never in a cookie, so no other site can make a
// browser send them (no CSRF); step-up is POST PathStepUp with a fresh
// code.

func (c *Console) apiLogin(q *req) error {
	var in consoleapi.LoginRequest
	if err := readJSON(q, &in); err != nil {
		return err
	}
	if len(in.Name) > maxNameInput || len(in.Password) > adminauth.MaxPasswordLen+1 {
		return refuse(consoleapi.CodeBadRequest, "bad_request", "name or password too long")
	}
	n, nerr := adminauth.NormalizeName(in.Name)
	if err := c.certMatches(q.r, n); nerr != nil || err != nil {
		// The same answer as a wrong password, recorded as one.
		return c.loginFailed(q, in.Name, adminauth.ErrBadCredentials)
	}
	res, err := c.auth.Login(q.ctx, in.Name, in.Password, q.client)
	if err != nil {
		return c.loginFailed(q, in.Name, err)
	}
	if err := c.loginSucceeded(q, in.Name, res); err != nil {
		return err
	}
	out := consoleapi.LoginResponse{Token: res.Token, Stage: consoleapi.StageSecondFactor, TOTP: res.TOTP, WebAuthn: res.WebAuthn}
	if res.Kind == adminauth.SessionEnrol {
		out.Stage = consoleapi.StageEnrol
	}
	writeJSON(q.w, http.StatusOK, out)
	return nil
}

// apiProveTOTP serves PathLoginTOTP and PathStepUp: a code on a pending
// session (the login), or on a full one (step-up, or re-verification from
// a new network).
func (c *Console) apiProveTOTP(q *req) error {
	var in consoleapi.CodeRequest
	if err := readJSON(q, &in); err != nil {
		return err
	}
	if len(in.Code) > maxCodeInput {
		return refuse(consoleapi.CodeBadRequest, "bad_request", "code too long")
	}
	p := c.purposeOf(q)
	if q.info != nil {
		if err := c.certMatches(q.r, q.info.Name); err != nil {
			return err
		}
	}
	tok, err := c.auth.ProveTOTP(q.ctx, q.token, in.Code, q.client)
	if err != nil {
		return c.factorFailed(q, p, "totp", err)
	}
	info, err := c.factorProved(q, p, "totp", tok)
	if err != nil {
		return err
	}
	if err := c.certMatches(q.r, info.Name); err != nil {
		c.endSession(q.ctx, tok)
		return err
	}
	writeJSON(q.w, http.StatusOK, consoleapi.TokenResponse{Token: tok, Expires: info.Expires})
	return nil
}

func (c *Console) apiLogout(q *req) error {
	c.logout(q)
	q.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (c *Console) apiSession(q *req) error {
	writeJSON(q.w, http.StatusOK, consoleapi.Session{Name: q.info.Name, Role: string(q.info.Role),
		SecondFactorAt: q.info.SecondFactorAt, Expires: q.info.Expires, Permissions: permissions(q.info.Role, c.o.now())})
	return nil
}

func (c *Console) apiEnrolTOTP(q *req) error {
	e, err := c.auth.BeginTOTPEnrolment(q.ctx, q.token, q.client)
	if err != nil {
		return authError(err)
	}
	writeJSON(q.w, http.StatusOK, consoleapi.TOTPEnrolment{Secret: string(e.Secret), URI: e.URI})
	return nil
}

func (c *Console) apiEnrolTOTPConfirm(q *req) error {
	var in consoleapi.CodeRequest
	if err := readJSON(q, &in); err != nil {
		return err
	}
	if len(in.Code) > maxCodeInput {
		return refuse(consoleapi.CodeBadRequest, "bad_request", "code too long")
	}
	tok, err := c.auth.FinishTOTPEnrolment(q.ctx, q.token, in.Code, q.client)
	if err != nil {
		return c.enrolFailed(q, "totp", err)
	}
	if err := c.enrolled(q, "totp", tok); err != nil {
		return err
	}
	if err := c.certMatches(q.r, q.info.Name); err != nil {
		c.endSession(q.ctx, tok)
		return err
	}
	writeJSON(q.w, http.StatusOK, consoleapi.TokenResponse{Token: tok, Expires: q.info.Expires})
	return nil
}

func apiDevice(d store.Device) consoleapi.Device {
	return consoleapi.Device{ID: string(d.ID), Serial: d.Serial, Model: d.Model, Group: d.Group, State: string(d.State),
		EnrolledAt: d.EnrolledAt, LastSeen: d.LastSeen, CertNotAfter: d.CertNotAfter}
}

func (c *Console) apiDevices(q *req) error {
	p, err := c.devices(q)
	if err != nil {
		return err
	}
	out := consoleapi.DevicePage{Devices: []consoleapi.Device{}, Next: p.Next}
	for _, d := range p.Items {
		out.Devices = append(out.Devices, apiDevice(d))
	}
	writeJSON(q.w, http.StatusOK, out)
	return nil
}

func apiEvent(e Event) consoleapi.Event {
	return consoleapi.Event{Device: string(e.Device), Time: e.Time, Kind: e.Kind, Severity: e.Severity, Count: e.Count, Detail: e.Detail}
}

func (c *Console) apiDeviceEvents(q *req) error {
	id, err := deviceID(q)
	if err != nil {
		return err
	}
	evs, err := c.events.DeviceEvents(q.ctx, id, MaxEvents)
	if err != nil {
		return storeError("events", err)
	}
	out := []consoleapi.Event{}
	for _, e := range evs {
		out = append(out, apiEvent(e))
	}
	writeJSON(q.w, http.StatusOK, out)
	return nil
}

func apiEntry(e audit.Entry) consoleapi.AuditEntry {
	out := consoleapi.AuditEntry{Index: e.Index, Time: e.Time, Actor: string(e.Actor.Kind) + ":" + e.Actor.ID,
		Action: string(e.Action), Target: e.Target, Outcome: string(e.Outcome), Refs: e.Approvals, Details: e.Details}
	if e.Source.IsValid() {
		out.Source = e.Source.String()
	}
	return out
}

func (c *Console) apiAudit(q *req) error {
	v, err := c.auditPage(q)
	if err != nil {
		return err
	}
	out := consoleapi.AuditPage{Size: v.Size, Entries: []consoleapi.AuditEntry{}, Verified: v.Verified, Problem: v.Problem}
	if v.Checkpoint != nil {
		out.Checkpoint = string(v.Checkpoint.Note)
	}
	for _, e := range v.Entries {
		out.Entries = append(out.Entries, apiEntry(e))
	}
	writeJSON(q.w, http.StatusOK, out)
	return nil
}

func apiAdmin(a adminauth.Admin) consoleapi.Admin {
	return consoleapi.Admin{ID: a.ID, Name: a.Name, Role: string(a.Role), TOTP: a.TOTPSecret != "",
		Passkeys: len(a.Credentials), Disabled: a.Disabled, CreatedAt: a.CreatedAt}
}

func (c *Console) apiAdmins(q *req) error {
	as, err := c.adminList(q)
	if err != nil {
		return err
	}
	out := []consoleapi.Admin{}
	for _, a := range as {
		out = append(out, apiAdmin(a))
	}
	writeJSON(q.w, http.StatusOK, out)
	return nil
}

func apiChange(ch approval.Change) consoleapi.Change {
	return consoleapi.Change{ID: string(ch.ID), Kind: string(ch.Kind), ProposedBy: ch.ProposedBy.Name, ProposedAt: ch.ProposedAt,
		Expires: ch.Expires, Target: ch.Target.Name, TargetID: ch.Target.AdminID, FromRole: ch.FromRole, ToRole: ch.ToRole,
		State: string(ch.State), DecidedBy: ch.DecidedBy.Name, DecidedAt: ch.DecidedAt, Reason: ch.Reason}
}

func (c *Console) apiApprovals(q *req) error {
	p, d, err := c.changes(q)
	if err != nil {
		return err
	}
	out := []consoleapi.Change{}
	for _, ch := range append(p, d...) {
		out = append(out, apiChange(ch))
	}
	writeJSON(q.w, http.StatusOK, out)
	return nil
}

func writeChange(q *req, status int, ch approval.Change, err error) error {
	if err != nil {
		return err
	}
	writeJSON(q.w, status, apiChange(ch))
	return nil
}

func (c *Console) apiProposeAdmin(q *req) error {
	var in consoleapi.ProposeAdmin
	if err := readJSON(q, &in); err != nil {
		return err
	}
	ch, err := c.proposeAdmin(q, in.Name, in.Role, in.Password)
	return writeChange(q, http.StatusAccepted, ch, err)
}

func (c *Console) apiProposeRole(q *req) error {
	var in consoleapi.ProposeRole
	if err := readJSON(q, &in); err != nil {
		return err
	}
	ch, err := c.proposeRole(q, pathID(q, "id"), in.Role)
	return writeChange(q, http.StatusAccepted, ch, err)
}

func (c *Console) apiProposeDisable(q *req) error {
	ch, err := c.proposeDisable(q, pathID(q, "id"))
	return writeChange(q, http.StatusAccepted, ch, err)
}

func (c *Console) apiApprove(q *req) error {
	id, err := changeID(q)
	if err != nil {
		return err
	}
	ch, err := c.approve(q, id)
	return writeChange(q, http.StatusOK, ch, err)
}

func (c *Console) apiRefuse(q *req) error {
	id, err := changeID(q)
	if err != nil {
		return err
	}
	var in consoleapi.Refusal
	if q.r.ContentLength != 0 {
		if err := readJSON(q, &in); err != nil {
			return err
		}
	}
	ch, err := c.refuseChange(q, id, in.Reason)
	return writeChange(q, http.StatusOK, ch, err)
}
