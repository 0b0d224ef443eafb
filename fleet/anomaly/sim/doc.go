// Package sim generates a deterministic month of fleet traffic with
// labelled attacks mixed in, and evaluates an anomaly.Detector over it:
// detection rate and false positives per rule.
//
// The traffic (Generate) is a fleet of office phones with working hours,
// weekends, company holidays and vacations, home-office phones (some on
// dynamic addresses), softphones of travelling users who register from
// hotel networks and call the country they are in, night-shift phones,
// call-centre phones and lobby phones; scanners probing the exposed
// phones now and then; credential changes, the registrar rejecting a
// phone after one, and a registrar hiccup; and a planned bulk credential
// rotation. The attacks are toll fraud, slow low-rate fraud under the
// phone's caps, SIP scanner sweeps, credential stuffing (one source and a
// botnet), password guessing, registration hijacks and a credential-change
// burst. Everything follows from Config.Seed through a PCG generator and
// integer-valued choices, so a seed always gives the same stream.
//
// It is evaluation code, imported by tests and benchmarks of
// fleet/anomaly; the server never imports it.
package sim
