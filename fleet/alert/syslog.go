package alert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hardphone/hardphone/crypto/policy"
	"github.com/hardphone/hardphone/fleet/anomaly"
	"github.com/hardphone/hardphone/internal/tcpack"
)

// A finding goes to the collector as one RFC 5424 message (§6) with RFC
// 5425 octet-counting framing (§4.3):
//
//	<PRI>1 TIMESTAMP HOSTNAME hpfleet - anomaly.RULE [finding@32473 id="7" rule="fleet.probe" severity="warning" devices="dev-…,dev-…" source="198.51.100.0/24"] MESSAGE
//
//	PRI      facility 14 (log alert, §6.2.1 Table 1) * 8 + the finding's severity
//	MESSAGE  Finding.Message(): rule, severity, devices, source, summary
//
// 32473 is the private enterprise number RFC 5612 reserves for
// documentation, as the phone's exporter uses (§7.2.2 wants name@PEN for
// SD-IDs not registered with IANA).
const (
	facilityLogAlert = 14
	appName          = "hpfleet"
	sdFinding        = "finding@32473"
	// maxMessage: RFC 5425 §4.3.1 receivers SHOULD take 8192 octets.
	maxMessage   = 8192
	maxHostname  = 255
	dialTimeout  = 10 * time.Second
	writeTimeout = 30 * time.Second
	// minSettle is the least time a new connection is watched for the
	// collector's refusal (TLS 1.3 sends it after the client's Finished)
	// before anything is written on it.
	minSettle = 300 * time.Millisecond
)

// FormatSyslog renders a finding as an RFC 5424 message from host.
func FormatSyslog(f anomaly.Finding, host string, at time.Time) ([]byte, error) {
	if !f.Severity.Valid() {
		return nil, fmt.Errorf("format finding %d: severity %d", f.ID, f.Severity)
	}
	var b strings.Builder
	b.WriteString("<" + strconv.Itoa(facilityLogAlert*8+int(f.Severity)) + ">1 ")
	b.WriteString(at.UTC().Format("2006-01-02T15:04:05.000000Z"))
	b.WriteString(" " + hostname(host) + " " + appName + " - " + msgID(f.Rule) + " ")
	b.WriteString("[" + sdFinding)
	param := func(name, v string) {
		b.WriteString(" " + name + `="`)
		for i := 0; i < len(v); i++ {
			// §6.3.3: '"', '\' and ']' are escaped inside PARAM-VALUE.
			switch c := v[i]; {
			case c == '"' || c == '\\' || c == ']':
				b.WriteByte('\\')
				b.WriteByte(c)
			case c < 0x20 || c == 0x7f:
				b.WriteByte('?')
			default:
				b.WriteByte(c)
			}
		}
		b.WriteByte('"')
	}
	param("id", strconv.FormatUint(f.ID, 10))
	param("rule", f.Rule)
	param("severity", f.Severity.String())
	param("time", f.Time.UTC().Format(time.RFC3339))
	if len(f.Devices) > 0 {
		param("devices", strings.Join(f.Devices, ","))
	}
	if f.Source.IsValid() {
		param("source", f.Source.String())
	}
	for _, r := range f.Responses {
		param("response", string(r.Kind))
	}
	b.WriteString("] ")
	for _, r := range f.Message() {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
			r = '?'
		}
		b.WriteRune(r)
	}
	if b.Len() > maxMessage {
		return []byte(b.String()[:maxMessage]), nil
	}
	return []byte(b.String()), nil
}

// msgID is the MSGID (§6.2.7: 1..32 printable ASCII): "anomaly." and the
// rule, cut to fit.
func msgID(rule string) string {
	id := "anomaly." + rule
	if len(id) > 32 {
		id = id[:32]
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= 32 || c >= 127 {
			return "anomaly"
		}
	}
	return id
}

