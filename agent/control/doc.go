// Package control is the agent's control protocol: one typed, versioned
// request/response exchange (plus an event stream) over a unix socket, with
// one Client and one Server. `hardphone status/update/...`, the PID 1
// supervisor, the tests and later the terminal phone all speak it through
// Client; the agent answers through Server.
//
// Wire format: the client writes one JSON Request terminated by a newline;
// the server answers with one JSON Response. For CmdWatch the server then
// writes one JSON Event per line until either side closes. A request carries
// the protocol Version; a server answers a version it does not speak with
// CodeVersion, so an old `hardphone` and a new agent fail clearly.
//
// Threat: the socket is how an update is installed and a call answered, so
// only root and the uids the config names may use it: the server checks the
// caller's kernel-reported credentials (SO_PEERCRED) on every connection,
// creates the socket 0600 inside a 0700 directory before anyone can connect
// to it, bounds a request's size and the time to send it, bounds how many
// connections it serves at once, and answers malformed input with an error
// without changing anything. Messages carry no secrets.
//
// Imported by agent (the server side), pid1 and cmd/hardphone (clients). It
// imports agent/sip and update for the status types they report, and
// agent/events and agent/history for the journal records, the verify
// report, call history and contacts it carries; nothing that opens a
// device.
package control
