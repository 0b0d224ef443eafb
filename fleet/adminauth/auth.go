package adminauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"
)

// Authenticator runs admin logins, second factors, sessions and
// permission checks over a Store. It is safe for concurrent use, and any
// number of Authenticators (hpfleet replicas) may share one Store.
type Authenticator struct {
	st       Store     // never nil
	hasher   *Hasher   // never nil
	wa       *WebAuthn // nil: no passkeys
	rbac     *RBAC
	lock     LockoutPolicy
	idle     time.Duration
	absolute time.Duration
	pending  time.Duration
	stepUp   time.Duration
	issuer   string
	now      func() time.Time
	log      *slog.Logger

	// checks counts password checks (Stats).
	checks atomic.Int64
}

type options struct {
	hasher                          *Hasher
	wa                              *WebAuthn
	rbac                            *RBAC
	lock                            LockoutPolicy
	idle, absolute, pending, stepUp time.Duration
	issuer                          string
	now                             func() time.Time
	log                             *slog.Logger
}

// Option configures New.
type Option func(*options) error

// WithHasher sets the password hasher (default: DefaultParams).
func WithHasher(h *Hasher) Option {
	return func(o *options) error {
		if h == nil {
			return errors.New("nil hasher")
		}
		o.hasher = h
		return nil
	}
}

// WithWebAuthn enables passkeys with the relying party w.
func WithWebAuthn(w *WebAuthn) Option {
	return func(o *options) error {
		if w == nil {
			return errors.New("nil webauthn")
		}
		o.wa = w
		return nil
	}
}

// WithRBAC sets the permission checker (default: no time windows).
func WithRBAC(r *RBAC) Option {
	return func(o *options) error {
		if r == nil {
			return errors.New("nil rbac")
		}
		o.rbac = r
		return nil
	}
}

// WithLockout sets the backoff policy (default DefaultLockout).
func WithLockout(p LockoutPolicy) Option {
	return func(o *options) error {
		if err := p.check(); err != nil {
			return err
		}
		o.lock = p
		return nil
	}
}

// WithLifetimes sets the session idle and absolute limits, the time a
// pending login has for its second factor, and the step-up window.
func WithLifetimes(idle, absolute, pending, stepUp time.Duration) Option {
	return func(o *options) error {
		if idle <= 0 || absolute < idle || pending <= 0 || stepUp <= 0 || absolute > 7*24*time.Hour {
			return fmt.Errorf("lifetimes idle %v, absolute %v, pending %v, step-up %v: %w", idle, absolute, pending, stepUp, ErrInvalid)
		}
		o.idle, o.absolute, o.pending, o.stepUp = idle, absolute, pending, stepUp
		return nil
	}
}

// WithIssuer names the fleet in authenticator apps (default "hardphone fleet").
func WithIssuer(s string) Option {
	return func(o *options) error {
		if s == "" || len(s) > 64 {
			return fmt.Errorf("issuer %q: %w", s, ErrInvalid)
		}
		o.issuer = s
		return nil
	}
}

// WithClock sets the clock (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return errors.New("nil clock")
		}
		o.now = now
		return nil
	}
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("nil logger")
		}
		o.log = l
		return nil
	}
}

// New returns an Authenticator over st.
func New(st Store, opts ...Option) (*Authenticator, error) {
	o := options{rbac: &RBAC{}, lock: DefaultLockout, idle: DefaultIdle, absolute: DefaultAbsolute,
		pending: DefaultPending, stepUp: DefaultStepUp, issuer: "hardphone fleet", now: time.Now,
		log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("new authenticator: %w", err)
		}
	}
	if st == nil {
		return nil, errors.New("new authenticator: nil store")
	}
	if o.hasher == nil {
		h, err := NewHasher(DefaultParams)
		if err != nil {
			return nil, fmt.Errorf("new authenticator: %w", err)
		}
		o.hasher = h
	}
	return &Authenticator{st: st, hasher: o.hasher, wa: o.wa, rbac: o.rbac, lock: o.lock, idle: o.idle,
		absolute: o.absolute, pending: o.pending, stepUp: o.stepUp, issuer: o.issuer, now: o.now,
		log: o.log.With("component", "adminauth")}, nil
}

