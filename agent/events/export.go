package events

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
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

// Defaults of an Exporter.
const (
	DefaultBackoffMin       = time.Second
	DefaultBackoffMax       = 2 * time.Minute
	DefaultExportCheckpoint = 30 * time.Second
	// exportBatch is the most records one write carries.
	exportBatch = 256
	dialTimeout = 10 * time.Second
	// writeTimeout bounds one batch's write and its acknowledgement.
	writeTimeout = 30 * time.Second
	// minSettle is the least time a new connection is watched for the
	// collector's refusal before anything is sent on it.
	minSettle = 300 * time.Millisecond
)

// ExportConfig says where and how to export.
type ExportConfig struct {
	// Addr is the collector, host:port (RFC 5425 §4.1: port 6514).
	Addr string
	// TLS holds the collector's trust anchors and name, and the phone's
	// identity certificate, which is required: the collector learns which
	// phone speaks from it. The tls.Config is built by crypto/policy.
	TLS policy.ClientTLS
	// Hostname is the HOSTNAME field of each message (the device name).
	Hostname string
}

type exportOptions struct {
	backoffMin, backoffMax time.Duration
	checkpointEvery        time.Duration
	log                    *slog.Logger
}

// ExportOption configures NewExporter.
type ExportOption func(*exportOptions) error

// WithBackoff sets the reconnect backoff: it starts at min, doubles after
// each failed attempt up to max, with ±25% jitter, and starts over once a
// connection delivered something.
func WithBackoff(min, max time.Duration) ExportOption {
	return func(o *exportOptions) error {
		if min <= 0 || max < min {
			return fmt.Errorf("backoff %v..%v: want 0 < min <= max", min, max)
		}
		o.backoffMin, o.backoffMax = min, max
		return nil
	}
}

// WithExportCheckpoint sets how long the exporter, once it has shipped
// everything, waits before it asks the journal for a checkpoint over the
// unsigned head (and ships that too).
func WithExportCheckpoint(d time.Duration) ExportOption {
	return func(o *exportOptions) error {
		if d <= 0 {
			return fmt.Errorf("export checkpoint %v: want > 0", d)
		}
		o.checkpointEvery = d
		return nil
	}
}

// WithExportLogger sets the logger; the default discards.
func WithExportLogger(l *slog.Logger) ExportOption {
	return func(o *exportOptions) error {
		if l == nil {
			return errors.New("nil logger")
		}
		o.log = l
		return nil
	}
}

// ExportStats describes the exporter's progress.
type ExportStats struct {
	// Connected is true while a session is up.
	Connected bool
	// Delivered is the journal's delivery cursor.
	Delivered uint64
	// Sent counts messages written, resends included; Attempts counts
	// connection attempts, Failures those that ended in an error.
	Sent, Attempts, Failures uint64
	// LastErr is the last session's error, "" when none.
	LastErr string
}

// Exporter ships the journal to a syslog collector: RFC 5424 messages,
// RFC 5425 octet-counted over mutual TLS, in journal order, from the
// journal's persisted delivery cursor. The journal is the queue: it is
// bounded on disk, and a collector outage only makes records wait.
//
// Delivery is at least once. A record counts as delivered, and the cursor
// moves past it, when the collector's TCP has acknowledged every byte up to
// it (the socket's send queue is empty: SIOCOUTQ) on a connection the
// collector did not refuse. Records written but not acknowledged when a
// connection breaks are sent again on the next one, and so are those
// acknowledged in the resendWindow before it broke (RFC 5425 has no
// application acknowledgement: a collector that stops with bytes in its
// buffers acknowledged what it never wrote down), so the collector may see
// a record twice: (chain, seq) in the structured data tells it. When the journal
// had to drop records before they were delivered, it wrote an
// events.export_gap event that says how many, and the collector also sees
// the jump in seq.
type Exporter struct {
	j     *Journal
	cfg   *tls.Config
	addr  string
	host  string
	chain string
	o     exportOptions
	log   *slog.Logger
	// resendFrom, when not 0, is where the next session starts, before
	// the cursor (rewind); only Run's goroutine uses it.
	resendFrom uint64

	mu sync.Mutex // guards st
	st ExportStats
}

