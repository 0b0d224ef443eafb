// Package consoleapi is the wire format of the admin console's JSON API,
// the one hpctl speaks: paths, request and response bodies, error codes
// and their HTTP statuses. Both sides import it: fleet/console (the
// server) and fleet/console/consoleclient (hpctl's client). It holds no
// logic beyond bounds and the code-to-status map.
//
// Threat: bodies come from the network on both sides; Max* bound what
// either side reads, and every field is plain data (no secret but a login's
// password and a TOTP enrolment's secret, which never go into a URL).
//
// Imported by fleet/console, fleet/console/consoleclient, cmd/hpctl and
// fleet/server (the path prefix it mounts the console under).
package consoleapi
