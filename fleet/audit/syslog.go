package audit

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hardphone/hardphone/crypto/policy"
	"github.com/hardphone/hardphone/internal/tcpack"
)

// A checkpoint goes to the collector as one RFC 5424 message (§6) with
// RFC 5425 octet-counting framing (§4.3) over mutual TLS:
//
//	<109>1 TIMESTAMP HOSTNAME hpfleet - audit.checkpoint [checkpoint@32473 origin="O" size="N" root="R" note="B"] audit checkpoint O size N
//
//	PRI    facility 13 (log audit, §6.2.1 Table 1) * 8 + severity 5 (notice)
//	root   the root hash, standard base64
//	note   the whole signed note, standard base64, which ParseSyslogCheckpoints
//	       extracts from the collector's files for Verify
//
// 32473 is the private enterprise number RFC 5612 reserves for
// documentation, as the phone's exporter uses, until hardphone has its own
// (§7.2.2 wants name@PEN for SD-IDs not registered with IANA). Every
// field is ASCII with no character §6.3.3 needs escaped ('"', '\', ']'),
// by construction (origin charset, decimal, base64).
const (
	syslogPRI     = 13*8 + 5
	syslogApp     = "hpfleet"
	syslogMsgID   = "audit.checkpoint"
	sdCheckpoint  = "checkpoint@32473"
	maxSyslogHost = 255
	// maxSyslogMessage: RFC 5425 §4.3.1 receivers SHOULD take 8192
	// octets; a checkpoint note is bounded far below (maxCheckpoint).
	maxSyslogMessage = 8192
	syslogDial       = 10 * time.Second
	syslogWrite      = 30 * time.Second
	// minSettle is the least time a new connection is watched for the
	// collector's refusal (TLS 1.3 sends it after the client's Finished)
	// before anything is written on it.
	minSettle = 300 * time.Millisecond
)

// FormatSyslog renders cp as an RFC 5424 message for host (the HOSTNAME
// field; "-" when empty).
func FormatSyslog(cp Checkpoint, host string, at time.Time) ([]byte, error) {
	if err := checkOrigin(cp.Origin); err != nil {
		return nil, fmt.Errorf("format checkpoint: %w", err)
	}
	var b strings.Builder
	b.WriteString("<" + strconv.Itoa(syslogPRI) + ">1 ")
	b.WriteString(at.UTC().Format("2006-01-02T15:04:05.000000Z"))
	b.WriteString(" " + syslogHostname(host) + " " + syslogApp + " - " + syslogMsgID + " ")
	fmt.Fprintf(&b, `[%s origin="%s" size="%d" root="%s" note="%s"]`, sdCheckpoint, cp.Origin, cp.Size,
		base64.StdEncoding.EncodeToString(cp.Root[:]), base64.StdEncoding.EncodeToString(cp.Note))
	fmt.Fprintf(&b, " audit checkpoint %s size %d", cp.Origin, cp.Size)
	if b.Len() > maxSyslogMessage {
		return nil, fmt.Errorf("format checkpoint: %d bytes, at most %d: %w", b.Len(), maxSyslogMessage, ErrInvalid)
	}
	return []byte(b.String()), nil
}

