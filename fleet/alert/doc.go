// Package alert delivers the anomaly detector's findings to the people who
// act on them: Syslog sends each as an RFC 5424 message over mutual TLS
// with RFC 5425 framing to a collector (rsyslog, syslog-ng), counting it
// delivered once the collector's TCP acknowledged every byte; Webhook POSTs
// its JSON to an HTTPS endpoint, signed with HMAC-SHA256 when a secret is
// set. Both are fleet/anomaly Alerters.
//
// Threat: the collector and the webhook are on the network. TLS follows
// crypto/policy (the collector's name verified against the CAs given, no
// redirect followed, answers bounded); what a finding carries is the
// detector's own text and validated device IDs and networks, escaped for
// RFC 5424 structured data and stripped of control characters; the
// webhook secret is never logged.
//
// Imported by cmd/hpfleet. It imports fleet/anomaly (the Finding),
// crypto/policy and internal/tcpack.
package alert