// CreateAdmin makes an admin with a password and a role and no second
// factor yet (its first login can only enrol one). Who may create an
// admin, and the second approval, is the caller's business.
func (a *Authenticator) CreateAdmin(ctx context.Context, name, password string, role Role) (Admin, error) {
	n, err := NormalizeName(name)
	if err != nil {
		return Admin{}, fmt.Errorf("create admin: %w", err)
	}
	if !role.Valid() {
		return Admin{}, fmt.Errorf("create admin: role %q: %w", role, ErrInvalid)
	}
	h, err := a.hasher.Hash(ctx, password)
	if err != nil {
		return Admin{}, fmt.Errorf("create admin: %w", err)
	}
	ad := Admin{ID: NewAdminID(), Name: n, Role: role, PasswordHash: h, CreatedAt: a.now().UTC()}
	if err := a.st.CreateAdmin(ctx, ad); err != nil {
		return Admin{}, fmt.Errorf("create admin %s: %w", n, err)
	}
	a.log.Info("admin created", "admin", ad)
	return ad, nil
}

// SetPassword replaces an admin's password and ends its sessions.
func (a *Authenticator) SetPassword(ctx context.Context, id, password string) error {
	h, err := a.hasher.Hash(ctx, password)
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	if err := a.st.UpdateAdmin(ctx, id, func(ad *Admin) error { ad.PasswordHash = h; return nil }); err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	_, err = a.st.DeleteAdminSessions(ctx, id)
	return err
}

// SetRole changes an admin's role and ends its sessions (a session never
// carries a role it was not created under).
func (a *Authenticator) SetRole(ctx context.Context, id string, role Role) error {
	if !role.Valid() {
		return fmt.Errorf("set role: %q: %w", role, ErrInvalid)
	}
	if err := a.st.UpdateAdmin(ctx, id, func(ad *Admin) error { ad.Role = role; return nil }); err != nil {
		return fmt.Errorf("set role: %w", err)
	}
	_, err := a.st.DeleteAdminSessions(ctx, id)
	return err
}

// SetDisabled disables (or enables) an admin; disabling ends its sessions.
func (a *Authenticator) SetDisabled(ctx context.Context, id string, disabled bool) error {
	if err := a.st.UpdateAdmin(ctx, id, func(ad *Admin) error { ad.Disabled = disabled; return nil }); err != nil {
		return fmt.Errorf("set disabled: %w", err)
	}
	if !disabled {
		return nil
	}
	_, err := a.st.DeleteAdminSessions(ctx, id)
	return err
}

// accountKey is the throttle key of a login name, existing or not: a
// hash, so every name (however long or strange) has a key of one size.
func accountKey(name string) string {
	h := sha256.Sum256([]byte(strings.ToLower(name)))
	return "acct:" + hex.EncodeToString(h[:16])
}

// LoginResult is the outcome of a right password.
type LoginResult struct {
	// Token is the pending session's token: it can only prove the second
	// factor (Kind SessionPending) or enrol one (SessionEnrol).
	Token string
	Kind  SessionKind
	// TOTP and WebAuthn say which factors the admin has.
	TOTP, WebAuthn bool
}

