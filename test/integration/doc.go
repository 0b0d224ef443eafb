// Package integration holds the end-to-end tests of the agent against real
// peers: Kamailio (TLS registrar with digest), baresip (SRTP and DTLS-SRTP
// interop both ways), SIPp, swtpm and nftables, each started by the test in
// a private network namespace and stopped by PID. `make demo` is TestDemo.
// It has only test files besides this one; nothing imports it.
package integration
