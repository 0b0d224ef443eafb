package events

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/crypto/policy"
	"github.com/hardphone/hardphone/test"
)

// collectorEnv is a phone (journal signed by its identity key, which is
// also its TLS client key) and an rsyslog collector that permits it.
type collectorEnv struct {
	pki   *test.PKI
	rs    *test.Rsyslog
	cert  tls.Certificate
	key   crypto.Signer
	db    *bolt.DB
	j     *Journal
	clock *fakeClock
}

const phoneCN = "phone-1"

func newCollectorEnv(t testing.TB) *collectorEnv {
	t.Helper()
	pki := test.NewPKI(t, filepath.Join(t.TempDir(), "pki"))
	rs := test.StartRsyslog(t, pki, phoneCN)
	certFile, keyFile, _ := pki.Client(phoneCN)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("load phone certificate: %v", err)
	}
	signer := cert.PrivateKey.(crypto.Signer)
	e := &collectorEnv{pki: pki, rs: rs, cert: cert, key: signer, db: newDB(t), clock: newClock()}
	j, err := Open(e.db, signer, WithClock(e.clock.now), WithCheckpointEvery(16))
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	e.j = j
	return e
}

func (e *collectorEnv) clientTLS(cert *tls.Certificate) policy.ClientTLS {
	return policy.ClientTLS{Roots: e.rs.Roots, ServerName: e.rs.ServerName, Certificate: cert}
}

func (e *collectorEnv) exporter(t *testing.T, cert *tls.Certificate) *Exporter {
	t.Helper()
	x, err := NewExporter(e.j, ExportConfig{Addr: e.rs.Addr, TLS: e.clientTLS(cert), Hostname: phoneCN}, WithBackoff(20*time.Millisecond, 200*time.Millisecond), WithExportCheckpoint(50*time.Millisecond))
	if err != nil {
		t.Fatalf("NewExporter = %v", err)
	}
	return x
}

func runExporter(t *testing.T, x *Exporter) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Exporter.Run = %v", err)
		}
	})
}

// received parses the collector's lines as RFC 5424 and returns the
// records' seqs in arrival order, checking each against the journal.
func (e *collectorEnv) received(t *testing.T, lines []string) []uint64 {
	t.Helper()
	chain := e.j.Stats().Chain
	var seqs []uint64
	for _, l := range lines {
		p, err := parseSyslog([]byte(l))
		if err != nil {
			t.Fatalf("collector line %q is not RFC 5424: %v", l, err)
		}
		if p.host != phoneCN || p.app != appName {
			t.Fatalf("collector line %q: host %q app %q, want %q %q", l, p.host, p.app, phoneCN, appName)
		}
		sd := p.sd[sdChain]
		seq, err := strconv.ParseUint(sd["seq"], 10, 64)
		if err != nil {
			t.Fatalf("collector line %q: seq %q: %v", l, sd["seq"], err)
		}
		if sd["chain"] != hex.EncodeToString(chain[:]) {
			t.Fatalf("collector line %q: chain %q, want %x", l, sd["chain"], chain)
		}
		recs, err := e.j.List(seq, 1)
		if err != nil || len(recs) != 1 || recs[0].Seq != seq {
			t.Fatalf("record %d not in the journal: %v", seq, err)
		}
		if want := hex.EncodeToString(recs[0].Hash[:]); sd["hash"] != want {
			t.Fatalf("record %d: collector has hash %s, journal %s", seq, sd["hash"], want)
		}
		if recs[0].Event != nil && p.msgID != string(recs[0].Event.Kind) {
			t.Fatalf("record %d: MSGID %q, want %q", seq, p.msgID, recs[0].Event.Kind)
		}
		seqs = append(seqs, seq)
	}
	return seqs
}

// upTo reports whether lines hold every seq from 1 to head.
func (e *collectorEnv) upTo(t *testing.T, head uint64) func([]string) bool {
	return func(lines []string) bool {
		seen := make(map[uint64]bool)
		for _, s := range e.received(t, lines) {
			seen[s] = true
		}
		for s := uint64(1); s <= head; s++ {
			if !seen[s] {
				return false
			}
		}
		return true
	}
}

// checkOrder: the collector saw the records in journal order, with no
// gap; a record may come twice only as a resend after a reconnect, which
// starts again at or before the first unacknowledged record.
func checkOrder(t *testing.T, seqs []uint64) (dups int) {
	t.Helper()
	var high uint64
	seen := make(map[uint64]bool)
	for i, s := range seqs {
		if s > high+1 {
			t.Fatalf("collector got record %d (line %d) before record %d: out of order or a gap", s, i, high+1)
		}
		if seen[s] {
			dups++
		}
		seen[s] = true
		high = max(high, s)
	}
	return dups
}

func TestExportToRsyslog(t *testing.T) {
	e := newCollectorEnv(t)
	for i := 0; i < 40; i++ {
		if _, err := e.j.Append(testEvent(i)); err != nil {
			t.Fatalf("Append = %v", err)
		}
	}
	x := e.exporter(t, &e.cert)
	runExporter(t, x)
	head := e.j.Stats().Head
	lines := e.rs.WaitLines(t, 30*time.Second, e.upTo(t, head))
	seqs := e.received(t, lines)
	if dups := checkOrder(t, seqs); dups != 0 {
		t.Errorf("%d records delivered twice on a connection that never broke", dups)
	}
	// New events keep flowing on the open session, and the exporter
	// signs the head once it has shipped everything.
	appendN(t, e.j, e.clock, 10, 3)
	head = e.j.Stats().Head
	e.rs.WaitLines(t, 30*time.Second, func(lines []string) bool {
		return e.upTo(t, head)(lines) && e.j.Stats().Unsigned == 0 && x.Stats().Delivered == e.j.Stats().Head
	})
	if rep, err := Verify(e.db, e.key.Public()); err != nil {
		t.Fatalf("Verify = %v, %v", err, rep.Problems)
	}
	if st := x.Stats(); st.Failures != 0 {
		t.Errorf("Stats() = %+v, want no failed session", st)
	}
}

