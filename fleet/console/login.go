package console

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"html/template"
	"image/png"
	"net/http"
	"strconv"

	"github.com/pquerna/otp"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/console/consoleapi"
)

// purpose is what a second factor proves on a session: the login's
// second step, re-verification of a session used from elsewhere, or a
// step-up before a privileged action.
type purpose string

const (
	purposeLogin    purpose = "login"
	purposeReverify purpose = "reverify"
	purposeStepUp   purpose = "step_up"
)

// purposeOf finds what a factor proved on token will mean, and the admin
// when the session says (a full one).
func (c *Console) purposeOf(q *req) purpose {
	info, err := c.auth.Authenticate(q.ctx, q.token, q.client)
	switch {
	case err == nil:
		q.info = &info
		return purposeStepUp
	case errors.Is(err, adminauth.ErrSecondFactorRequired):
		return purposeReverify
	}
	return purposeLogin
}

func (p purpose) action() audit.Action {
	switch p {
	case purposeReverify:
		return audit.ActionSecondFactor
	case purposeStepUp:
		return audit.ActionStepUp
	}
	return audit.ActionLogin
}

// typedActor is the audit actor of a login attempt: the name as typed,
// an identity claimed and not established.
func typedActor(name string) audit.Actor {
	if name == "" {
		name = "(empty)"
	}
	return audit.Actor{Kind: audit.ActorUnknown, ID: name}
}

// loginFailed records a failed password step and returns its refusal:
// one answer for a wrong password, an unknown name and a disabled admin;
// Retry-After on lockout, whether the name exists or not.
func (c *Console) loginFailed(q *req, name string, err error) error {
	rf, ok := authError(err).(*refusal)
	if !ok {
		return err
	}
	e := entry(q, audit.ActionLogin, audit.OutcomeFailure, "", map[string]string{"step": "password", "reason": rf.reason})
	if rf.code == consoleapi.CodeLockedOut {
		e.Action, e.Outcome = audit.ActionLockout, audit.OutcomeDenied
		e.Details["retry_after"] = strconv.Itoa(int(rf.retry.Seconds() + 0.5))
	}
	e.Actor = typedActor(name)
	c.add(q, e)
	rf.audited = true
	return rf
}

// loginSucceeded records a right password (a pending login). A login the
// log cannot record does not happen.
func (c *Console) loginSucceeded(q *req, name string, res adminauth.LoginResult) error {
	n, _ := adminauth.NormalizeName(name) // Login accepted it
	e := entry(q, audit.ActionLogin, audit.OutcomePending, "", map[string]string{"step": "password"})
	e.Actor = audit.Actor{Kind: audit.ActorAdmin, ID: n}
	if res.Kind == adminauth.SessionEnrol {
		e.Details["next"] = "enrol"
	}
	if _, err := c.rec.record(q.ctx, e); err != nil {
		c.endSession(q.ctx, res.Token)
		return unavailable("login", err)
	}
	return nil
}

// factorFailed records a failed second factor and returns its refusal.
func (c *Console) factorFailed(q *req, p purpose, factor string, err error) error {
	rf, ok := authError(err).(*refusal)
	if !ok {
		return err
	}
	e := entry(q, p.action(), audit.OutcomeFailure, "", map[string]string{"step": factor, "reason": rf.reason})
	if rf.code == consoleapi.CodeLockedOut {
		e.Action, e.Outcome = audit.ActionLockout, audit.OutcomeDenied
	}
	if q.info == nil {
		e.Actor = audit.Actor{Kind: audit.ActorUnknown, ID: "pending-login"}
	}
	c.add(q, e)
	rf.audited = true
	return rf
}

// factorProved records a proved factor under the new session token; if
// the log refuses, the new session ends: nothing unaudited stays logged
// in.
func (c *Console) factorProved(q *req, p purpose, factor, newToken string) (adminauth.SessionInfo, error) {
	info, err := c.auth.Authenticate(q.ctx, newToken, q.client)
	if err != nil {
		return info, authError(err)
	}
	q.info = &info
	outcome := audit.OutcomeSuccess
	e := entry(q, p.action(), outcome, "", map[string]string{"step": factor})
	if _, err := c.rec.record(q.ctx, e); err != nil {
		c.endSession(q.ctx, newToken)
		return info, unavailable("second factor", err)
	}
	return info, nil
}

// endSession logs a session out, for a step that could not be recorded.
func (c *Console) endSession(ctx context.Context, token string) {
	if err := c.auth.Logout(context.WithoutCancel(ctx), token); err != nil && !errors.Is(err, adminauth.ErrSessionInvalid) {
		c.logger.Error("session not ended after an audit failure", "err", err)
	}
}

// --- web ---

func (c *Console) webRoot(q *req) error {
	http.Redirect(q.w, q.r, "/console/inventory", http.StatusSeeOther)
	return nil
}

