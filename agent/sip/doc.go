// Package sip is hardphone's SIP user agent on sipgo: accounts, registration
// with RFC 5626 keepalive, call control (hold, call waiting, blind and
// attended transfer: RFC 3515 REFER in both roles, RFC 3891 Replaces as
// the target), and the SIP security policy (TLS only, requests accepted
// only from the registrar's flow, digest algorithm floor, transfers by
// others refused unless allow_refer).
//
// Threat: a network peer that is not our registrar sending us requests, a
// registrar challenge that downgrades the digest, and a call whose media
// could fall back to plain RTP. Also a hostile caller or a hostile proxy
// on the registrar's own flow: calls are keyed by dialog (RFC 3261 §12:
// Call-ID and both tags) and every in-dialog request, ACK and CANCEL is
// matched to its dialog or transaction before it touches a call
// (dialog.go); calls are capped and INVITEs rate-limited (admission.go); a
// silent call ends (inactivity.go); digest challenges are answered only
// over the registrar's flow, for its realm, with qop=auth (register.go,
// digest.go). A flood on a plain UDP listener: datagrams not from its peer
// are refused statelessly as they are read, holding no goroutine or
// transaction (plainguard.go), and the ACK of an INVITE the phone refused
// over its flow is absorbed, not reported as an attack (refusalack.go). A
// REFER is someone else making the phone place a call, and an INVITE with
// Replaces someone taking one of its calls over: both are taken only
// inside an established dialog over the registrar's flow, and a referred
// call meets the same call caps and dialling policy as a dialled one
// (transferee.go, replaces.go). Media decisions, where media may be sent
// among them, are delegated to agent/media.
//
// Imported by agent, agent/control (status and event types), system and
// cmd/hardphone; sipgo types do not leave this package.
package sip
