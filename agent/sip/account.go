package sip

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/agent/dialplan"
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
	// plainPeer is the one source (IP and port) plain listeners take
	// requests from.
	plainPeer netip.AddrPort
	media     MediaParams
	events    func(Event)
	password  func() (string, error)  // the digest password, asked for per challenge
	timeSeen  func(time.Time)         // nil: nobody wants verified certificate times
	regCert   func(*x509.Certificate) // nil: nobody wants the verified registrar certificate
	global    *CallLimit              // the phone-wide call cap; never nil
	limiter   *inviteLimiter          // inbound INVITEs per source; never nil
	dialled   *dialplan.Counter       // calls placed, for the dialling caps; never nil
	// referLimit bounds the REFERs the account accepts; never nil. It is
	// safe for concurrent use.
	referLimit *rate.Limiter
	invites    recentTxs // INVITE transactions whose ACKs to absorb (refusalack.go)
	refusedTx  recentTxs // plain UDP requests refused statelessly (plainguard.go)

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
	lastClass  string // ClassifyError of the error lastErr says
	regCount   int
	failures   int
	callID     string
	cseq       uint32
	calls      map[DialogID]*Call // by dialog, never by Call-ID alone
	active     int                // calls holding a slot of cfg.MaxCalls
	realm      string             // digest realm pinned from the registrar's REGISTER challenge
	lastPong   time.Time
	counters   Counters
	inbound    Inbound
	// life is Run's context: calls the phone places by itself (a
	// transfer's) end with it. nil before Run.
	life context.Context
}

// Counters are per-account security and traffic counters. Refusals are
// named after the agent/events kinds that report them (sip.foreign_source
// is foreign_source); those without a kind yet say what they count.
type Counters struct {
	Registrations     int `json:"registrations"`
	RegisterFailures  int `json:"register_failures"`
	KeepalivesSent    int `json:"keepalives_sent"`
	FlowFailures      int `json:"flow_failures"`
	CallsIn           int `json:"calls_in"`
	CallsOut          int `json:"calls_out"`
	CallsRefusedMedia int `json:"calls_refused_media"`
	// ForeignSource: requests from outside the registrar's flow (or a plain
	// listener's one peer), refused 403 (events.KindForeignSource).
	ForeignSource int `json:"foreign_source"`
	// ForeignDialog: in-dialog requests (re-INVITE, ACK, BYE, ...) and
	// CANCELs that match no dialog or transaction of ours, refused 481 or
	// dropped (events.KindForeignDialog).
	ForeignDialog int `json:"foreign_dialog"`
	// REFERRefused: REFERs refused by policy (events.KindREFERRefused).
	REFERRefused int `json:"refer_refused"`
	// INVITEFlood: INVITEs above the per-source rate, refused 503
	// (events.KindINVITEFlood).
	INVITEFlood int `json:"invite_flood"`
	// CallCap: calls refused at the account's or the phone's concurrent-call
	// cap, 486 inbound (events.KindCallCap).
	CallCap int `json:"call_cap"`
	// MergedRequests: INVITEs that repeat a pending INVITE's Call-ID and
	// From tag on another branch, refused 482 (RFC 3261 §8.2.2.2).
	MergedRequests int `json:"merged_requests"`
	// CSeqOutOfOrder: in-dialog requests whose CSeq does not advance,
	// refused 500 (RFC 3261 §12.2.2).
	CSeqOutOfOrder int `json:"cseq_out_of_order"`
	// ChallengesRefused: digest challenges not answered (another realm, no
	// qop=auth, not over the registrar's flow).
	ChallengesRefused int `json:"challenges_refused"`
	// MediaDestinationsRefused: SDPs that aimed media at a refused address
	// or port (also counted in CallsRefusedMedia).
	MediaDestinationsRefused int `json:"media_destinations_refused"`
	// MediaInactive: calls ended because no authenticated SRTP or SRTCP
	// arrived for media.inactivity_timeout.
	MediaInactive int `json:"media_inactive"`
	// DialRefused: outbound calls refused by the dialling policy (the
	// toll-fraud guard; events.KindDialRefused).
	DialRefused int `json:"dial_refused"`
	// ReplacesRefused: INVITEs with Replaces refused (RFC 3891 §3 or the
	// transfer policy; events.KindREFERRefused).
	ReplacesRefused int `json:"replaces_refused"`
	// TransfersOut: REFERs of ours the peer accepted (we transferred).
	TransfersOut int `json:"transfers_out"`
	// TransfersIn: REFERs we accepted (we were transferred).
	TransfersIn int `json:"transfers_in"`
	// CallsReplaced: calls taken over by an INVITE with Replaces.
	CallsReplaced int `json:"calls_replaced"`
	// CheckSync: check-sync NOTIFYs accepted from the registrar's flow.
	CheckSync int `json:"check_sync"`
	// NotifyRefused: NOTIFYs from the registrar's flow refused for
	// another event package (489) or another user (404).
	NotifyRefused int `json:"notify_refused"`
}