// loginToken returns the login form's CSRF token, setting its cookie when
// the browser has none.
func loginToken(q *req) string {
	if ck, err := q.r.Cookie(cookieLogin); err == nil && len(ck.Value) == 43 {
		return ck.Value
	}
	t := newLoginToken()
	http.SetCookie(q.w, &http.Cookie{Name: cookieLogin, Value: t, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode})
	return t
}

func (c *Console) webLoginPage(q *req) error {
	if q.token != "" {
		if _, err := c.auth.Authenticate(q.ctx, q.token, q.client); err == nil {
			http.Redirect(q.w, q.r, "/console/inventory", http.StatusSeeOther)
			return nil
		}
	}
	c.render(q, http.StatusOK, "login", loginView{LoginToken: loginToken(q)})
	return nil
}

type loginView struct {
	LoginToken string
	Name       string
}

// factorView is the second-factor page: after the password, to
// re-verify, or to step up.
type factorView struct {
	Purpose  purpose
	Next     string
	TOTP     bool
	WebAuthn bool
	Error    string
}

func (c *Console) webLogin(q *req) error {
	ck, err := q.r.Cookie(cookieLogin)
	form, ferr := formValue(q, "login_token", 64)
	if ferr != nil {
		return ferr
	}
	if err != nil || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(form)) != 1 || form == "" {
		return refuse(consoleapi.CodeForbidden, "csrf", "request refused: the login form is stale or came from another site; reload the page")
	}
	name, err := formValue(q, "name", maxNameInput)
	if err != nil {
		return err
	}
	password, err := formValue(q, "password", adminauth.MaxPasswordLen+1)
	if err != nil {
		return err
	}
	res, err := c.auth.Login(q.ctx, name, password, q.client)
	if err != nil {
		ferr := c.loginFailed(q, name, err)
		var rf *refusal
		if errors.As(ferr, &rf) && (rf.code == consoleapi.CodeUnauthenticated || rf.code == consoleapi.CodeLockedOut) {
			// The same page for every failure, unknown names included.
			if rf.code == consoleapi.CodeLockedOut {
				q.w.Header().Set("Retry-After", strconv.Itoa(int((rf.retry.Seconds())+0.999)))
			}
			c.render(q, rf.code.Status(), "login", loginView{LoginToken: form}, rf.msg)
			return nil
		}
		return ferr
	}
	if err := c.loginSucceeded(q, name, res); err != nil {
		return err
	}
	setSessionCookie(q.w, res.Token)
	if res.Kind == adminauth.SessionEnrol {
		http.Redirect(q.w, q.r, "/console/enrol", http.StatusSeeOther)
		return nil
	}
	q.token = res.Token
	c.render(q, http.StatusOK, "factor", factorView{Purpose: purposeLogin, Next: "/console/inventory", TOTP: res.TOTP, WebAuthn: res.WebAuthn})
	return nil
}

// webFactorPage serves /console/reverify and /console/stepup.
func (c *Console) webFactorPage(q *req) error {
	v := factorView{Purpose: purposeReverify, Next: safeNext(q.r.URL.Query().Get("next")), TOTP: true, WebAuthn: true}
	if c.purposeOf(q) == purposeStepUp {
		v.Purpose = purposeStepUp
		if ad, err := c.admins.AdminByID(q.ctx, q.info.AdminID); err == nil {
			v.TOTP, v.WebAuthn = ad.TOTPSecret != "", len(ad.Credentials) > 0
		}
	}
	c.render(q, http.StatusOK, "factor", v)
	return nil
}

func (c *Console) webProveTOTP(q *req) error {
	code, err := formValue(q, "code", maxCodeInput)
	if err != nil {
		return err
	}
	next, err := formValue(q, "next", 256)
	if err != nil {
		return err
	}
	next = safeNext(next)
	p := c.purposeOf(q)
	tok, err := c.auth.ProveTOTP(q.ctx, q.token, code, q.client)
	if err != nil {
		ferr := c.factorFailed(q, p, "totp", err)
		var rf *refusal
		if errors.As(ferr, &rf) && rf.reason == "bad_credentials" {
			c.render(q, rf.code.Status(), "factor", factorView{Purpose: p, Next: next, TOTP: true, WebAuthn: true,
				Error: "code not accepted"})
			return nil
		}
		return ferr
	}
	if _, err := c.factorProved(q, p, "totp", tok); err != nil {
		return err
	}
	setSessionCookie(q.w, tok)
	http.Redirect(q.w, q.r, next, http.StatusSeeOther)
	return nil
}

func (c *Console) webPasskeyBegin(q *req) error {
	opts, err := c.auth.BeginWebAuthnProof(q.ctx, q.token, q.client)
	if err != nil {
		return authError(err)
	}
	q.w.Header().Set("Content-Type", "application/json")
	_, err = q.w.Write(opts)
	return err
}

