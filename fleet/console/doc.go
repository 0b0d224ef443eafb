// Package console is hpfleet's admin console: the admin HTTP layer over
// fleet/adminauth (password, then TOTP or a WebAuthn passkey; enrolment;
// step-up; logout; adaptive re-authentication), the server-rendered web
// console (inventory, device detail, security events, rollouts with their
// rings, health, start (a form), approve/refuse and halt/resume/abort, audit trail, admins, approvals), and the JSON API hpctl speaks (consoleapi) with the
// same rules plus the admin's client certificate. Every route names one
// permission of adminauth's table and is authorized with it; every login,
// lockout, logout, admin action and refusal is appended to the audit log
// (fleet/audit); admin changes take effect only on a second admin's
// approval (fleet/console/approval).
//
// Threat: the network and the browser. A stranger guessing or stuffing
// passwords gets one generic answer for every failure and for unknown
// names, and exponential lockout per account and per source (Retry-After
// set); a page on another site that makes the admin's browser post a form
// or a fetch is refused by the Origin check, the per-session CSRF token
// and the SameSite=Strict cookie, each on its own; injected markup cannot
// run script (html/template escaping, a CSP of 'self' with no inline
// script or style, no eval); a stolen session cookie is useless from
// another network or browser without the second factor again, and after
// logout; a stolen or CSRF-driven session still cannot change admins on
// its own (two-person rule) or do anything privileged without a fresh
// second factor. Nothing secret goes into a URL; the session cookie is
// __Host-, Secure, HttpOnly, SameSite=Strict. Request bodies are bounded;
// refusals by unauthenticated clients are audited at a bounded rate (the
// excess is counted into the next entry), so guessing cannot flood the
// audit log.
//
// What it does not hold off: an attacker who controls the fleet server (it
// can mint sessions and write admin records directly: the signed audit
// checkpoints shipped off the server are what shows it), and two colluding
// admins.
//
// Imported by cmd/hpfleet only, which builds it over the management plane
// (adminauth, the audit log, the rollout engine through the Rollouts
// interface) and hands Handler to fleet/server (Config.Console) to mount
// beside the fleet API on one TLS listener; without an audit log hpfleet
// serves a 503 there instead of the console.
package console
