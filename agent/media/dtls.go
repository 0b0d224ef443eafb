package media

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/srtp/v3"
	"github.com/pion/transport/v5/deadline"

	"github.com/hardphone/hardphone/crypto/policy"
)

const (
	// dtlsQueueLen bounds the DTLS datagrams buffered per association: a
	// ClientHello that arrives before the SDP answer waits here, and a flood
	// costs at most this many copies.
	dtlsQueueLen = 32
	// defaultHandshakeTimeout applies when Start's context has no deadline.
	defaultHandshakeTimeout = 15 * time.Second
	// rtcpHandshakeTimeout bounds the second association (RTCP without
	// rtcp-mux), which runs in the background after Start.
	rtcpHandshakeTimeout = 20 * time.Second
)

// dtlsIdentity is our per-session DTLS certificate: ECDSA P-256,
// self-signed, authenticated only through the a=fingerprint we put in the
// SDP (RFC 5763 §5), which the signalling path carries over TLS.
type dtlsIdentity struct {
	cert tls.Certificate
	fp   fingerprint // of cert, with policy.FingerprintHash
}

// LogValue keeps the private key out of logs.
func (*dtlsIdentity) LogValue() slog.Value { return slog.StringValue("REDACTED") }

func newDTLSIdentity() (*dtlsIdentity, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate dtls key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate dtls certificate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "hardphone"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create dtls certificate: %w", err)
	}
	sum, ok := certDigest(policy.FingerprintHash, der)
	if !ok {
		return nil, fmt.Errorf("policy fingerprint hash %q is not implemented", policy.FingerprintHash)
	}
	return &dtlsIdentity{
		cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		fp:   fingerprint{Hash: policy.FingerprintHash, Value: sum},
	}, nil
}

// fingerprint is an a=fingerprint value (RFC 8122 §5):
//
//	fingerprint-attribute = "fingerprint" ":" hash-func SP fingerprint
//	fingerprint = 2UHEX *(":" 2UHEX)
type fingerprint struct {
	Hash  string // lower case, e.g. "sha-256"
	Value []byte
}

