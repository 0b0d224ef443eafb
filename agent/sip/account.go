package sip

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/crypto/policy"
)

// Account is one SIP account: its own user agent, TLS flow to the registrar,
// registration state and calls.
type Account struct {
	cfg      config.Account
	log      *slog.Logger
	clock    Clock
	instance string // RFC 5626 +sip.instance URN, stable for this device

	ua  *sipgo.UserAgent
	cli *sipgo.Client
	srv *sipgo.Server
	// registrar is the resolved registrar address the TLS flow goes to.
	registrar netip.AddrPort
	media     MediaParams
	events    func(Event)
	password  func() (string, error) // the digest password, asked for per challenge

	mu sync.Mutex // guards the fields below
	// flowRemote is the TLS flow's remote address as sipgo reports request
	// sources ("ip:port"); empty when no flow is up.
	flowRemote string
	flowLocal  netip.AddrPort
	conn       sip.Connection // the registration flow; nil when down
	registered bool
	granted    time.Duration
	regAt      time.Time
	lastErr    string
	regCount   int
	failures   int
	callID     string
	cseq       uint32
	calls      map[string]*Call // by Call-ID
	lastPong   time.Time
	counters   Counters
	inbound    Inbound
}

// Counters are per-account security and traffic counters.
type Counters struct {
	Registrations     int `json:"registrations"`
	RegisterFailures  int `json:"register_failures"`
	KeepalivesSent    int `json:"keepalives_sent"`
	FlowFailures      int `json:"flow_failures"`
	RequestsRefused   int `json:"requests_refused"`
	CallsIn           int `json:"calls_in"`
	CallsOut          int `json:"calls_out"`
	CallsRefusedMedia int `json:"calls_refused_media"`
}

// MediaParams are the RTP settings handed to every call's media session.
type MediaParams struct {
	LocalIP          netip.Addr
	PortMin, PortMax uint16
}

// AccountStatus is a snapshot for `hardphone status`.
type AccountStatus struct {
	Name       string       `json:"name"`
	AOR        string       `json:"aor"`
	Registrar  string       `json:"registrar"`
	Registered bool         `json:"registered"`
	Granted    int          `json:"granted_expires_s,omitempty"`
	Since      string       `json:"registered_at,omitempty"`
	Flow       string       `json:"flow_local,omitempty"`
	LastError  string       `json:"last_error,omitempty"`
	Counters   Counters     `json:"counters"`
	Calls      []CallStatus `json:"calls"`
}

// EventKind names a state change.
type EventKind string

// Event kinds.
const (
	EventRegistered   EventKind = "registered"
	EventUnregistered EventKind = "unregistered"
	// EventIncoming: an INVITE was accepted for answering (ringing).
	EventIncoming EventKind = "incoming"
	// EventMedia: the SDP is agreed or renegotiated, so the peer's media
	// addresses are known (the agent opens pinholes for them).
	EventMedia EventKind = "media"
	// EventCallStarted: the media is secured (SRTP keys in place).
	EventCallStarted EventKind = "call_started"
	EventCallEnded   EventKind = "call_ended"
)

// Event reports a state change to the agent (health, pinholes, UI).
type Event struct {
	Account string
	Kind    EventKind
	// Call is the call for call events, nil otherwise.
	Call *Call
}

// AccountDeps are what an account needs from the agent.
type AccountDeps struct {
	// Roots are the trust anchors for the registrar's certificate; required.
	Roots *x509.CertPool
	// Cert is the client identity for mutual TLS, nil for none. Its
	// PrivateKey is a crypto.Signer (a TPM key or a file key).
	Cert *tls.Certificate
	// Password returns the digest password when a challenge needs it; the
	// account never keeps it. Required.
	Password func() (string, error)
	Media    MediaParams
	// Instance is the RFC 5626 +sip.instance URN.
	Instance string
	Log      *slog.Logger // required
	Clock    Clock        // nil: the real clock
	Events   func(Event)  // nil: none
}