// NewExporter makes an Exporter of j. It builds the TLS client
// configuration from crypto/policy and refuses a config without the phone's
// certificate.
func NewExporter(j *Journal, c ExportConfig, opts ...ExportOption) (*Exporter, error) {
	o := exportOptions{backoffMin: DefaultBackoffMin, backoffMax: DefaultBackoffMax, checkpointEvery: DefaultExportCheckpoint,
		log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("new exporter: %w", err)
		}
	}
	if j == nil {
		return nil, errors.New("new exporter: nil journal")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return nil, fmt.Errorf("new exporter: collector address %q: %w", c.Addr, err)
	}
	if c.TLS.Certificate == nil {
		return nil, errors.New("new exporter: no client certificate: the collector must learn which phone speaks (mutual TLS)")
	}
	cfg, err := policy.ClientConfig(c.TLS)
	if err != nil {
		return nil, fmt.Errorf("new exporter: %w", err)
	}
	if err := tcpack.Supported(); err != nil {
		// Without it the exporter could only count a record delivered
		// once written, which would lose what a broken connection held.
		return nil, fmt.Errorf("new exporter: %w: %w", ErrUnsupported, err)
	}
	st := j.Stats()
	return &Exporter{j: j, cfg: cfg, addr: c.Addr, host: c.Hostname, chain: hex.EncodeToString(st.Chain[:]), o: o,
		log: o.log.With("component", "events", "collector", c.Addr)}, nil
}

// Stats returns the exporter's progress.
func (e *Exporter) Stats() ExportStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.st
	st.Delivered = e.j.Stats().Delivered
	return st
}

func (e *Exporter) update(f func(*ExportStats)) {
	e.mu.Lock()
	f(&e.st)
	e.mu.Unlock()
}

// Run exports until ctx is done, reconnecting with backoff, and returns
// nil then. It returns an error only when the journal cannot keep a
// delivery cursor.
func (e *Exporter) Run(ctx context.Context) error {
	if _, err := e.j.enableCursor(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	backoff := e.o.backoffMin
	for ctx.Err() == nil {
		e.update(func(s *ExportStats) { s.Attempts++ })
		progressed, err := e.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		e.update(func(s *ExportStats) { s.Connected, s.Failures, s.LastErr = false, s.Failures+1, err.Error() })
		if progressed {
			backoff = e.o.backoffMin
		}
		wait := jitter(backoff)
		e.log.Warn("collector session ended; retrying", "err", err, "retry_in", wait)
		backoff = min(2*backoff, e.o.backoffMax)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
	return nil
}

func jitter(d time.Duration) time.Duration {
	return d*3/4 + time.Duration(rand.Int64N(int64(d)/2+1))
}

// connect dials the collector and completes the TLS handshake, then
// watches the new connection for a refusal before it is used. With TLS 1.3
// the client's handshake ends before the server has checked the client's
// certificate, so a collector that refuses the phone only says so with an
// alert afterwards; waiting one settle time (at least minSettle, at least
// twice the handshake's duration) for it keeps records from being counted
// delivered on a connection the collector is about to drop.
func (e *Exporter) connect(ctx context.Context) (*tls.Conn, <-chan error, error) {
	start := time.Now()
	d := net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", e.addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dial: %w", err)
	}
	conn := tls.Client(raw, e.cfg)
	hctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if err := conn.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, nil, fmt.Errorf("tls handshake: %w", err)
	}
	if err := policy.CheckTLSState(conn.ConnectionState()); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("tls: %w", err)
	}
	// The collector never sends application data: anything read, or the
	// read failing, means the session is over.
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
	settle := max(minSettle, 2*time.Since(start))
	select {
	case err := <-dead:
		conn.Close()
		return nil, nil, fmt.Errorf("collector closed the connection after the handshake (client certificate refused?): %w", err)
	case <-ctx.Done():
		conn.Close()
		return nil, nil, ctx.Err()
	case <-time.After(settle):
	}
	return conn, dead, nil
}

