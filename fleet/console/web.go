package console

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/console/consoleapi"
)

// Cookies. The __Host- prefix makes the browser refuse the cookie unless
// it is Secure, has Path=/ and no Domain (RFC 6265bis §4.1.3.2): no
// sibling host or plain-HTTP page can set or overwrite it.
const (
	// cookieSession holds the session token (pending or full).
	cookieSession = "__Host-hpfleet-session"
	// cookieLogin holds the login form's CSRF token (double submit):
	// before a session exists, it ties the form to this browser.
	cookieLogin = "__Host-hpfleet-login"
)

// Bounds.
const (
	// maxBody bounds a request body: forms and WebAuthn responses.
	maxBody = 64 << 10
	// maxNameInput and maxCodeInput bound form fields before parsing.
	maxNameInput = 256
	maxCodeInput = 16
)

// csp is the Content-Security-Policy of every answer: scripts, styles and
// everything else from the console's own origin only; no inline script
// or style, no eval, no plugins, no framing, no <base>, forms post only
// here. Images may be data: URLs (the TOTP QR code).
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

func securityHeaders(w http.ResponseWriter, r *http.Request, api bool) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// Not no-referrer: under it browsers send "Origin: null" even on
	// same-origin form posts (the Fetch standard's "serializing a
	// request origin"), and the Origin check needs the real one. same-origin
	// sends nothing to other sites (and no URL here holds a secret).
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "publickey-credentials-get=(self), publickey-credentials-create=(self), camera=(), microphone=(), geolocation=()")
	h.Set("Cache-Control", "no-store")
	if r.TLS != nil {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
}

// clientOf is what adminauth binds sessions to: the peer address (the
// console is not behind a proxy: hpfleet terminates TLS itself) and the
// user agent.
func clientOf(r *http.Request) adminauth.Client {
	c := adminauth.Client{UserAgent: r.UserAgent()}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		c.Addr = ap.Addr().Unmap()
	} else if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		c.Addr, _ = netip.ParseAddr(host) // an unparsable address stays invalid: its own "network"
	}
	return c
}

func sessionCookie(r *http.Request) string {
	ck, err := r.Cookie(cookieSession)
	if err != nil || len(ck.Value) > 64 {
		return ""
	}
	return ck.Value
}

func setSessionCookie(w http.ResponseWriter, token string) {
	http.SetCookie(w, &http.Cookie{Name: cookieSession, Value: token, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode})
}

func clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// csrfToken is the session's CSRF token: a hash of its session token, so
// every replica computes it without shared state, it changes with every
// new session token (login, step-up, re-verification), and knowing it
// reveals nothing of the session token. A page on another site cannot
// read it (same-origin policy), nor the HttpOnly cookie it derives from.
func csrfToken(sessionToken string) string {
	h := sha256.Sum256([]byte("hpfleet console csrf v1\x00" + sessionToken))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// checkCSRF compares the request's CSRF token (form field "csrf" or
// header X-CSRF-Token) with the session's.
func checkCSRF(r *http.Request, sessionToken string) error {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		got = r.PostFormValue("csrf")
	}
	want := csrfToken(sessionToken)
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return refuse(consoleapi.CodeForbidden, "csrf", "request refused: its form is stale or came from another site; reload the page")
	}
	return nil
}

// newLoginToken makes the login form's CSRF token.
func newLoginToken() string {
	b := make([]byte, 32)
	rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

// checkOrigin accepts a state-changing browser request only from one of
// the console's origins. Browsers send Origin on every request whose
// method is neither GET nor HEAD (the Fetch standard's "append a request
// Origin header"); a request without one is refused.
func (c *Console) checkOrigin(r *http.Request) error {
	o := r.Header.Get("Origin")
	if o == "" || !c.origins[o] {
		return refuse(consoleapi.CodeForbidden, "cross_origin", "request refused: it did not come from the console's own pages")
	}
	return nil
}

// adminCert returns the verified client certificate when it chains to an
// admin CA; the JSON API requires one.
func (c *Console) adminCert(r *http.Request) (*x509.Certificate, error) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		chain := r.TLS.VerifiedChains[0]
		root := chain[len(chain)-1]
		for _, ca := range c.adminCAs {
			if bytes.Equal(root.Raw, ca.Raw) {
				return chain[0], nil
			}
		}
	}
	return nil, refuse(consoleapi.CodeUnauthenticated, "no_admin_certificate", "an admin client certificate is required")
}

// certMatches requires the admin certificate's common name to be the
// admin's login name: a certificate alone logs nobody in, and a session
// token alone is useless without the certificate of its admin.
func (c *Console) certMatches(r *http.Request, name string) error {
	leaf, err := c.adminCert(r)
	if err != nil {
		return err
	}
	if n, err := adminauth.NormalizeName(leaf.Subject.CommonName); err != nil || n != name {
		return refuse(consoleapi.CodeUnauthenticated, "certificate_mismatch", "authentication failed")
	}
	return nil
}

// bearer reads "Authorization: Bearer TOKEN" ("" when absent).
func bearer(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", nil
	}
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || len(tok) == 0 || len(tok) > 64 {
		return "", refuse(consoleapi.CodeUnauthenticated, "bad_token", "malformed Authorization header")
	}
	return tok, nil
}

