package sip

// The registration flow, RFC 5626: one TLS connection to the registrar that
// carries every request in both directions, the Contact with +sip.instance
// and reg-id, CRLF keepalives with the 10 s pong rule, and detection of a
// flow the registrar or the network closed.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/hardphone/hardphone/crypto/policy"
)

// readFilter sees every stream read before sipgo parses it; a read that is
// only CRLFs is an RFC 5626 §4.4.1 pong (or a ping) on that flow.
func (a *Account) readFilter(p sip.TransportReadProps, data []byte) ([]byte, error) {
	if len(data) <= 4 && len(strings.Trim(string(data), "\r\n")) == 0 {
		a.mu.Lock()
		if p.RemoteAddr != nil && p.RemoteAddr.String() == a.flowRemote {
			a.lastPong = a.clock.Now()
		}
		a.mu.Unlock()
	}
	return data, nil
}

// waitOrFlowFailure waits d while pinging the flow; false when the flow
// failed or ctx ended.
func (a *Account) waitOrFlowFailure(ctx context.Context, d time.Duration, ping bool) bool {
	deadline := a.clock.After(d)
	var tick <-chan time.Time
	if ping {
		tick = a.clock.After(a.cfg.Keepalive)
	}
	check := a.clock.After(time.Second)
	for {
		select {
		case <-ctx.Done():
			return false
		case <-deadline:
			return true
		case <-tick:
			if err := a.keepalive(ctx); err != nil {
				a.log.Warn("keepalive failed", "error", err)
				a.flowDown()
				return false
			}
			tick = a.clock.After(a.cfg.Keepalive)
		case <-check:
			// The read side of the flow ended (the registrar closed it or
			// the network reset it): no need to wait for a ping to fail.
			if ping && a.flowGone() {
				a.log.Warn("tls flow closed")
				a.flowDown()
				return false
			}
			check = a.clock.After(time.Second)
		}
	}
}

// pongTimeout: RFC 5626 §4.4.1, "If a pong is not received within 10
// seconds, the UA considers the flow failed".
const pongTimeout = 10 * time.Second

// keepalive sends a CRLFCRLF ping on the flow and waits for the CRLF pong.
func (a *Account) keepalive(ctx context.Context) error {
	a.mu.Lock()
	conn := a.conn
	sent := a.clock.Now()
	a.counters.KeepalivesSent++
	a.mu.Unlock()
	if conn == nil {
		return errors.New("no flow")
	}
	w, ok := conn.(io.Writer)
	if !ok {
		return fmt.Errorf("flow %T cannot carry a keepalive", conn)
	}
	if _, err := w.Write([]byte("\r\n\r\n")); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	timeout := a.clock.After(pongTimeout)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout:
			return errors.New("no pong within 10s")
		case <-a.clock.After(50 * time.Millisecond):
			a.mu.Lock()
			ok := !a.lastPong.Before(sent)
			a.mu.Unlock()
			if ok {
				return nil
			}
			if a.flowGone() {
				return errors.New("flow closed while waiting for pong")
			}
		}
	}
}

func (a *Account) flowDown() {
	a.mu.Lock()
	conn := a.conn
	a.conn, a.flowRemote, a.registered = nil, "", false
	a.counters.FlowFailures++
	a.mu.Unlock()
	if conn != nil {
		if err := conn.Close(); err != nil {
			a.log.Debug("close failed flow", "error", err)
		}
	}
	a.events(Event{Account: a.cfg.Name, Kind: EventUnregistered})
}

