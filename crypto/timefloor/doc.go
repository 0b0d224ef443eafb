// Package timefloor is the phone's lowest believable time: never earlier
// than the time its firmware was built, nor than the latest time it has
// securely seen (the NotBefore of a registrar certificate that verified, a
// signed time from provisioning), kept in the state file and only ever
// raised. Every certificate and signature check asks Floor.Now, which is the
// system clock or the floor, whichever is later; PID 1 sets a clock that is
// behind the floor forward at boot.
//
// Threat: a clock that is wrong or was wound back. A phone without an RTC
// starts in 1970 (no certificate would verify, and nothing could be
// updated), and an attacker who sets the clock back revives expired signer
// and registrar certificates. The floor defeats the second and repairs the
// first as far as the phone's own history allows; a signed time source
// (issue 12's director timestamps) closes the rest. A clock ahead of real
// time is not the floor's business: certificates then only expire early.
//
// Imported by system only: it opens the floor in the state file, hands Now
// to every TLS client, the updater and the credential store, and sets the
// clock forward at boot for pid1 (system.SetClockFromFloor). It imports
// bbolt and nothing of hardphone's.
package timefloor
