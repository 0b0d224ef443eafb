// Package anomaly is hpfleet's anomaly detector: it keeps per-device
// baselines (outbound calls per hour of the week, countries and numbers
// called, call lengths, registration source networks, authentication
// failure rates) and fleet-wide correlations (one source probing many
// phones, authentication failures across many accounts, bursts of
// credential changes, registrations from networks the fleet never saw), and
// turns what departs from them into Findings with the Responses an admin
// enabled for each rule: an alert, a temporary outbound block (a dialling
// policy override the server pushes to the phone) or a quarantine (the
// server refuses the device's certificate renewal).
//
// The server hands every observation it receives (call records,
// registrations, security events, credential changes) to Detector.Observe
// and gets the findings back; it persists the detector with MarshalState
// and restores it with UnmarshalState. Memory is bounded: at most
// Config.MaxDevices devices, Config.MaxSources probing sources and
// Config.MaxNetworks networks are tracked (the least recently seen
// forgotten first), and every per-device list has a fixed cap.
//
// Threat: toll fraud from a compromised account (calls at night, to
// premium and international numbers, or slowly under the phone's caps),
// SIP scanners sweeping the fleet, password guessing and credential
// stuffing, registration hijacks, and a compromised admin changing many
// credentials. Observations come from phones and PBXs an attacker may
// control: every field is bounded and validated, an observation dated in
// the future or too far in the past is refused (so a phone cannot move the
// detector's clock), flagged activity is not learnt into a baseline, and a
// state blob is decoded fully and checked against every bound before it
// replaces the running state.
//
// Imported by fleet/server, fleet/alert (the Finding it sends) and
// cmd/hpfleet, and by its subpackage sim; it imports nothing of ours
// (in particular not agent/: the phone's event kinds are mirrored here).
// Subpackage sim generates labelled traffic to evaluate the rules.
package anomaly