func (f fingerprint) String() string {
	h := strings.ToUpper(hex.EncodeToString(f.Value))
	var b strings.Builder
	b.WriteString(f.Hash)
	b.WriteByte(' ')
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// hashLen gives the digest length of every hash-func an SDP may name that
// we can check the length of; policy decides which we accept.
var hashLen = map[string]int{"md5": 16, "sha-1": 20, "sha-224": 28, "sha-256": 32, "sha-384": 48, "sha-512": 64}

// parseFingerprint parses "hash-func SP fingerprint". The hash name is
// case-insensitive (RFC 8122 §5); hex digits are taken in either case.
func parseFingerprint(v string) (fingerprint, error) {
	f := strings.Fields(v)
	if len(f) != 2 {
		return fingerprint{}, fmt.Errorf("a=fingerprint %q: want hash-func and value: %w", v, errSDPSyntax)
	}
	hash := strings.ToLower(f[0])
	parts := strings.Split(f[1], ":")
	if len(parts) > 64 {
		return fingerprint{}, fmt.Errorf("a=fingerprint of %d bytes: %w", len(parts), errSDPSyntax)
	}
	val := make([]byte, 0, len(parts))
	for _, p := range parts {
		if len(p) != 2 {
			return fingerprint{}, fmt.Errorf("a=fingerprint byte %q: %w", p, errSDPSyntax)
		}
		b, err := hex.DecodeString(p)
		if err != nil {
			return fingerprint{}, fmt.Errorf("a=fingerprint byte %q: %w", p, errSDPSyntax)
		}
		val = append(val, b[0])
	}
	if n, ok := hashLen[hash]; ok && n != len(val) {
		return fingerprint{}, fmt.Errorf("a=fingerprint %s of %d bytes, want %d: %w", hash, len(val), n, errSDPSyntax)
	}
	return fingerprint{Hash: hash, Value: val}, nil
}

// certDigest hashes a DER certificate with a hash-func the policy may list.
func certDigest(hash string, der []byte) ([]byte, bool) {
	switch hash {
	case "sha-256":
		s := sha256.Sum256(der)
		return s[:], true
	case "sha-384":
		s := sha512.Sum384(der)
		return s[:], true
	case "sha-512":
		s := sha512.Sum512(der)
		return s[:], true
	}
	return nil, false
}

// acceptFingerprints picks, from the peer's a=fingerprint values, those
// that use the strongest hash the policy accepts (RFC 8122 §5: the endpoint
// selects the fingerprints of its most preferred hash function among those
// offered and checks the certificate against that set). Values with a hash
// the policy refuses (sha-1, md5) are ignored; if nothing is left the
// description is refused. A malformed value refuses the description.
func acceptFingerprints(values []string) ([]fingerprint, error) {
	if len(values) == 0 {
		return nil, fmt.Errorf("dtls-srtp without a=fingerprint: the DTLS peer would be unauthenticated: %w", ErrNotAcceptable)
	}
	var all []fingerprint
	for _, v := range values {
		f, err := parseFingerprint(v)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", err, ErrNotAcceptable)
		}
		all = append(all, f)
	}
	for _, h := range policy.FingerprintHashes() {
		if _, ok := certDigest(h, nil); !ok {
			continue
		}
		var set []fingerprint
		for _, f := range all {
			if f.Hash == h {
				set = append(set, f)
			}
		}
		if len(set) > 0 {
			return set, nil
		}
	}
	hashes := make([]string, len(all))
	for i, f := range all {
		hashes[i] = f.Hash
	}
	return nil, fmt.Errorf("a=fingerprint hash %s, policy accepts %s: %w: %w",
		strings.Join(hashes, ","), strings.Join(policy.FingerprintHashes(), ","), policy.ErrWeakAlgorithm, ErrNotAcceptable)
}

// matchFingerprint reports whether the end-entity certificate der matches
// one of fps (all of one hash). The comparison is constant-time.
func matchFingerprint(der []byte, fps []fingerprint) error {
	if len(fps) == 0 {
		return fmt.Errorf("no fingerprint to check against: %w", errFingerprint)
	}
	sum, ok := certDigest(fps[0].Hash, der)
	if !ok {
		return fmt.Errorf("hash %s: %w", fps[0].Hash, errFingerprint)
	}
	match := 0
	for _, f := range fps {
		match |= subtle.ConstantTimeCompare(sum, f.Value)
	}
	if match != 1 {
		return fmt.Errorf("certificate %s %X: %w", fps[0].Hash, sum, errFingerprint)
	}
	return nil
}

// dtlsCipherSuites is the policy's TLS 1.2 suite list (ECDHE with an AEAD)
// restricted to those pion/dtls implements, in the policy's order.
func dtlsCipherSuites() []dtls.CipherSuiteID {
	have := map[uint16]bool{}
	for _, cs := range dtls.CipherSuites() {
		have[cs.ID] = true
	}
	var out []dtls.CipherSuiteID
	for _, id := range policy.TLSSuites() {
		if have[id] {
			out = append(out, dtls.CipherSuiteID(id))
		}
	}
	return out
}

// dtlsDatagram is a received datagram waiting for the DTLS association.
type dtlsDatagram struct {
	b    []byte
	from netip.AddrPort
}

// dtlsComponent is one DTLS association's transport (RFC 5764): the
// socket read loop feeds it DTLS datagrams (from before the SDP answer too),
// and it writes through the wire, DTLS records only. It implements
// net.PacketConn for pion/dtls.
type dtlsComponent struct {
	comp  component
	w     *wire
	local net.Addr
	// peer returns the component's peer address from the SDP; ok is false
	// until the offer/answer is done.
	peer   func(component) (netip.AddrPort, bool)
	st     *counters
	in     chan dtlsDatagram
	closed chan struct{}
	once   sync.Once
	rd     *deadline.Deadline

	mu   sync.Mutex // guards conn
	conn *dtls.Conn // nil until a handshake starts
}