// safeNext returns a local console path to go to after a factor: only
// "/console/..." of path characters, never another host (no open
// redirect).
func safeNext(s string) string {
	const home = "/console/inventory"
	if len(s) > 256 || !strings.HasPrefix(s, WebPrefix) || strings.Contains(s, "//") || strings.ContainsAny(s, "\\\r\n\t ") {
		return home
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Path != s {
		return home
	}
	switch u.Path {
	case "/console/login", "/console/reverify", "/console/stepup":
		return home
	}
	return s
}

// fail answers a refusal: the web gets a redirect (to log in, re-verify,
// or step up) or an error page, the API a JSON error; both are audited.
func (c *Console) fail(q *req, err error) {
	var rf *refusal
	if !errors.As(err, &rf) {
		rf = internal("request", err)
	}
	// Refusals are driven by clients: the audit log has them (at a
	// bounded rate for strangers); the process log only at debug level,
	// failures of ours as errors.
	level := slog.LevelDebug
	if rf.code.Status() >= 500 {
		level = slog.LevelError
	}
	attrs := []any{"route", q.rt.path, "code", string(rf.code), "reason", rf.reason, "remote", q.r.RemoteAddr}
	if rf.cause != nil {
		attrs = append(attrs, "err", rf.cause.Error())
	}
	c.logger.Log(q.ctx, level, "request refused", attrs...)
	c.recordRefusal(q, rf)
	if rf.code == consoleapi.CodeLockedOut && rf.retry > 0 {
		q.w.Header().Set("Retry-After", strconv.Itoa(int((rf.retry+time.Second-1)/time.Second)))
	}
	if q.rt.api || wantsJSON(q.r) {
		writeJSONError(q.w, rf)
		return
	}
	get := !stateChanging(q.r.Method)
	switch {
	case rf.code == consoleapi.CodeUnauthenticated && (rf.reason == "no_session" || rf.reason == "session_invalid"):
		if rf.reason == "session_invalid" {
			clearCookie(q.w, cookieSession)
		}
		if get {
			http.Redirect(q.w, q.r, "/console/login", http.StatusSeeOther)
			return
		}
	case rf.code == consoleapi.CodeSecondFactor:
		next := q.r.URL.Path
		if !get {
			next = q.rt.back
		}
		http.Redirect(q.w, q.r, "/console/reverify?next="+url.QueryEscape(safeNext(next)), http.StatusSeeOther)
		return
	case rf.code == consoleapi.CodeStepUp:
		next := q.r.URL.RequestURI()
		if !get {
			next = q.rt.back
		}
		http.Redirect(q.w, q.r, "/console/stepup?next="+url.QueryEscape(safeNext(next)), http.StatusSeeOther)
		return
	}
	c.renderError(q, rf)
}

// wantsJSON: the console's own script calls JSON endpoints of the web
// side (the WebAuthn ceremonies).
func wantsJSON(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/json")
}

func writeJSONError(w http.ResponseWriter, rf *refusal) {
	e := &consoleapi.Error{Code: rf.code, Message: rf.msg}
	if rf.retry > 0 {
		e.RetryAfter = int((rf.retry + time.Second - 1) / time.Second)
	}
	writeJSON(w, rf.code.Status(), consoleapi.ErrorBody{Error: e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// A failed write is the client gone: nothing to do.
	_, _ = w.Write(append(b, '\n'))
}

// readJSON decodes a bounded JSON body into v, strictly.
func readJSON(q *req, v any) error {
	if !strings.HasPrefix(q.r.Header.Get("Content-Type"), "application/json") {
		return refuse(consoleapi.CodeBadRequest, "bad_request", "want Content-Type application/json")
	}
	dec := json.NewDecoder(q.r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return refuse(consoleapi.CodeTooLarge, "too_large", "request body over %d bytes", maxBody)
		}
		return &refusal{code: consoleapi.CodeBadRequest, reason: "bad_request", msg: "request body does not parse", cause: err}
	}
	return nil
}

// readBody reads a bounded raw body (a WebAuthn response).
func readBody(q *req) ([]byte, error) {
	var b bytes.Buffer
	if _, err := b.ReadFrom(q.r.Body); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, refuse(consoleapi.CodeTooLarge, "too_large", "request body over %d bytes", maxBody)
		}
		return nil, &refusal{code: consoleapi.CodeBadRequest, reason: "bad_request", msg: "request body", cause: err}
	}
	return b.Bytes(), nil
}

// formValue reads a form field of at most max bytes.
func formValue(q *req, name string, max int) (string, error) {
	if err := q.r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return "", refuse(consoleapi.CodeTooLarge, "too_large", "form over %d bytes", maxBody)
		}
		return "", &refusal{code: consoleapi.CodeBadRequest, reason: "bad_request", msg: "form does not parse", cause: err}
	}
	v := q.r.PostForm.Get(name)
	if len(v) > max {
		return "", refuse(consoleapi.CodeBadRequest, "bad_request", "field %s over %d bytes", name, max)
	}
	return v, nil
}

// actor is who the audit log says acted in q.
func actor(q *req) audit.Actor {
	if q.info != nil {
		return audit.Actor{Kind: audit.ActorAdmin, ID: q.info.Name}
	}
	return audit.Actor{Kind: audit.ActorUnknown, ID: "anonymous"}
}
