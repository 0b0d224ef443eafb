// Package dialplan is the phone's outbound dialling policy, its toll-fraud
// guard: which numbers an account may call (allowed patterns; international
// and premium-rate destinations refused unless allowed), how many calls per
// hour and per day, and at which hours of the week. agent/sip asks Check
// before any INVITE leaves; a refusal is a clear call error and a security
// event.
//
// Threat: a compromised account or a hijacked phone used for toll fraud:
// calls to premium-rate and international numbers, at night, in bulk. The
// limits hold whatever the caller says, and the counts survive a restart
// (they live in the state file), so a reboot does not reset them.
//
// Imported by agent/config (the policy is part of an account), agent/sip
// (the check), agent (the persistent counter it is handed) and system (which
// opens that counter in the state file). It imports bbolt and nothing of
// hardphone's.
package dialplan