// hostname makes h fit HOSTNAME (§6.2.4: 1 to 255 PRINTUSASCII, "-" for
// none).
func hostname(h string) string {
	var b strings.Builder
	for i := 0; i < len(h) && b.Len() < maxHostname; i++ {
		if c := h[i]; c > 32 && c < 127 {
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

// SyslogConfig says where findings go.
type SyslogConfig struct {
	// Addr is the collector, host:port (RFC 5425 §4.1: port 6514).
	Addr string
	// Roots and ServerName verify the collector's certificate;
	// Certificate is the fleet server's client certificate (required: the
	// collector learns from it which server speaks). The TLS
	// configuration is crypto/policy's.
	Roots       *x509.CertPool
	ServerName  string
	Certificate *tls.Certificate
	// Hostname is each message's HOSTNAME.
	Hostname string
}

// Syslog sends findings to a collector over one connection, made on the
// first Alert and again after a failure.
type Syslog struct {
	cfg        *tls.Config
	addr, host string
	log        *slog.Logger

	mu   sync.Mutex // guards conn, dead; serialises Alert
	conn *tls.Conn  // nil when not connected
	dead chan error // receives when the collector closes conn
}

// NewSyslog checks the configuration; log may be nil (discard).
func NewSyslog(c SyslogConfig, log *slog.Logger) (*Syslog, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return nil, fmt.Errorf("syslog alerts: address %q: %w", c.Addr, err)
	}
	if c.Certificate == nil {
		return nil, errors.New("syslog alerts: no client certificate (the collector must know who speaks)")
	}
	if err := tcpack.Supported(); err != nil {
		return nil, fmt.Errorf("syslog alerts: delivery is confirmed by the TCP send queue: %w", err)
	}
	cfg, err := policy.ClientConfig(policy.ClientTLS{Roots: c.Roots, ServerName: c.ServerName, Certificate: c.Certificate})
	if err != nil {
		return nil, fmt.Errorf("syslog alerts: %w", err)
	}
	return &Syslog{cfg: cfg, addr: c.Addr, host: c.Hostname, log: log.With("component", "alert_syslog", "collector", c.Addr)}, nil
}

// Alert implements anomaly.Alerter: it returns once the collector's TCP
// acknowledged the whole message.
func (s *Syslog) Alert(ctx context.Context, f anomaly.Finding) error {
	msg, err := FormatSyslog(f, s.host, time.Now())
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		if err := s.connect(ctx); err != nil {
			return fmt.Errorf("alert %s: %w", s.addr, err)
		}
	}
	if err := s.write(ctx, msg); err != nil {
		s.closeLocked()
		return fmt.Errorf("alert %s: %w", s.addr, err)
	}
	return nil
}

func (s *Syslog) write(ctx context.Context, msg []byte) error {
	frame := strconv.AppendInt(nil, int64(len(msg)), 10)
	frame = append(append(frame, ' '), msg...)
	if err := s.conn.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	if _, err := s.conn.Write(frame); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	deadline := time.Now().Add(writeTimeout)
	pause := 100 * time.Microsecond
	for {
		n, err := tcpack.Unacked(s.conn)
		if err != nil {
			return fmt.Errorf("acknowledgement: %w", err)
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("collector has not acknowledged %d bytes after %v", n, writeTimeout)
		}
		select {
		case err := <-s.dead:
			return fmt.Errorf("%w: collector closed the connection with %d bytes unacknowledged: %w", ErrRefused, n, err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
			pause = min(2*pause, 50*time.Millisecond)
		}
	}
}

// connect dials, completes the handshake, checks it against the policy,
// and watches the connection for one settle time: with TLS 1.3 the
// collector refuses a client certificate only after the client considers
// the handshake done, and what is written before that alert is lost.
func (s *Syslog) connect(ctx context.Context) error {
	start := time.Now()
	d := net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	conn := tls.Client(raw, s.cfg)
	hctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if err := conn.HandshakeContext(hctx); err != nil {
		raw.Close()
		return fmt.Errorf("tls handshake: %w", err)
	}
	if err := policy.CheckTLSState(conn.ConnectionState()); err != nil {
		conn.Close()
		return fmt.Errorf("tls: %w", err)
	}
	// The collector never sends application data: anything read, or the
	// read failing, ends the session.
	dead := make(chan error, 1)
	go func() {
		var buf [512]byte
		for {
			if _, err := conn.Read(buf[:]); err != nil {
				dead <- err
				return
			}
		}
	}()
	select {
	case err := <-dead:
		conn.Close()
		return fmt.Errorf("%w: collector closed the connection after the handshake (client certificate refused?): %w", ErrRefused, err)
	case <-ctx.Done():
		conn.Close()
		return ctx.Err()
	case <-time.After(max(minSettle, 2*time.Since(start))):
	}
	s.conn, s.dead = conn, dead
	s.log.Info("alert collector connected", "tls_version", tls.VersionName(conn.ConnectionState().Version))
	return nil
}

func (s *Syslog) closeLocked() {
	if s.conn != nil {
		s.conn.Close() // dropped either way; its error adds nothing
		s.conn, s.dead = nil, nil
	}
}

// Close drops the connection.
func (s *Syslog) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked()
	return nil
}
