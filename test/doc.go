// Package test holds the harness that runs real SIP peers (Kamailio,
// baresip, SIPp), an rsyslog collector over TLS, packet captures and test
// PKIs inside a throwaway network namespace, and the servers the fleet
// server uses (PostgreSQL, as an unprivileged user on a private unix
// socket), and a headless Chromium driven over the DevTools protocol (the
// admin console's browser tests), for tests only.
//
// Only _test.go files may import it; production code never does. Every
// helper takes a testing.TB, waits on a readiness probe rather than a sleep,
// stops what it started by PID in t.Cleanup, and skips when a prerequisite is
// missing, or fails under CI=true.
package test
