// Package agent is the hardphone daemon: it starts the subsystems in order
// (identity, accounts, listeners, control socket), owns health, and exposes
// status. It holds no protocol logic of its own.
//
// Only cmd and board import it.
package agent