// NewAccount builds the account's user agent.
func NewAccount(cfg config.Account, d AccountDeps) (*Account, error) {
	if d.Log == nil {
		return nil, errors.New("sip account: nil logger")
	}
	if d.Password == nil {
		return nil, errors.New("sip account: no password source")
	}
	clock, events := d.Clock, d.Events
	if clock == nil {
		clock = realClock{}
	}
	if events == nil {
		events = func(Event) {}
	}
	host, port, err := net.SplitHostPort(cfg.Registrar)
	if err != nil {
		return nil, fmt.Errorf("account %s registrar: %w", cfg.Name, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		// A name: resolve once now; the flow goes to this address.
		ips, lerr := net.DefaultResolver.LookupNetIP(context.Background(), "ip", host)
		if lerr != nil || len(ips) == 0 {
			return nil, fmt.Errorf("account %s registrar %s: resolve: %v", cfg.Name, host, lerr)
		}
		ip = ips[0]
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("account %s registrar port %q: %w", cfg.Name, port, err)
	}
	tlsConf, err := policy.ClientConfig(policy.ClientTLS{Roots: d.Roots, ServerName: cfg.ServerName, Certificate: d.Cert})
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", cfg.Name, err)
	}
	a := &Account{
		cfg: cfg, log: d.Log.With("account", cfg.Name), clock: clock, instance: d.Instance,
		registrar: netip.AddrPortFrom(ip.Unmap(), uint16(p)), media: d.Media, events: events,
		password: d.Password, callID: uuid.NewString(), cseq: 1, calls: map[string]*Call{},
	}
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent(cfg.User),
		sipgo.WithUserAgentHostname(cfg.Domain),
		sipgo.WithUserAgenTLSConfig(tlsConf),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerReadFilter(a.readFilter)),
	)
	if err != nil {
		return nil, fmt.Errorf("account %s user agent: %w", cfg.Name, err)
	}
	a.ua = ua
	if a.cli, err = sipgo.NewClient(ua, sipgo.WithClientLogger(a.log)); err != nil {
		return nil, fmt.Errorf("account %s client: %w", cfg.Name, err)
	}
	if a.srv, err = sipgo.NewServer(ua, sipgo.WithServerLogger(a.log)); err != nil {
		return nil, fmt.Errorf("account %s server: %w", cfg.Name, err)
	}
	a.routeRequests()
	return a, nil
}

// Name is the account's config name.
func (a *Account) Name() string { return a.cfg.Name }

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

