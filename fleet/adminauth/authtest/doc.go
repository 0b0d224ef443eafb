// Package authtest is the conformance suite every adminauth.Store passes
// (boltauth, pgauth): the store contract (admins, sessions, throttles and
// their bounds, atomic updates under concurrency, from two handles for a
// shared database), and the Authenticator's flows on that store: login
// with enrolment, TOTP and its replay, lockout with an injected clock,
// enumeration resistance, session fixation and replay after logout, the
// network binding and step-up. Tests only.
package authtest
