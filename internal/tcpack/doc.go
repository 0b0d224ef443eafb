// Package tcpack tells how much of what was written on a TLS connection
// the peer's TCP has not acknowledged yet (Linux's SIOCOUTQ, tcp(7)). The
// syslog exporters (agent/events on the phone, fleet/audit on the server)
// count a record delivered only once the collector's TCP acknowledged it,
// so a connection that breaks never loses what its send queue held.
//
// Threat: none of its own; it is how "delivered" is decided without
// trusting a write that only reached a local buffer.
//
// Imported by agent/events, fleet/audit and fleet/alert. It imports golang.org/x/sys.
package tcpack