// Run registers and keeps the account registered until ctx ends, then
// unregisters.
func (a *Account) Run(ctx context.Context) {
	defer a.ua.Close()
	for {
		granted, err := a.register(ctx, a.cfg.Expires)
		if ctx.Err() != nil {
			a.shutdown()
			return
		}
		var wait time.Duration
		if err != nil {
			a.mu.Lock()
			a.failures++
			a.counters.RegisterFailures++
			f := a.failures
			a.lastErr = err.Error()
			wasReg := a.registered
			a.registered = false
			a.mu.Unlock()
			if wasReg {
				a.events(Event{Account: a.cfg.Name, Kind: EventUnregistered})
			}
			wait = retryDelay(a.cfg.RetryBase, a.cfg.RetryMax, f-1, jitter)
			a.log.Warn("registration failed", "error", err, "retry_in", wait.Round(time.Millisecond))
		} else {
			wait = refreshDelay(granted)
			a.log.Info("registered", "granted_s", int(granted/time.Second), "refresh_in", wait.Round(time.Millisecond))
		}
		if !a.waitOrFlowFailure(ctx, wait, err == nil) {
			if ctx.Err() != nil {
				a.shutdown()
				return
			}
			// Flow failed: RFC 5626 §4.4.1, re-register at once on a new flow.
			a.log.Warn("tls flow to registrar failed, re-registering")
		}
	}
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

func (a *Account) aor() sip.Uri {
	return sip.Uri{Scheme: "sip", User: a.cfg.User, Host: a.cfg.Domain}
}

// registrarURI is the Request-URI of REGISTER (RFC 3261 §10.2: the domain)
// and, with lr, the outbound proxy route for other requests.
func (a *Account) registrarURI() sip.Uri {
	return sip.Uri{Scheme: "sip", Host: a.registrar.Addr().String(), Port: int(a.registrar.Port()),
		UriParams: sip.HeaderParams{{K: "transport", V: "tls"}}}
}

// register sends one REGISTER (answering one digest challenge) and returns
// the granted expiry.
func (a *Account) register(ctx context.Context, expires time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 32*time.Second) // RFC 3261 Timer F
	defer cancel()
	if _, err := a.flow(ctx); err != nil {
		return 0, err
	}
	// A registrar that refuses our certificate under TLS 1.3 does so after
	// the handshake, by closing the flow: watch it so the REGISTER fails at
	// once rather than at Timer F.
	ctx, cancelFlow := context.WithCancelCause(ctx)
	defer cancelFlow(nil)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-a.clock.After(100 * time.Millisecond):
				if a.flowGone() {
					cancelFlow(errFlowClosed)
					return
				}
			}
		}
	}()
	contact := a.contactFor(expires)
	req := a.newRegister(contact, expires)
	res, err := a.cli.Do(ctx, req)
	if err != nil {
		if c := context.Cause(ctx); c != nil && errors.Is(c, errFlowClosed) {
			err = c
		}
		return 0, fmt.Errorf("register: %w", err)
	}
	for attempt := 0; (res.StatusCode == 401 || res.StatusCode == 407 || res.StatusCode == 423) && attempt < 2; attempt++ {
		req = a.newRegister(contact, expires)
		if res.StatusCode == 423 {
			// RFC 3261 §10.2.8: retry with at least Min-Expires.
			if h := res.GetHeader("Min-Expires"); h != nil {
				if v, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && v > 0 && v < 86400 {
					expires = time.Duration(v) * time.Second
					contact = a.contactFor(expires)
					req = a.newRegister(contact, expires)
				}
			}
		} else if err := a.authorize(req, res); err != nil {
			return 0, fmt.Errorf("register: %w", err)
		}
		if res, err = a.cli.Do(ctx, req); err != nil {
			if c := context.Cause(ctx); c != nil && errors.Is(c, errFlowClosed) {
				err = c
			}
			return 0, fmt.Errorf("register: %w", err)
		}
	}
	if res.StatusCode != 200 {
		return 0, fmt.Errorf("register: %w", &ResponseError{"REGISTER", res.StatusCode, res.Reason})
	}
	granted := grantedExpiry(res, contact, expires)
	a.mu.Lock()
	a.registered, a.granted, a.regAt, a.lastErr, a.failures = true, granted, a.clock.Now(), "", 0
	a.counters.Registrations++
	a.mu.Unlock()
	a.events(Event{Account: a.cfg.Name, Kind: EventRegistered})
	return granted, nil
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
	if err := policy.CheckTLSState(st.ConnectionState()); err != nil {
		return nil, fmt.Errorf("tls flow to %s: %w", a.registrar, err)
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

func (a *Account) newRegister(contact *sip.ContactHeader, expires time.Duration) *sip.Request {
	ru := sip.Uri{Scheme: "sip", Host: a.cfg.Domain}
	req := sip.NewRequest(sip.REGISTER, ru)
	req.SetTransport("TLS")
	req.SetDestination(a.registrar.String())
	aor := a.aor()
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor, Params: sip.NewParams()})
	a.mu.Lock()
	callID := sip.CallIDHeader(a.callID)
	a.cseq++
	cseq := &sip.CSeqHeader{SeqNo: a.cseq, MethodName: sip.REGISTER}
	a.mu.Unlock()
	req.AppendHeader(&callID)
	req.AppendHeader(cseq)
	req.AppendHeader(contact)
	ex := sip.ExpiresHeader(uint32(expires / time.Second))
	req.AppendHeader(&ex)
	req.AppendHeader(sip.NewHeader("Supported", "outbound, path"))
	return req
}