// MediaParams are the RTP settings handed to every call's media session.
type MediaParams struct {
	LocalIP          netip.Addr
	PortMin, PortMax uint16
	// InactivityTimeout ends a call with no authenticated SRTP or SRTCP for
	// that long; 0 means never.
	InactivityTimeout time.Duration
	// AllowPeers lifts the refusal of special media destinations (loopback,
	// link-local, own addresses) for the networks it lists: the config's
	// media.allow_peers and the lockdown policy's rtp.peers.
	AllowPeers []netip.Prefix
	// PeerCheck, when set, must accept every media destination: the
	// lockdown policy's bound (rtp.peers), from the agent.
	PeerCheck func(netip.AddrPort) error
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
	// ErrorClass sorts LastError: ErrorNetwork, ErrorRefused or ErrorOther.
	ErrorClass string `json:"error_class,omitempty"`
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
	// Security is the incident of an EventSecurity, nil otherwise.
	Security *Security
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
	// CertTime is the clock the registrar's certificate is checked against
	// (the phone's time floor); nil: time.Now.
	CertTime func() time.Time
	// TimeSeen is told the NotBefore of every registrar certificate that
	// verified: a time the phone has securely seen. nil: nobody.
	TimeSeen func(time.Time)
	// RegistrarCert is told the registrar's leaf certificate each time a
	// TLS flow's handshake verified it (the agent watches its expiry).
	// nil: nobody.
	RegistrarCert func(*x509.Certificate)
	// Calls is the phone-wide call cap shared by every account; nil gives
	// the account one of its own at cfg.MaxCalls.
	Calls *CallLimit
	// ListenPeer is the one source plain listeners accept requests from;
	// the zero value means the registrar's address.
	ListenPeer netip.AddrPort
	// Dialled counts the calls placed under the dialling policy's caps, in
	// the state file so a restart does not reset them; nil keeps a count
	// in memory for this account alone.
	Dialled *dialplan.Counter
	// GetCert, when set (and Cert nil), is asked for the client
	// certificate at every TLS handshake, so a renewed one is presented
	// at once.
	GetCert func() (*tls.Certificate, error)
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
	tlsConf, err := policy.ClientConfig(policy.ClientTLS{Roots: d.Roots, ServerName: cfg.ServerName, Certificate: d.Cert, GetCertificate: d.GetCert, Time: d.CertTime})
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", cfg.Name, err)
	}
	if cfg.MaxCalls < 1 {
		return nil, fmt.Errorf("account %s: max_calls %d, want at least 1", cfg.Name, cfg.MaxCalls)
	}
	global := d.Calls
	if global == nil {
		global = NewCallLimit(cfg.MaxCalls)
	}
	a := &Account{
		cfg: cfg, log: d.Log.With("account", cfg.Name), clock: clock, instance: d.Instance,
		registrar: netip.AddrPortFrom(ip.Unmap(), uint16(p)), media: d.Media, events: events,
		password: d.Password, callID: uuid.NewString(), cseq: 1, calls: map[DialogID]*Call{}, timeSeen: d.TimeSeen,
		regCert: d.RegistrarCert, global: global, limiter: newInviteLimiter(), refusedTx: recentTxs{size: refusedTxsMax}, plainPeer: d.ListenPeer, dialled: d.Dialled,
		referLimit: newReferLimiter(),
	}
	if a.dialled == nil {
		if a.dialled, err = dialplan.OpenCounter(nil); err != nil {
			return nil, err
		}
	}
	if !a.plainPeer.IsValid() {
		a.plainPeer = a.registrar
	}
	a.media.AllowPeers = slices.Clone(d.Media.AllowPeers)
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

// Run registers and keeps the account registered until ctx ends, then
// unregisters.
func (a *Account) Run(ctx context.Context) {
	defer a.ua.Close()
	a.mu.Lock()
	a.life = ctx
	a.mu.Unlock()
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
			a.lastErr, a.lastClass = err.Error(), ClassifyError(err)
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

// shutdown hangs up every call (so their pinholes close and no media
// outlives the agent) and removes the binding.
func (a *Account) shutdown() {
	for _, c := range a.Calls() {
		c.hangup(context.Background(), "agent stopping")
	}
	a.unregister()
}

// Status returns a snapshot.
func (a *Account) Status() AccountStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := AccountStatus{
		Name: a.cfg.Name, AOR: aorString(a.aor()), Registrar: a.registrar.String(),
		Registered: a.registered, LastError: a.lastErr, Counters: a.counters, Calls: []CallStatus{},
	}
	if a.lastErr != "" {
		s.ErrorClass = a.lastClass
	}
	if a.registered {
		s.Granted = int(a.granted / time.Second)
		s.Since = a.regAt.UTC().Format(time.RFC3339)
		s.Flow = a.flowLocal.String()
	}
	// Oldest first: a client showing the calls keeps its rows in place.
	calls := make([]*Call, 0, len(a.calls))
	for _, c := range a.calls {
		calls = append(calls, c)
	}
	slices.SortFunc(calls, func(x, y *Call) int { return x.started.Compare(y.started) })
	for _, c := range calls {
		s.Calls = append(s.Calls, c.Status())
	}
	return s
}

// lifetime is the context of Run, or Background before it.
func (a *Account) lifetime() context.Context {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.life == nil {
		return context.Background()
	}
	return a.life
}

// Registered reports whether the account has a live registration.
func (a *Account) Registered() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.registered
}

func aorString(u sip.Uri) string { return u.String() }