// syslogHostname makes h fit HOSTNAME (§6.2.4: 1 to 255 PRINTUSASCII,
// "-" for none).
func syslogHostname(h string) string {
	var b strings.Builder
	for i := 0; i < len(h) && b.Len() < maxSyslogHost; i++ {
		if c := h[i]; c > 32 && c < 127 {
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

// ParseSyslogCheckpoints extracts the checkpoint notes from a collector's
// files (one message per line, as rsyslog writes them, or as received),
// for Verify's WithOutsideCheckpoints. Lines without a checkpoint element
// are skipped; a malformed one is an error. The notes are not verified
// here: Verify does, against the trusted keys.
func ParseSyslogCheckpoints(r io.Reader) ([][]byte, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 2*maxSyslogMessage)
	var notes [][]byte
	line := 0
	for sc.Scan() {
		line++
		s := sc.Text()
		i := strings.Index(s, "["+sdCheckpoint+" ")
		if i < 0 {
			continue
		}
		el := s[i:]
		end := strings.IndexByte(el, ']')
		if end < 0 {
			return nil, fmt.Errorf("syslog line %d: unterminated %s element: %w", line, sdCheckpoint, ErrInvalid)
		}
		el = el[:end]
		j := strings.Index(el, ` note="`)
		if j < 0 {
			return nil, fmt.Errorf("syslog line %d: %s without note: %w", line, sdCheckpoint, ErrInvalid)
		}
		v := el[j+len(` note="`):]
		k := strings.IndexByte(v, '"')
		if k < 0 {
			return nil, fmt.Errorf("syslog line %d: unterminated note: %w", line, ErrInvalid)
		}
		n, err := base64.StdEncoding.DecodeString(v[:k])
		if err != nil || len(n) > maxCheckpoint {
			return nil, fmt.Errorf("syslog line %d: note is not base64 of at most %d bytes: %w", line, maxCheckpoint, ErrInvalid)
		}
		notes = append(notes, n)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read syslog: %w", err)
	}
	return notes, nil
}

// SyslogConfig says where checkpoints go.
type SyslogConfig struct {
	// Addr is the collector, host:port (RFC 5425 §4.1: port 6514).
	Addr string
	// TLS holds the collector's trust anchors and name and the server's
	// client certificate (required: the collector learns from it which
	// fleet server speaks).
	TLS policy.ClientTLS
	// Hostname is each message's HOSTNAME.
	Hostname string
}

// SyslogExporter sends checkpoints to a syslog collector over mutual TLS.
// Only the latest checkpoint matters (it commits to every earlier one),
// so nothing is queued: a failed send is retried with the newest.
type SyslogExporter struct {
	cfg        *tls.Config
	addr, host string
	log        *slog.Logger
	backoffMin time.Duration
	backoffMax time.Duration

	mu   sync.Mutex // guards conn, dead, sent
	conn *tls.Conn  // nil when not connected
	dead chan error // receives when the collector closes conn
	sent int64      // size of the last checkpoint delivered
}

type syslogOptions struct {
	log                    *slog.Logger
	backoffMin, backoffMax time.Duration
}

// SyslogOption configures NewSyslogExporter.
type SyslogOption func(*syslogOptions) error

// WithSyslogLogger sets the logger; the default discards.
func WithSyslogLogger(l *slog.Logger) SyslogOption {
	return func(o *syslogOptions) error {
		if l == nil {
			return errors.New("nil logger")
		}
		o.log = l
		return nil
	}
}

// WithSyslogBackoff sets Run's retry backoff: from min, doubling up to
// max, with ±25% jitter. The default is 1 s to 2 min.
func WithSyslogBackoff(min, max time.Duration) SyslogOption {
	return func(o *syslogOptions) error {
		if min <= 0 || max < min {
			return fmt.Errorf("backoff %v..%v: want 0 < min <= max", min, max)
		}
		o.backoffMin, o.backoffMax = min, max
		return nil
	}
}

// NewSyslogExporter checks the configuration; it connects on first Send.
func NewSyslogExporter(c SyslogConfig, opts ...SyslogOption) (*SyslogExporter, error) {
	o := syslogOptions{log: slog.New(slog.DiscardHandler), backoffMin: time.Second, backoffMax: 2 * time.Minute}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("syslog exporter: %w", err)
		}
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return nil, fmt.Errorf("syslog exporter: address %q: %w", c.Addr, err)
	}
	if c.TLS.Certificate == nil {
		return nil, errors.New("syslog exporter: no client certificate (the collector must know who speaks)")
	}
	if err := tcpack.Supported(); err != nil {
		return nil, fmt.Errorf("syslog exporter: checkpoints are confirmed delivered by the TCP send queue: %w", err)
	}
	cfg, err := policy.ClientConfig(c.TLS)
	if err != nil {
		return nil, fmt.Errorf("syslog exporter: %w", err)
	}
	return &SyslogExporter{cfg: cfg, addr: c.Addr, host: c.Hostname, backoffMin: o.backoffMin, backoffMax: o.backoffMax,
		log: o.log.With("component", "audit_syslog", "collector", c.Addr)}, nil
}