func newDTLSComponent(comp component, w *wire, local net.Addr, st *counters, peer func(component) (netip.AddrPort, bool)) *dtlsComponent {
	return &dtlsComponent{
		comp: comp, w: w, local: local, peer: peer, st: st,
		in:     make(chan dtlsDatagram, dtlsQueueLen),
		closed: make(chan struct{}),
		rd:     deadline.New(),
	}
}

// deliver queues a copy of b; it never blocks the socket loop.
func (c *dtlsComponent) deliver(b []byte, from netip.AddrPort) {
	d := dtlsDatagram{b: append([]byte(nil), b...), from: from}
	select {
	case c.in <- d:
		c.st.dtlsQueued.Add(1)
	default:
		c.st.malformed.Add(1)
	}
}

// ReadFrom implements net.PacketConn. Datagrams queued before the peer was
// known are checked against the SDP address here, once it is.
func (c *dtlsComponent) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		select {
		case d := <-c.in:
			if want, ok := c.peer(c.comp); !ok || d.from != want {
				c.st.foreignDropped.Add(1)
				continue
			}
			return copy(p, d.b), net.UDPAddrFromAddrPort(d.from), nil
		case <-c.closed:
			return 0, nil, net.ErrClosed
		case <-c.rd.Done():
			return 0, nil, os.ErrDeadlineExceeded
		}
	}
}

// WriteTo implements net.PacketConn; the destination is always the SDP peer.
func (c *dtlsComponent) WriteTo(p []byte, _ net.Addr) (int, error) {
	to, ok := c.peer(c.comp)
	if !ok {
		return 0, fmt.Errorf("dtls %s: no peer address yet", c.comp)
	}
	return c.w.sendDTLS(c.comp, to, p)
}

// Close implements net.PacketConn; it stops the association, not the socket.
func (c *dtlsComponent) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// LocalAddr implements net.PacketConn.
func (c *dtlsComponent) LocalAddr() net.Addr { return c.local }

// SetDeadline implements net.PacketConn.
func (c *dtlsComponent) SetDeadline(t time.Time) error { c.rd.Set(t); return nil }

// SetReadDeadline implements net.PacketConn.
func (c *dtlsComponent) SetReadDeadline(t time.Time) error { c.rd.Set(t); return nil }

// SetWriteDeadline implements net.PacketConn; UDP writes do not block.
func (c *dtlsComponent) SetWriteDeadline(time.Time) error { return nil }

// dtlsResult is what a verified handshake yields.
type dtlsResult struct {
	keys     sessionKeys
	peerCert []byte
}