// TestExportSurvivesCollectorOutage: the collector is down while events
// happen; they wait in the journal and arrive in order once it is back.
func TestExportSurvivesCollectorOutage(t *testing.T) {
	e := newCollectorEnv(t)
	x := e.exporter(t, &e.cert)
	runExporter(t, x)
	appendN(t, e.j, e.clock, 30, 5)
	e.rs.WaitLines(t, 30*time.Second, e.upTo(t, e.j.Stats().Head))
	e.rs.Stop(t)
	appendN(t, e.j, e.clock, 120, 4)
	// The exporter notices the outage: its session fails.
	waitStats(t, x, func(s ExportStats) bool { return s.Failures >= 1 })
	before := x.Stats().Delivered
	e.rs.Restart(t)
	head := e.j.Stats().Head
	lines := e.rs.WaitLines(t, 60*time.Second, e.upTo(t, head))
	dups := checkOrder(t, e.received(t, lines))
	t.Logf("delivered %d before the outage ended, %d records in all, %d resent", before, head, dups)
	if before >= head {
		t.Errorf("cursor reached %d during the outage, want below the head %d", before, head)
	}
}

// TestCollectorRefusesUnknownClients proves the mutual TLS is real: a
// client certificate from another CA and no certificate at all are both
// refused by rsyslog, and their messages never reach its output.
func TestCollectorRefusesUnknownClients(t *testing.T) {
	e := newCollectorEnv(t)
	rogueCert, rogueKey, _ := e.pki.RogueClient(phoneCN)
	rogue, err := tls.LoadX509KeyPair(rogueCert, rogueKey)
	if err != nil {
		t.Fatalf("load rogue certificate: %v", err)
	}
	// Our exporter with the rogue certificate never delivers anything.
	x := e.exporter(t, &rogue)
	runExporter(t, x)
	waitStats(t, x, func(s ExportStats) bool { return s.Failures >= 2 })
	if st := x.Stats(); st.Delivered != 0 || st.Sent != 0 {
		t.Errorf("rogue exporter Stats() = %+v, want nothing sent or delivered", st)
	}
	// Raw clients: each writes a message and must see the connection
	// closed by the collector.
	for _, c := range []struct {
		name  string
		certs []tls.Certificate
	}{{"rogue CA", []tls.Certificate{rogue}}, {"no certificate", nil}} {
		t.Run(c.name, func(t *testing.T) {
			err := rawSend(e, c.certs, "refused-"+c.name)
			if err == nil {
				t.Fatalf("collector kept the connection of a client with %s", c.name)
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("collector neither closed nor answered a client with %s: %v", c.name, err)
			}
			t.Logf("refused: %v", err)
		})
	}
	// The permitted phone's message arrives; the refused ones do not.
	if err := rawSend(e, []tls.Certificate{e.cert}, "accepted"); err == nil {
		t.Fatalf("rawSend(valid) read something back")
	}
	lines := e.rs.WaitLines(t, 30*time.Second, func(lines []string) bool { return containsMsg(lines, "accepted") })
	for _, name := range []string{"refused-rogue CA", "refused-no certificate"} {
		if containsMsg(lines, name) {
			t.Errorf("collector wrote the message of a refused client: %q", name)
		}
	}
}

// rawSend dials the collector with certs, sends one framed message whose
// MSG is msg, closes its write side and reads until the collector closes
// the connection. A permitted client sees io.EOF after the collector took
// the message; a refused one sees the refusal (an alert or a reset).
func rawSend(e *collectorEnv, certs []tls.Certificate, msg string) error {
	c, err := tls.Dial("tcp", e.rs.Addr, &tls.Config{RootCAs: e.rs.Roots, ServerName: e.rs.ServerName, Certificates: certs})
	if err != nil {
		return err
	}
	defer c.Close()
	m := "<36>1 2025-03-01T12:00:00Z " + phoneCN + " hardphone - test - " + msg
	if _, err := c.Write(frame(nil, []byte(m))); err != nil {
		return err
	}
	if err := c.CloseWrite(); err != nil {
		return err
	}
	if err := c.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return err
	}
	var b [64]byte
	_, err = c.Read(b[:])
	return err
}

func containsMsg(lines []string, msg string) bool {
	for _, l := range lines {
		if p, err := parseSyslog([]byte(l)); err == nil && p.msg == msg {
			return true
		}
	}
	return false
}

// waitStats polls the exporter's stats until cond holds (30 s at most).
func waitStats(t *testing.T, x *Exporter, cond func(ExportStats) bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for !cond(x.Stats()) {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("exporter stats %+v: condition not reached in 30s", x.Stats())
		}
	}
}

func TestNewExporterRefusesNoCertificate(t *testing.T) {
	db, key, clk := newDB(t), newKey(t), newClock()
	j := openJournal(t, db, key, clk)
	_, err := NewExporter(j, ExportConfig{Addr: "127.0.0.1:6514", TLS: policy.ClientTLS{Roots: x509.NewCertPool(), ServerName: "127.0.0.1"}})
	if err == nil {
		t.Errorf("NewExporter(no client certificate) = nil error, want refusal")
	}
}