// Send delivers cp: connects when not connected, writes the message and
// waits until the collector's TCP has acknowledged all of it. On any
// error the connection is dropped, and the next Send reconnects.
func (s *SyslogExporter) Send(ctx context.Context, cp Checkpoint) error {
	msg, err := FormatSyslog(cp, s.host, time.Now())
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		if err := s.connect(ctx); err != nil {
			return fmt.Errorf("send checkpoint to %s: %w", s.addr, err)
		}
	}
	if err := s.write(ctx, msg); err != nil {
		s.closeLocked()
		return fmt.Errorf("send checkpoint to %s: %w", s.addr, err)
	}
	s.sent = max(s.sent, cp.Size)
	return nil
}

func (s *SyslogExporter) write(ctx context.Context, msg []byte) error {
	frame := strconv.AppendInt(nil, int64(len(msg)), 10)
	frame = append(append(frame, ' '), msg...)
	if err := s.conn.SetWriteDeadline(time.Now().Add(syslogWrite)); err != nil {
		return err
	}
	if _, err := s.conn.Write(frame); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	deadline := time.Now().Add(syslogWrite)
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
			return fmt.Errorf("collector has not acknowledged %d bytes after %v", n, syslogWrite)
		}
		select {
		case err := <-s.dead:
			return fmt.Errorf("collector closed the connection with %d bytes unacknowledged: %w", n, err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
			pause = min(2*pause, 50*time.Millisecond)
		}
	}
}

// connect dials, completes the handshake, checks it against the policy
// and watches the connection for one settle time: with TLS 1.3 the
// collector refuses a client certificate only after the client considers
// the handshake done, and what is written before that alert is lost.
func (s *SyslogExporter) connect(ctx context.Context) error {
	start := time.Now()
	d := net.Dialer{Timeout: syslogDial, KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	conn := tls.Client(raw, s.cfg)
	hctx, cancel := context.WithTimeout(ctx, syslogDial)
	defer cancel()
	if err := conn.HandshakeContext(hctx); err != nil {
		raw.Close()
		return fmt.Errorf("tls handshake: %w", err)
	}
	if err := policy.CheckTLSState(conn.ConnectionState()); err != nil {
		conn.Close()
		return fmt.Errorf("tls: %w", err)
	}
	// The collector never sends application data: anything read, or
	// the read failing, ends the session.
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
		return fmt.Errorf("collector closed the connection after the handshake (client certificate refused?): %w", err)
	case <-ctx.Done():
		conn.Close()
		return ctx.Err()
	case <-time.After(max(minSettle, 2*time.Since(start))):
	}
	s.conn, s.dead = conn, dead
	s.log.Info("audit collector connected", "tls_version", tls.VersionName(conn.ConnectionState().Version))
	return nil
}

func (s *SyslogExporter) closeLocked() {
	if s.conn != nil {
		s.conn.Close() // the error adds nothing: the connection is dropped either way
		s.conn, s.dead = nil, nil
	}
}

// Close drops the connection.
func (s *SyslogExporter) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked()
	return nil
}

// Sent is the size of the largest checkpoint delivered.
func (s *SyslogExporter) Sent() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

// Run checkpoints l every interval and sends the checkpoint when the log
// grew since the last delivery, retrying failures with backoff, until
// ctx is done.
func (s *SyslogExporter) Run(ctx context.Context, l *Log, every time.Duration) error {
	if every <= 0 {
		return fmt.Errorf("syslog exporter: interval %v: want > 0", every)
	}
	backoff := s.backoffMin
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return s.Close()
		case <-t.C:
		}
		wait := every
		cp, err := l.Checkpoint(ctx)
		switch {
		case errors.Is(err, ErrEmpty):
		case err != nil:
			s.log.Error("audit checkpoint", "err", err)
		case cp.Size > s.Sent():
			if err := s.Send(ctx, cp); err != nil {
				s.log.Warn("audit checkpoint not delivered", "size", cp.Size, "err", err, "retry_in", backoff)
				wait = jitter(backoff)
				backoff = min(2*backoff, s.backoffMax)
			} else {
				backoff = s.backoffMin
			}
		}
		t.Reset(wait)
	}
}

func jitter(d time.Duration) time.Duration {
	return d - d/4 + time.Duration(rand.Int64N(int64(d/2)+1))
}