// handshake runs the DTLS handshake as client (a=setup:active) or server
// (a=setup:passive) and returns SRTP keys only if the peer's certificate
// matched fps. pion/dtls is configured per crypto/policy: use_srtp profiles
// from policy.DTLSSRTPProfiles, its TLS 1.2 AEAD suites, extended master
// secret required (RFC 7627), a client certificate required of the peer
// (RFC 5763 §5: both ends present certificates), chain verification off
// because the certificates are self-signed, and VerifyPeerCertificate doing
// the fingerprint check that actually authenticates the peer.
func (c *dtlsComponent) handshake(ctx context.Context, id *dtlsIdentity, client bool, fps []fingerprint, lf *pionLogFactory) (dtlsResult, error) {
	to, ok := c.peer(c.comp)
	if !ok {
		return dtlsResult{}, fmt.Errorf("dtls %s handshake: no peer address", c.comp)
	}
	verify := func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return fmt.Errorf("peer sent no certificate: %w", errFingerprint)
		}
		return matchFingerprint(raw[0], fps)
	}
	shared := []dtls.Option{
		dtls.WithCertificates(id.cert),
		dtls.WithCipherSuites(dtlsCipherSuites()...),
		dtls.WithSRTPProtectionProfiles(policy.DTLSSRTPProfiles()...),
		dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
		dtls.WithInsecureSkipVerify(true),
		dtls.WithVerifyPeerCertificate(verify),
		dtls.WithLoggerFactory(lf),
	}
	raddr := net.UDPAddrFromAddrPort(to)
	var (
		conn *dtls.Conn
		err  error
	)
	if client {
		opts := make([]dtls.ClientOption, 0, len(shared))
		for _, o := range shared {
			opts = append(opts, o)
		}
		conn, err = dtls.ClientWithOptions(c, raddr, opts...)
	} else {
		opts := make([]dtls.ServerOption, 0, len(shared)+1)
		for _, o := range shared {
			opts = append(opts, o)
		}
		opts = append(opts, dtls.WithClientAuth(dtls.RequireAnyClientCert))
		conn, err = dtls.ServerWithOptions(c, raddr, opts...)
	}
	if err != nil {
		return dtlsResult{}, fmt.Errorf("dtls %s setup: %w", c.comp, err)
	}
	c.mu.Lock()
	c.conn = conn
	c.mu.Unlock()
	if _, has := ctx.Deadline(); !has {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultHandshakeTimeout)
		defer cancel()
	}
	res, err := c.finish(ctx, conn, client, fps)
	if err != nil {
		// The handshake error is the one to report; closing only sends an
		// alert if the association got that far.
		_ = conn.Close()
		return dtlsResult{}, fmt.Errorf("dtls %s handshake as %s: %w", c.comp, role(client), err)
	}
	return res, nil
}

func role(client bool) string {
	if client {
		return "client (setup:active)"
	}
	return "server (setup:passive)"
}

func (c *dtlsComponent) finish(ctx context.Context, conn *dtls.Conn, client bool, fps []fingerprint) (dtlsResult, error) {
	if err := conn.HandshakeContext(ctx); err != nil {
		return dtlsResult{}, err
	}
	state, ok := conn.ConnectionState()
	if !ok || len(state.PeerCertificates) == 0 {
		return dtlsResult{}, fmt.Errorf("no peer certificate after handshake: %w", errFingerprint)
	}
	// VerifyPeerCertificate already ran; check again on the state we key
	// from, so no pion code path (resumption, a future change) can hand us
	// keys for a certificate nobody compared.
	if err := matchFingerprint(state.PeerCertificates[0], fps); err != nil {
		return dtlsResult{}, err
	}
	prof, ok := conn.SelectedSRTPProtectionProfile()
	if !ok {
		return dtlsResult{}, fmt.Errorf("peer negotiated no use_srtp profile: %w", ErrNotAcceptable)
	}
	suite, err := policy.SRTPSuiteByDTLS(prof)
	if err != nil {
		return dtlsResult{}, err
	}
	cfg := srtp.Config{Profile: suite.Profile}
	if err := cfg.ExtractSessionKeysFromDTLS(&state, client); err != nil {
		return dtlsResult{}, fmt.Errorf("export srtp keys: %w", err)
	}
	return dtlsResult{
		keys: sessionKeys{
			Suite:    suite,
			LocalKey: cfg.Keys.LocalMasterKey, LocalSalt: cfg.Keys.LocalMasterSalt,
			RemoteKey: cfg.Keys.RemoteMasterKey, RemoteSalt: cfg.Keys.RemoteMasterSalt,
		},
		peerCert: slices.Clone(state.PeerCertificates[0]),
	}, nil
}

// drain keeps reading the association after the handshake so pion sees
// alerts and retransmitted flights; DTLS-SRTP carries no application data.
func (c *dtlsComponent) drain(conn *dtls.Conn) {
	buf := make([]byte, maxDatagram)
	for {
		if _, err := conn.Read(buf); err != nil {
			return
		}
	}
}

// shutdown sends close_notify if an association exists and stops it.
func (c *dtlsComponent) shutdown() {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		// Best effort: the peer may be gone already.
		_ = conn.Close()
	}
	// Close is idempotent and cannot fail.
	_ = c.Close()
}