// authorize adds the digest answer to req for the challenge in res, under
// the account's digest floor.
func (a *Account) authorize(req *sip.Request, res *sip.Response) error {
	name, hdr := "WWW-Authenticate", "Authorization"
	if res.StatusCode == 407 {
		name, hdr = "Proxy-Authenticate", "Proxy-Authorization"
	}
	var values []string
	for _, h := range res.GetHeaders(name) {
		values = append(values, h.Value())
	}
	ch, err := chooseChallenge(values, a.cfg.DigestMin)
	if err != nil {
		return fmt.Errorf("%d challenge: %w", res.StatusCode, err)
	}
	pw, err := a.password()
	if err != nil {
		return fmt.Errorf("account %s password: %w", a.cfg.Name, err)
	}
	v, err := authorization(ch, credentials{a.cfg.AuthUser, pw}, string(req.Method), req.Recipient.String(), 1, newCnonce())
	if err != nil {
		return err
	}
	req.RemoveHeader(hdr)
	req.AppendHeader(sip.NewHeader(hdr, v))
	a.log.Debug("answering digest challenge", "algorithm", ch.Algorithm.String(), "realm", ch.Realm)
	return nil
}

// grantedExpiry reads the registrar's grant for our binding: the expires
// param of the Contact that is ours (RFC 3261 §10.2.4), else the Expires
// header, else what we asked for.
func grantedExpiry(res *sip.Response, ours *sip.ContactHeader, asked time.Duration) time.Duration {
	for _, h := range res.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok {
			continue
		}
		if c.Address.Host != ours.Address.Host || c.Address.Port != ours.Address.Port || c.Address.User != ours.Address.User {
			continue
		}
		if v, ok := c.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return time.Duration(n) * time.Second
			}
		}
	}
	if h := res.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && n > 0 {
			return time.Duration(n) * time.Second
		}
	}
	return asked
}

// shutdown hangs up every call (so their pinholes close and no media
// outlives the agent) and removes the binding.
func (a *Account) shutdown() {
	for _, c := range a.Calls() {
		c.hangup(context.Background(), "agent stopping")
	}
	a.unregister()
}

// unregister removes our binding (expires=0) on shutdown, best effort.
func (a *Account) unregister() {
	a.mu.Lock()
	reg := a.registered
	a.registered = false
	a.mu.Unlock()
	if !reg {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	contact := a.contactFor(0)
	req := a.newRegister(contact, 0)
	res, err := a.cli.Do(ctx, req)
	if err == nil && (res.StatusCode == 401 || res.StatusCode == 407) {
		req = a.newRegister(contact, 0)
		if err = a.authorize(req, res); err == nil {
			res, err = a.cli.Do(ctx, req)
		}
	}
	if err != nil {
		a.log.Warn("unregister failed", "error", err)
		return
	}
	a.log.Info("unregistered", "status", res.StatusCode)
}

// Status returns a snapshot.
func (a *Account) Status() AccountStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := AccountStatus{
		Name: a.cfg.Name, AOR: aorString(a.aor()), Registrar: a.registrar.String(),
		Registered: a.registered, LastError: a.lastErr, Counters: a.counters, Calls: []CallStatus{},
	}
	if a.registered {
		s.Granted = int(a.granted / time.Second)
		s.Since = a.regAt.UTC().Format(time.RFC3339)
		s.Flow = a.flowLocal.String()
	}
	for _, c := range a.calls {
		s.Calls = append(s.Calls, c.Status())
	}
	return s
}

// Registered reports whether the account has a live registration.
func (a *Account) Registered() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.registered
}

func aorString(u sip.Uri) string { return u.String() }

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