func (c *Console) webPasskeyFinish(q *req) error {
	body, err := readBody(q)
	if err != nil {
		return err
	}
	next := safeNext(q.r.URL.Query().Get("next"))
	p := c.purposeOf(q)
	tok, err := c.auth.FinishWebAuthnProof(q.ctx, q.token, body, q.client)
	if err != nil {
		return c.factorFailed(q, p, "webauthn", err)
	}
	if _, err := c.factorProved(q, p, "webauthn", tok); err != nil {
		return err
	}
	setSessionCookie(q.w, tok)
	writeJSON(q.w, http.StatusOK, map[string]string{"next": next})
	return nil
}

func (c *Console) webLogout(q *req) error {
	c.logout(q)
	clearCookie(q.w, cookieSession)
	http.Redirect(q.w, q.r, "/console/login", http.StatusSeeOther)
	return nil
}

// logout ends q's session and records it; a dead session is no error
// (the browser is logged out either way).
func (c *Console) logout(q *req) {
	if info, err := c.auth.Authenticate(q.ctx, q.token, q.client); err == nil {
		q.info = &info
	}
	err := c.auth.Logout(q.ctx, q.token)
	out := audit.OutcomeSuccess
	if err != nil {
		out = audit.OutcomeFailure
		if !errors.Is(err, adminauth.ErrSessionInvalid) {
			c.logger.Error("logout", "err", err)
		}
	}
	c.add(q, entry(q, audit.ActionLogout, out, "", nil))
}

// --- enrolment ---

type enrolView struct {
	Secret string
	URI    string
	// QR is a data: URL of the PNG this server drew (html/template
	// refuses data: URLs of type string).
	QR    template.URL
	Error string
}

func (c *Console) webEnrolPage(q *req) error {
	c.render(q, http.StatusOK, "enrol", enrolView{})
	return nil
}

func (c *Console) webEnrolTOTP(q *req) error {
	e, err := c.auth.BeginTOTPEnrolment(q.ctx, q.token, q.client)
	if err != nil {
		return authError(err)
	}
	v := enrolView{Secret: string(e.Secret), URI: e.URI}
	if k, err := otp.NewKeyFromURL(e.URI); err == nil {
		if img, err := k.Image(200, 200); err == nil {
			var b bytes.Buffer
			if png.Encode(&b, img) == nil {
				v.QR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b.Bytes()))
			}
		}
	}
	c.render(q, http.StatusOK, "enrol_totp", v)
	return nil
}

func (c *Console) webEnrolTOTPConfirm(q *req) error {
	code, err := formValue(q, "code", maxCodeInput)
	if err != nil {
		return err
	}
	tok, err := c.auth.FinishTOTPEnrolment(q.ctx, q.token, code, q.client)
	if err != nil {
		return c.enrolFailed(q, "totp", err)
	}
	if err := c.enrolled(q, "totp", tok); err != nil {
		return err
	}
	setSessionCookie(q.w, tok)
	http.Redirect(q.w, q.r, "/console/inventory", http.StatusSeeOther)
	return nil
}

func (c *Console) webPasskeyRegisterBegin(q *req) error {
	opts, err := c.auth.BeginWebAuthnRegistration(q.ctx, q.token, q.client)
	if err != nil {
		return authError(err)
	}
	q.w.Header().Set("Content-Type", "application/json")
	_, err = q.w.Write(opts)
	return err
}

func (c *Console) webPasskeyRegisterFinish(q *req) error {
	body, err := readBody(q)
	if err != nil {
		return err
	}
	tok, err := c.auth.FinishWebAuthnRegistration(q.ctx, q.token, body, q.client)
	if err != nil {
		return c.enrolFailed(q, "webauthn", err)
	}
	if err := c.enrolled(q, "webauthn", tok); err != nil {
		return err
	}
	setSessionCookie(q.w, tok)
	writeJSON(q.w, http.StatusOK, map[string]string{"next": "/console/inventory"})
	return nil
}

func (c *Console) enrolFailed(q *req, factor string, err error) error {
	rf, ok := authError(err).(*refusal)
	if !ok {
		return err
	}
	e := entry(q, audit.ActionEnrolFactor, audit.OutcomeFailure, "", map[string]string{"factor": factor, "reason": rf.reason})
	c.add(q, e)
	rf.audited = true
	return rf
}

// enrolled records a new factor under the new full session; unrecorded,
// the session ends (the factor stays enrolled: it is the admin's own).
func (c *Console) enrolled(q *req, factor, newToken string) error {
	info, err := c.auth.Authenticate(q.ctx, newToken, q.client)
	if err != nil {
		return authError(err)
	}
	q.info = &info
	if _, err := c.rec.record(q.ctx, entry(q, audit.ActionEnrolFactor, audit.OutcomeSuccess, "", map[string]string{"factor": factor})); err != nil {
		c.endSession(q.ctx, newToken)
		return unavailable("enrolment", err)
	}
	return nil
}