// session runs one connection: ship from the cursor, wait for new records,
// until the connection fails or ctx is done. It reports whether it moved
// the cursor.
func (e *Exporter) session(ctx context.Context) (progressed bool, err error) {
	conn, dead, err := e.connect(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	e.update(func(s *ExportStats) { s.Connected = true })
	e.log.Info("collector connected", "tls_version", tls.VersionName(conn.ConnectionState().Version))
	return e.ship(ctx, conn, dead)
}

// ship delivers records on an established connection until it fails or
// ctx is done.
func (e *Exporter) ship(ctx context.Context, conn *tls.Conn, dead <-chan error) (progressed bool, err error) {
	var lastCheckpoint time.Time
	// This session's acknowledged batches of the last resendWindow: when
	// the connection then fails, they are sent again on the next one.
	var acked []ackMark
	defer func() {
		if err != nil && ctx.Err() == nil {
			e.rewind(acked)
		}
	}()
	next := e.j.Stats().Delivered + 1
	if e.resendFrom != 0 && e.resendFrom < next {
		next = e.resendFrom
	}
	e.resendFrom = 0
	for {
		changed := e.j.Changed() // before reading, so no commit is missed
		st := e.j.Stats()
		recs, err := e.j.List(next, exportBatch)
		if err != nil {
			return progressed, err
		}
		if len(recs) == 0 {
			var due <-chan time.Time
			if st.Unsigned > 0 {
				wait := e.o.checkpointEvery - time.Since(lastCheckpoint)
				if wait <= 0 {
					// Everything is shipped: sign the head so the
					// collector holds a signed statement of it.
					lastCheckpoint = time.Now()
					if _, err := e.j.checkpoint(ReasonExport); err != nil {
						e.log.Warn("export checkpoint", "err", err)
					}
					continue
				}
				due = time.After(wait)
			}
			select {
			case <-changed:
			case <-due:
			case err := <-dead:
				return progressed, fmt.Errorf("collector closed the connection: %w", err)
			case <-ctx.Done():
				return progressed, nil
			}
			continue
		}
		if first := recs[0].Seq; first > st.Delivered+1 && st.Delivered != 0 {
			e.log.Warn("records dropped by the journal before delivery", "from", st.Delivered+1, "to", first-1)
		}
		buf := make([]byte, 0, 64*1024)
		for i := range recs {
			msg, err := e.format(&recs[i])
			if err != nil {
				return progressed, err
			}
			buf = frame(buf, msg)
		}
		if err := conn.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
			return progressed, err
		}
		if _, err := conn.Write(buf); err != nil {
			return progressed, fmt.Errorf("write: %w", err)
		}
		e.update(func(s *ExportStats) { s.Sent += uint64(len(recs)) })
		if err := waitAcked(ctx, conn, dead, writeTimeout); err != nil {
			return progressed, err
		}
		last := recs[len(recs)-1].Seq
		if err := e.j.setCursor(last); err != nil { // a resend never moves it back
			return progressed, err
		}
		now := time.Now()
		for len(acked) > 0 && now.Sub(acked[0].at) > resendWindow {
			acked = acked[1:]
		}
		acked = append(acked, ackMark{first: recs[0].Seq, at: now})
		next = last + 1
		progressed = true
	}
}

// resendWindow is how far back, before a connection failed, records the
// collector's TCP acknowledged are sent again: RFC 5425 has no application
// acknowledgement, and a collector that stops (or crashes) with bytes in
// its socket buffer or its own queue has acknowledged what it never wrote
// down. The collector may see those records twice; (chain, seq) tells it.
const resendWindow = 5 * time.Second

// ackMark is one acknowledged batch: its first seq and when.
type ackMark struct {
	first uint64
	at    time.Time
}

// rewind makes the next session start at the oldest batch acknowledged
// within resendWindow of the failure. The persisted cursor stays where it
// is (it only moves forward; Verify holds it to that).
func (e *Exporter) rewind(acked []ackMark) {
	now := time.Now()
	for _, m := range acked {
		if now.Sub(m.at) <= resendWindow {
			e.resendFrom = m.first
			e.log.Info("collector connection failed: resending what it acknowledged in the last seconds", "from", m.first, "window", resendWindow)
			return
		}
	}
}

// format renders one record; a record the journal could not decode is
// still reported, by seq and hash, so the collector learns of the damage.
func (e *Exporter) format(rec *Record) ([]byte, error) {
	rec.chain = e.chain
	if rec.Err == nil {
		return formatRecord(rec, e.host)
	}
	var b strings.Builder
	b.WriteString("<" + strconv.Itoa(facilityAuth*8+int(SeverityError)) + ">1 ")
	b.WriteString(time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"))
	b.WriteString(" " + syslogHostname(e.host) + " " + appName + " - events.damaged ")
	writeSD(&b, sdChain, []sdParam{{"seq", strconv.FormatUint(rec.Seq, 10)}, {"chain", e.chain}, {"hash", hex.EncodeToString(rec.Hash[:])}})
	b.WriteString(" journal record does not decode")
	return []byte(b.String()), nil
}

// waitAcked waits until the collector's TCP has acknowledged everything
// written on conn.
func waitAcked(ctx context.Context, conn *tls.Conn, dead <-chan error, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	pause := 100 * time.Microsecond
	for {
		n, err := tcpack.Unacked(conn)
		if err != nil {
			return fmt.Errorf("acknowledgement: %w", err)
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("collector has not acknowledged %d bytes after %v", n, timeout)
		}
		select {
		case err := <-dead:
			return fmt.Errorf("collector closed the connection with %d bytes unacknowledged: %w", n, err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, 20*time.Millisecond)
	}
}