// LogValue implements slog.LogValuer.
func (LoginResult) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// Login checks a name and password from client c. Whatever is wrong (no
// such admin, wrong password, disabled) the answer is ErrBadCredentials,
// after the same store calls and one password hash; a name or source
// locked out gets a *LockoutError before any of that. A right password
// gives a pending session, never a full one.
func (a *Authenticator) Login(ctx context.Context, name, password string, c Client) (LoginResult, error) {
	now := a.now()
	acct, src := accountKey(name), c.source()
	if err := a.checkThrottles(ctx, now, acct, src); err != nil {
		return LoginResult{}, err
	}
	norm, nerr := NormalizeName(name)
	if nerr != nil {
		norm = "" // looked up all the same: no early answer for a bad name
	}
	ad, err := a.st.AdminByName(ctx, norm)
	known := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInvalid) {
		return LoginResult{}, fmt.Errorf("login: %w", err)
	}
	encoded := ""
	if known {
		encoded = ad.PasswordHash
	}
	a.checks.Add(1)
	ok, rehash, err := a.hasher.Check(ctx, encoded, password)
	if err != nil && !errors.Is(err, ErrInvalid) {
		return LoginResult{}, fmt.Errorf("login: %w", err)
	}
	if !ok || !known || ad.Disabled {
		if err := a.fail(ctx, now, acct, src); err != nil {
			return LoginResult{}, err
		}
		return LoginResult{}, ErrBadCredentials
	}
	// The account's failures are cleared only when the second factor is
	// proved too (proved): a right password alone must not reset the
	// backoff that guards the second factor against guessing.
	if rehash {
		if h, err := a.hasher.Hash(ctx, password); err == nil {
			// A failed rehash leaves the old, still valid hash.
			if err := a.st.UpdateAdmin(ctx, ad.ID, func(x *Admin) error { x.PasswordHash = h; return nil }); err != nil {
				a.log.Warn("password rehash not stored", "admin", ad, "err", err)
			}
		}
	}
	kind := SessionPending
	if !ad.HasSecondFactor() {
		kind = SessionEnrol
	}
	tok, h := newToken()
	s := Session{Hash: h, AdminID: ad.ID, Kind: kind, Fingerprint: c.fingerprint(), CreatedAt: now,
		LastSeen: now, Expires: now.Add(a.pending)}
	if err := a.st.CreateSession(ctx, s); err != nil {
		return LoginResult{}, fmt.Errorf("login: %w", err)
	}
	return LoginResult{Token: tok, Kind: kind, TOTP: ad.TOTPSecret != "", WebAuthn: len(ad.Credentials) > 0}, nil
}

// checkThrottles returns a *LockoutError if any key is locked at now.
func (a *Authenticator) checkThrottles(ctx context.Context, now time.Time, keys ...string) error {
	var wait time.Duration
	for _, k := range keys {
		t, err := a.st.Throttle(ctx, k)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("lockout: %w", err)
		}
		wait = max(wait, a.lock.wait(t, now))
	}
	if wait > 0 {
		return &LockoutError{RetryAfter: wait}
	}
	return nil
}

// fail records a failure against each key.
func (a *Authenticator) fail(ctx context.Context, now time.Time, keys ...string) error {
	for _, k := range keys {
		err := a.st.UpdateThrottle(ctx, k, a.lock.MaxEntries, func(t *Throttle) (bool, error) {
			a.lock.fail(t, now)
			return true, nil
		})
		if err != nil {
			return fmt.Errorf("lockout: %w", err)
		}
	}
	return nil
}

// clear forgets an account's failures after a success.
func (a *Authenticator) clear(ctx context.Context, key string) error {
	err := a.st.UpdateThrottle(ctx, key, a.lock.MaxEntries, func(*Throttle) (bool, error) { return false, nil })
	if err != nil {
		return fmt.Errorf("lockout: %w", err)
	}
	return nil
}