// flow returns the TLS connection to the registrar, dialing it if needed,
// and checks the handshake against the crypto policy.
func (a *Account) flow(ctx context.Context) (sip.Connection, error) {
	probe := sip.NewRequest(sip.OPTIONS, a.registrarURI())
	probe.SetTransport("TLS")
	probe.SetDestination(a.registrar.String())
	probe.AppendHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "TLS",
		Host: a.media.LocalIP.String(), Params: sip.NewParams()})
	conn, err := a.ua.TransportLayer().ClientRequestConnection(ctx, probe)
	if err != nil {
		return nil, fmt.Errorf("tls flow to %s: %w", a.registrar, err)
	}
	tc, ok := conn.(*sip.TCPConnection)
	if !ok {
		return nil, fmt.Errorf("tls flow to %s: unexpected connection %T", a.registrar, conn)
	}
	st, ok := tc.Conn.(*tls.Conn)
	if !ok {
		return nil, fmt.Errorf("tls flow to %s: connection is not TLS", a.registrar)
	}
	cs := st.ConnectionState()
	if err := policy.CheckTLSState(cs); err != nil {
		return nil, fmt.Errorf("tls flow to %s: %w", a.registrar, err)
	}
	if a.timeSeen != nil && len(cs.PeerCertificates) > 0 {
		// The handshake verified this certificate: its issuer vouches that
		// NotBefore has passed.
		a.timeSeen(cs.PeerCertificates[0].NotBefore)
	}
	if a.regCert != nil && len(cs.PeerCertificates) > 0 {
		a.regCert(cs.PeerCertificates[0])
	}
	local, err := netip.ParseAddrPort(conn.LocalAddr().String())
	if err != nil {
		return nil, fmt.Errorf("tls flow local address: %w", err)
	}
	a.mu.Lock()
	a.flowRemote, a.flowLocal = tc.RemoteAddr().String(), local
	held := a.conn
	a.conn = conn
	a.mu.Unlock()
	// The pool counts references: we hold one for as long as a.conn names
	// the flow, so drop the one this call added when we already held it.
	if held == conn {
		if _, err := conn.TryClose(); err != nil {
			a.log.Debug("flow reference", "error", err)
		}
	} else if held != nil {
		if _, err := held.TryClose(); err != nil {
			a.log.Debug("old flow reference", "error", err)
		}
	}
	return conn, nil
}

// contactFor builds our Contact: the flow's own address, RFC 5626 §4.2.1
// +sip.instance and reg-id.
func (a *Account) contactFor(expires time.Duration) *sip.ContactHeader {
	a.mu.Lock()
	local := a.flowLocal
	a.mu.Unlock()
	c := &sip.ContactHeader{
		Address: sip.Uri{Scheme: "sip", User: a.cfg.User, Host: local.Addr().String(), Port: int(local.Port()),
			UriParams: sip.HeaderParams{{K: "transport", V: "tls"}, {K: "ob"}}},
		Params: sip.NewParams(),
	}
	c.Params.Add("+sip.instance", `"<`+a.instance+`>"`)
	c.Params.Add("reg-id", "1")
	c.Params.Add("expires", strconv.Itoa(int(expires/time.Second)))
	return c
}

func (a *Account) dialogContact() sip.ContactHeader {
	a.mu.Lock()
	local := a.flowLocal
	a.mu.Unlock()
	return sip.ContactHeader{
		Address: sip.Uri{Scheme: "sip", User: a.cfg.User, Host: local.Addr().String(), Port: int(local.Port()),
			UriParams: sip.HeaderParams{{K: "transport", V: "tls"}, {K: "ob"}}},
		Params: sip.NewParams(),
	}
}

var errFlowClosed = errors.New("tls flow to registrar closed (certificate refused?)")

// flowGone reports whether the flow we hold is no longer in sipgo's pool,
// which happens when its read loop ended.
func (a *Account) flowGone() bool {
	a.mu.Lock()
	held, remote := a.conn, a.flowRemote
	a.mu.Unlock()
	if held == nil || remote == "" {
		return false
	}
	pool := a.ua.TransportLayer().Pool("tls")
	if pool == nil {
		return true
	}
	c := pool.Get(remote)
	if c == nil {
		return true
	}
	// Get took a reference; give it back.
	if _, err := c.TryClose(); err != nil {
		a.log.Debug("flow probe reference", "error", err)
	}
	return c != held
}
