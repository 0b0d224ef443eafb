// Package policy is hardphone's one crypto policy: TLS versions, suites and
// certificate verification, SIP digest algorithms, SRTP profiles and their
// order, DTLS-SRTP fingerprints. Every channel asks it; nothing else in the
// tree hard-codes a crypto choice.
//
// Threat: downgrade. A peer or a misconfiguration must not be able to steer a
// channel to a weaker primitive than this package allows. The package has no
// knob that turns certificate verification or SRTP replay protection off.
//
// Any package of hardphone may import it; it imports nothing of ours.
package policy