// load returns the live session of token and its admin, if the session's
// kind is one of kinds. Pending and enrolment sessions must come from the
// client they were made for.
func (a *Authenticator) load(ctx context.Context, token string, c Client, now time.Time, kinds ...SessionKind) (Session, Admin, error) {
	h, err := hashToken(token)
	if err != nil {
		return Session{}, Admin{}, err
	}
	s, err := a.st.SessionByHash(ctx, h)
	if errors.Is(err, ErrNotFound) {
		return Session{}, Admin{}, ErrSessionInvalid
	}
	if err != nil {
		return Session{}, Admin{}, fmt.Errorf("session: %w", err)
	}
	if !now.Before(s.Expires) {
		if err := a.st.DeleteSession(ctx, h); err != nil && !errors.Is(err, ErrNotFound) {
			a.log.Warn("expired session not deleted", "err", err)
		}
		return Session{}, Admin{}, ErrSessionInvalid
	}
	ok := false
	for _, k := range kinds {
		ok = ok || s.Kind == k
	}
	if !ok || s.Kind != SessionFull && s.Fingerprint != c.fingerprint() {
		return Session{}, Admin{}, ErrSessionInvalid
	}
	ad, err := a.st.AdminByID(ctx, s.AdminID)
	if errors.Is(err, ErrNotFound) {
		return Session{}, Admin{}, ErrSessionInvalid
	}
	if err != nil {
		return Session{}, Admin{}, fmt.Errorf("session: %w", err)
	}
	if ad.Disabled {
		return Session{}, Admin{}, ErrSessionInvalid
	}
	return s, ad, nil
}

func (a *Authenticator) info(s Session, ad Admin) SessionInfo {
	return SessionInfo{AdminID: ad.ID, Name: ad.Name, Role: ad.Role, Kind: s.Kind, SecondFactorAt: s.SecondFactorAt,
		CreatedAt: s.CreatedAt, Expires: s.Expires}
}

// Authenticate returns the full session of token. A session used from
// another network or user agent than it is bound to answers
// ErrSecondFactorRequired until a second factor is proved on it again
// (ProveTOTP, FinishWebAuthnProof), which rebinds it.
func (a *Authenticator) Authenticate(ctx context.Context, token string, c Client) (SessionInfo, error) {
	now := a.now()
	s, ad, err := a.load(ctx, token, c, now, SessionFull)
	if err != nil {
		return SessionInfo{}, err
	}
	if s.Fingerprint != c.fingerprint() {
		return SessionInfo{}, ErrSecondFactorRequired
	}
	if now.Sub(s.LastSeen) >= touchEvery {
		err := a.st.UpdateSession(ctx, s.Hash, func(x *Session) error {
			x.LastSeen = now
			x.Expires = a.expires(x.CreatedAt, now)
			s = *x
			return nil
		})
		if err != nil {
			return SessionInfo{}, fmt.Errorf("session: %w", err)
		}
	}
	return a.info(s, ad), nil
}

func (a *Authenticator) expires(created, seen time.Time) time.Time {
	e := seen.Add(a.idle)
	if abs := created.Add(a.absolute); abs.Before(e) {
		e = abs
	}
	return e
}

// Authorize is Authenticate, then the permission check: the admin's role
// must hold p now (RBAC), and a privileged p needs a second factor proved
// within the step-up window (ErrStepUpRequired: prove one, the session
// stays).
func (a *Authenticator) Authorize(ctx context.Context, token string, c Client, p Permission) (SessionInfo, error) {
	info, err := a.Authenticate(ctx, token, c)
	if err != nil {
		return SessionInfo{}, err
	}
	now := a.now()
	if err := a.rbac.Check(info.Role, p, now); err != nil {
		return SessionInfo{}, err
	}
	if p.Privileged() && now.Sub(info.SecondFactorAt) > a.stepUp {
		return SessionInfo{}, ErrStepUpRequired
	}
	return info, nil
}

