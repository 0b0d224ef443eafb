// Package sip is hardphone's SIP user agent on sipgo: accounts, registration
// with RFC 5626 keepalive, call control, and the SIP security policy (TLS
// only, requests accepted only from the registrar's flow, digest algorithm
// floor, REFER refused by default).
//
// Threat: a network peer that is not our registrar sending us requests, a
// registrar challenge that downgrades the digest, and a call whose media
// could fall back to plain RTP. Media decisions are delegated to agent/media.
//
// Imported by agent, agent/control (status and event types), system and
// cmd/hardphone; sipgo types do not leave this package.
package sip
