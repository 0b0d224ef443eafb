package audit_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leodido/go-syslog/v4/rfc5424"

	"github.com/hardphone/hardphone/crypto/policy"
	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/audit/audittest"
	"github.com/hardphone/hardphone/test"
)

const serverCN = "hpfleet-1"

type collector struct {
	rs  *test.Rsyslog
	pki *test.PKI
}

func newCollector(t *testing.T) *collector {
	t.Helper()
	pki := test.NewPKI(t, filepath.Join(t.TempDir(), "pki"))
	return &collector{rs: test.StartRsyslog(t, pki, serverCN), pki: pki}
}

func (c *collector) exporter(t *testing.T, rogue bool) *audit.SyslogExporter {
	t.Helper()
	certFile, keyFile, _ := c.pki.Client(serverCN)
	if rogue {
		certFile, keyFile, _ = c.pki.RogueClient(serverCN)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("load client certificate: %v", err)
	}
	x, err := audit.NewSyslogExporter(audit.SyslogConfig{Addr: c.rs.Addr, Hostname: serverCN,
		TLS: policy.ClientTLS{Roots: c.rs.Roots, ServerName: c.rs.ServerName, Certificate: &cert}},
		audit.WithSyslogBackoff(20*time.Millisecond, 200*time.Millisecond))
	if err != nil {
		t.Fatalf("NewSyslogExporter error %v", err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

// TestSyslogOutsideCopy ships checkpoints to Debian's rsyslog over mutual
// TLS, reads them back from what rsyslog wrote, and uses that outside
// copy to catch a truncation that also removed the checkpoints from the
// exported log.
func TestSyslogOutsideCopy(t *testing.T) {
	c := newCollector(t)
	key := audittest.NewKey(t, origin)
	l := newLog(t, key)
	x := c.exporter(t, false)
	var sent []audit.Checkpoint
	for i := 0; i < 30; i++ {
		if _, err := l.Append(ctx, audittest.SampleEntry(i)); err != nil {
			t.Fatalf("Append error %v", err)
		}
		if i%10 == 9 {
			cp, err := l.Checkpoint(ctx)
			if err != nil {
				t.Fatalf("Checkpoint error %v", err)
			}
			if err := x.Send(ctx, cp); err != nil {
				t.Fatalf("Send error %v\n%s", err, c.rs.LogTail())
			}
			sent = append(sent, cp)
		}
	}
	lines := c.rs.WaitLines(t, 20*time.Second, func(l []string) bool { return len(l) >= 3 })
	// rsyslog parsed each as RFC 5424: check with an independent parser.
	for i, line := range lines {
		m, err := rfc5424.NewParser(rfc5424.WithBestEffort()).Parse([]byte(line))
		if err != nil {
			t.Fatalf("rsyslog line %d %q does not parse as RFC 5424: %v", i, line, err)
		}
		sm := m.(*rfc5424.SyslogMessage)
		if sm.MsgID == nil || *sm.MsgID != "audit.checkpoint" || sm.Facility == nil || *sm.Facility != 13 {
			t.Fatalf("rsyslog line %d = %q, want msgid audit.checkpoint, facility 13", i, line)
		}
		sd := *sm.StructuredData
		if got := sd["checkpoint@32473"]["size"]; got != []string{"10", "20", "30"}[i] {
			t.Fatalf("rsyslog line %d size %q, want %d", i, got, 10*(i+1))
		}
	}
	outside, err := audit.ParseSyslogCheckpoints(strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatalf("ParseSyslogCheckpoints error %v", err)
	}
	if len(outside) != 3 {
		t.Fatalf("ParseSyslogCheckpoints = %d notes, want 3", len(outside))
	}
	for i, n := range outside {
		if !bytes.Equal(n, sent[i].Note) {
			t.Fatalf("note %d from rsyslog = %q, sent %q", i, n, sent[i].Note)
		}
	}

	// The attacker cuts the log at 22 and drops the checkpoint of 30
	// from the export; only the collector's copy knows better.
	var buf bytes.Buffer
	if err := l.Export(ctx, &buf); err != nil {
		t.Fatalf("Export error %v", err)
	}
	all := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") // header, 3 checkpoints, 30 entries
	cut := append([]string{strings.Replace(all[0], `"size":30`, `"size":22`, 1)}, all[1:3]...)
	cut = append(cut, all[4:4+22]...)
	if rep := verify(t, cut, key.Trust()); !rep.OK() {
		t.Fatalf("Verify(cut export, no outside copy) = %q, want OK: the cut is invisible without it", problems(rep))
	}
	rep := verify(t, cut, key.Trust(), audit.WithOutsideCheckpoints(outside...))
	if got := strings.Join(problems(rep), "; "); got != "truncated 22..29" {
		t.Fatalf("Verify(cut export, rsyslog's checkpoints) = %q, want truncated 22..29", got)
	}
	raw, _ := json.Marshal(rep)
	t.Logf("report: %s", raw)
}

// TestSyslogRefusals: a client certificate the collector does not trust is
// refused and the checkpoint never reaches its files; the exporter's Run
// delivers once the log has entries and keeps the latest delivered.
func TestSyslogRefusals(t *testing.T) {
	c := newCollector(t)
	key := audittest.NewKey(t, origin)
	l := newLog(t, key)
	if _, err := l.Append(ctx, audittest.SampleEntry(0)); err != nil {
		t.Fatal(err)
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.exporter(t, true).Send(ctx, cp); err == nil {
		t.Fatalf("Send with a rogue client certificate succeeded")
	}
	if _, err := audit.NewSyslogExporter(audit.SyslogConfig{Addr: c.rs.Addr,
		TLS: policy.ClientTLS{Roots: c.rs.Roots, ServerName: c.rs.ServerName}}); err == nil {
		t.Fatalf("NewSyslogExporter without a client certificate succeeded")
	}

	x := c.exporter(t, false)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- x.Run(rctx, l, 20*time.Millisecond) }()
	lines := c.rs.WaitLines(t, 20*time.Second, func(l []string) bool { return len(l) >= 1 })
	for i := 1; i < 5; i++ {
		if _, err := l.Append(ctx, audittest.SampleEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	lines = c.rs.WaitLines(t, 20*time.Second, func(l []string) bool {
		return len(l) > 0 && strings.Contains(l[len(l)-1], `size="5"`)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run error %v", err)
	}
	if n := strings.Count(strings.Join(lines, "\n"), `size="1"`); n != 1 {
		t.Fatalf("checkpoint of size 1 received %d times, want once (the rogue send never arrived)", n)
	}
	if x.Sent() != 5 {
		t.Fatalf("Sent() = %d, want 5", x.Sent())
	}
}