// Logout ends the session of token; the token is worthless afterwards.
func (a *Authenticator) Logout(ctx context.Context, token string) error {
	h, err := hashToken(token)
	if err != nil {
		return err
	}
	if err := a.st.DeleteSession(ctx, h); err != nil {
		if errors.Is(err, ErrNotFound) {
			return ErrSessionInvalid
		}
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}

// RevokeSessions ends every session of an admin.
func (a *Authenticator) RevokeSessions(ctx context.Context, adminID string) (int, error) {
	return a.st.DeleteAdminSessions(ctx, adminID)
}

// Prune deletes expired sessions.
func (a *Authenticator) Prune(ctx context.Context) (int, error) {
	return a.st.PruneSessions(ctx, a.now())
}

// Ceremony tags: the first byte of Session.Ceremony says what it holds.
const (
	ceremonyTOTPEnrol byte = 't'
	ceremonyRegister  byte = 'r'
	ceremonyLogin     byte = 'l'
)

// takeCeremony removes and returns the session's ceremony data of the
// given tag, atomically: a ceremony is finished at most once.
func (a *Authenticator) takeCeremony(ctx context.Context, h TokenHash, tag byte) ([]byte, error) {
	var data []byte
	err := a.st.UpdateSession(ctx, h, func(s *Session) error {
		if len(s.Ceremony) == 0 || s.Ceremony[0] != tag {
			return ErrBadCredentials
		}
		data = bytes.Clone(s.Ceremony[1:])
		s.Ceremony = nil
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil, ErrSessionInvalid
	}
	if err != nil {
		return nil, err
	}
	return data, nil
}

func (a *Authenticator) putCeremony(ctx context.Context, h TokenHash, tag byte, data []byte) error {
	if len(data)+1 > MaxCeremony {
		return fmt.Errorf("ceremony of %d bytes: %w", len(data), ErrInvalid)
	}
	return a.st.UpdateSession(ctx, h, func(s *Session) error {
		s.Ceremony = append([]byte{tag}, data...)
		return nil
	})
}

// proved finishes a successful second factor: the session of s is
// replaced by a new full one with a new token (never the token the
// client held before: no fixation), bound to c, the factor proved now.
// A full session keeps its creation time, so its absolute limit holds.
func (a *Authenticator) proved(ctx context.Context, s Session, ad Admin, c Client, now time.Time) (string, error) {
	if err := a.clear(ctx, accountKey(ad.Name)); err != nil {
		return "", err
	}
	if err := a.st.DeleteSession(ctx, s.Hash); err != nil {
		// Someone else finished or ended it meanwhile: one winner.
		if errors.Is(err, ErrNotFound) {
			return "", ErrSessionInvalid
		}
		return "", fmt.Errorf("session: %w", err)
	}
	created := now
	if s.Kind == SessionFull {
		created = s.CreatedAt
	}
	tok, h := newToken()
	n := Session{Hash: h, AdminID: ad.ID, Kind: SessionFull, Fingerprint: c.fingerprint(), CreatedAt: created,
		LastSeen: now, Expires: a.expires(created, now), SecondFactorAt: now}
	if !now.Before(n.Expires) {
		return "", ErrSessionInvalid
	}
	if err := a.st.CreateSession(ctx, n); err != nil {
		return "", fmt.Errorf("session: %w", err)
	}
	return tok, nil
}

// failed records a failed proof: against the account, and on the session,
// which ends after maxProofFailures.
func (a *Authenticator) failed(ctx context.Context, s Session, ad Admin, c Client, now time.Time) error {
	if err := a.fail(ctx, now, accountKey(ad.Name), c.source()); err != nil {
		return err
	}
	end := false
	err := a.st.UpdateSession(ctx, s.Hash, func(x *Session) error {
		x.Failures++
		end = x.Failures >= maxProofFailures
		return nil
	})
	if end && err == nil {
		err = a.st.DeleteSession(ctx, s.Hash)
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("session: %w", err)
	}
	return nil
}

// ProveTOTP proves the TOTP second factor on the session of token: a
// pending login becomes a full session, a full session is rebound to c
// and its step-up time renewed. Either way the answer is a new token and
// the old one is dead. A code's time step is accepted once per admin
// (ErrReplay), whichever session presents it.
func (a *Authenticator) ProveTOTP(ctx context.Context, token, code string, c Client) (string, error) {
	now := a.now()
	s, ad, err := a.load(ctx, token, c, now, SessionPending, SessionFull)
	if err != nil {
		return "", err
	}
	if err := a.checkThrottles(ctx, now, accountKey(ad.Name), c.source()); err != nil {
		return "", err
	}
	err = a.st.UpdateAdmin(ctx, ad.ID, func(x *Admin) error {
		if x.TOTPSecret == "" {
			return ErrBadCredentials
		}
		step, err := CheckTOTP(x.TOTPSecret, code, now, x.TOTPLastStep)
		if err != nil {
			return err
		}
		x.TOTPLastStep = step
		return nil
	})
	if errors.Is(err, ErrBadCredentials) || errors.Is(err, ErrReplay) {
		if ferr := a.failed(ctx, s, ad, c, now); ferr != nil {
			return "", ferr
		}
		return "", err
	}
	if err != nil {
		return "", fmt.Errorf("prove TOTP: %w", err)
	}
	return a.proved(ctx, s, ad, c, now)
}

// BeginWebAuthnProof starts a passkey assertion on the session of token
// (pending or full): the options for navigator.credentials.get.
func (a *Authenticator) BeginWebAuthnProof(ctx context.Context, token string, c Client) ([]byte, error) {
	if a.wa == nil {
		return nil, fmt.Errorf("webauthn not configured: %w", ErrInvalid)
	}
	s, ad, err := a.load(ctx, token, c, a.now(), SessionPending, SessionFull)
	if err != nil {
		return nil, err
	}
	opts, sd, err := a.wa.BeginLogin(&ad)
	if err != nil {
		return nil, err
	}
	if err := a.putCeremony(ctx, s.Hash, ceremonyLogin, sd); err != nil {
		return nil, fmt.Errorf("begin webauthn: %w", err)
	}
	return opts, nil
}

// FinishWebAuthnProof checks the assertion and, like ProveTOTP, returns a
// new full session token.
func (a *Authenticator) FinishWebAuthnProof(ctx context.Context, token string, response []byte, c Client) (string, error) {
	if a.wa == nil {
		return "", fmt.Errorf("webauthn not configured: %w", ErrInvalid)
	}
	now := a.now()
	s, ad, err := a.load(ctx, token, c, now, SessionPending, SessionFull)
	if err != nil {
		return "", err
	}
	if err := a.checkThrottles(ctx, now, accountKey(ad.Name), c.source()); err != nil {
		return "", err
	}
	sd, err := a.takeCeremony(ctx, s.Hash, ceremonyLogin)
	if err != nil {
		return "", err
	}
	err = a.st.UpdateAdmin(ctx, ad.ID, func(x *Admin) error {
		cred, err := a.wa.FinishLogin(x, sd, response)
		if err != nil {
			return err
		}
		for i := range x.Credentials {
			if bytes.Equal(x.Credentials[i].ID, cred.ID) {
				x.Credentials[i] = cred
			}
		}
		return nil
	})
	if errors.Is(err, ErrBadCredentials) || errors.Is(err, ErrInvalid) {
		if ferr := a.failed(ctx, s, ad, c, now); ferr != nil {
			return "", ferr
		}
		if !errors.Is(err, ErrBadCredentials) {
			err = fmt.Errorf("%w: %w", ErrBadCredentials, err)
		}
		return "", err
	}
	if err != nil {
		return "", fmt.Errorf("finish webauthn: %w", err)
	}
	return a.proved(ctx, s, ad, c, now)
}

// enrolling loads a session allowed to add a factor: an enrolment session
// (first login), or a full one whose second factor is recent.
func (a *Authenticator) enrolling(ctx context.Context, token string, c Client, now time.Time) (Session, Admin, error) {
	s, ad, err := a.load(ctx, token, c, now, SessionEnrol, SessionFull)
	if err != nil {
		return Session{}, Admin{}, err
	}
	if s.Kind == SessionFull {
		if s.Fingerprint != c.fingerprint() {
			return Session{}, Admin{}, ErrSecondFactorRequired
		}
		if now.Sub(s.SecondFactorAt) > a.stepUp {
			return Session{}, Admin{}, ErrStepUpRequired
		}
	}
	return s, ad, nil
}

// BeginTOTPEnrolment makes a TOTP secret for the admin of token and keeps
// it on the session until FinishTOTPEnrolment confirms a code from it.
func (a *Authenticator) BeginTOTPEnrolment(ctx context.Context, token string, c Client) (TOTPEnrolment, error) {
	s, ad, err := a.enrolling(ctx, token, c, a.now())
	if err != nil {
		return TOTPEnrolment{}, err
	}
	e, err := NewTOTP(a.issuer, ad.Name)
	if err != nil {
		return TOTPEnrolment{}, err
	}
	if err := a.putCeremony(ctx, s.Hash, ceremonyTOTPEnrol, []byte(e.Secret)); err != nil {
		return TOTPEnrolment{}, fmt.Errorf("begin TOTP enrolment: %w", err)
	}
	return e, nil
}

// FinishTOTPEnrolment checks a code from the new secret, stores the
// secret (replacing any previous one) and returns a new full session
// token.
func (a *Authenticator) FinishTOTPEnrolment(ctx context.Context, token, code string, c Client) (string, error) {
	now := a.now()
	s, ad, err := a.enrolling(ctx, token, c, now)
	if err != nil {
		return "", err
	}
	secret, err := a.takeCeremony(ctx, s.Hash, ceremonyTOTPEnrol)
	if err != nil {
		return "", err
	}
	step, err := CheckTOTP(TOTPSecret(secret), code, now, -1)
	if err != nil {
		if ferr := a.failed(ctx, s, ad, c, now); ferr != nil {
			return "", ferr
		}
		return "", err
	}
	err = a.st.UpdateAdmin(ctx, ad.ID, func(x *Admin) error {
		x.TOTPSecret, x.TOTPLastStep = TOTPSecret(secret), step
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("finish TOTP enrolment: %w", err)
	}
	return a.proved(ctx, s, ad, c, now)
}

// BeginWebAuthnRegistration starts enrolling a passkey for the admin of
// token: the options for navigator.credentials.create.
func (a *Authenticator) BeginWebAuthnRegistration(ctx context.Context, token string, c Client) ([]byte, error) {
	if a.wa == nil {
		return nil, fmt.Errorf("webauthn not configured: %w", ErrInvalid)
	}
	s, ad, err := a.enrolling(ctx, token, c, a.now())
	if err != nil {
		return nil, err
	}
	opts, sd, err := a.wa.BeginRegistration(&ad)
	if err != nil {
		return nil, err
	}
	if err := a.putCeremony(ctx, s.Hash, ceremonyRegister, sd); err != nil {
		return nil, fmt.Errorf("begin webauthn registration: %w", err)
	}
	return opts, nil
}

// FinishWebAuthnRegistration stores the new passkey and returns a new
// full session token.
func (a *Authenticator) FinishWebAuthnRegistration(ctx context.Context, token string, response []byte, c Client) (string, error) {
	if a.wa == nil {
		return "", fmt.Errorf("webauthn not configured: %w", ErrInvalid)
	}
	now := a.now()
	s, ad, err := a.enrolling(ctx, token, c, now)
	if err != nil {
		return "", err
	}
	sd, err := a.takeCeremony(ctx, s.Hash, ceremonyRegister)
	if err != nil {
		return "", err
	}
	err = a.st.UpdateAdmin(ctx, ad.ID, func(x *Admin) error {
		cred, err := a.wa.FinishRegistration(x, sd, response)
		if err != nil {
			return err
		}
		if len(x.Credentials) >= MaxCredentials {
			return fmt.Errorf("%d credentials already: %w", len(x.Credentials), ErrInvalid)
		}
		x.Credentials = append(x.Credentials, cred)
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrBadCredentials) {
			if ferr := a.failed(ctx, s, ad, c, now); ferr != nil {
				return "", ferr
			}
		}
		return "", fmt.Errorf("finish webauthn registration: %w", err)
	}
	return a.proved(ctx, s, ad, c, now)
}

// Stats are counters for monitoring.
type Stats struct {
	// PasswordChecks counts argon2id checks run by Login, for every
	// attempt that was not locked out, whether the name exists or not.
	PasswordChecks int64
}

// Stats returns the counters.
func (a *Authenticator) Stats() Stats { return Stats{PasswordChecks: a.checks.Load()} }
