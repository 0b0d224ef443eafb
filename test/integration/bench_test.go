package integration

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/test"
)

// BenchmarkCallSetup measures INVITE to media secured, hardphone calling
// baresip, beside baresip calling baresip through the same Kamailio: the
// reference from the same run.
func BenchmarkCallSetup(b *testing.B) {
	e := newEnv(b)
	_, _, carolPEM := e.pki.Client("carol")
	_, _, davePEM := e.pki.Client("dave")
	carol := test.StartBaresip(b, test.BaresipKamailio(e.k, "carol"), test.BaresipCertificate(carolPEM),
		test.BaresipMediaEnc("srtp-mand"), test.BaresipAnswerMode("auto"))
	dave := test.StartBaresip(b, test.BaresipKamailio(e.k, "dave"), test.BaresipCertificate(davePEM),
		test.BaresipMediaEnc("srtp-mand"), test.BaresipAnswerMode("auto"))
	carol.WaitRegistered(b, 10*time.Second)
	dave.WaitRegistered(b, 10*time.Second)

	b.Run("hardphone_to_baresip", func(b *testing.B) {
		p := e.startPhone(b, phoneConf{user: "alice"}, nil)
		p.waitRegistered(b)
		var total time.Duration
		for i := 0; i < b.N; i++ {
			c, err := p.acct.Dial(context.Background(), "sip:carol@"+e.k.IP(), sip.CallOptions{})
			if err != nil {
				b.Fatalf("Dial: %v", err)
			}
			total += c.SetupTime()
			carol.WaitEvent(b, "CALL_ESTABLISHED", 10*time.Second)
			c.Hangup(context.Background())
			carol.WaitEvent(b, "CALL_CLOSED", 10*time.Second)
		}
		b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "setup_ms")
	})
	b.Run("baresip_to_baresip", func(b *testing.B) {
		var total time.Duration
		for i := 0; i < b.N; i++ {
			start := time.Now()
			dave.Dial(b, "sip:carol@"+e.k.IP())
			ev := dave.WaitEvent(b, "CALL_ESTABLISHED", 10*time.Second)
			total += ev.At.Sub(start)
			carol.WaitEvent(b, "CALL_ESTABLISHED", 10*time.Second)
			dave.Hangup(b)
			dave.WaitEvent(b, "CALL_CLOSED", 10*time.Second)
			carol.WaitEvent(b, "CALL_CLOSED", 10*time.Second)
		}
		b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "setup_ms")
	})
}

// BenchmarkIdleRSS reports the resident memory of a registered, idle
// `hardphone run` beside a registered, idle baresip.
func BenchmarkIdleRSS(b *testing.B) {
	e := newEnv(b)
	b.Run("hardphone_run", func(b *testing.B) {
		cfg := e.writeConfig(b, phoneConf{user: "alice"})
		p := startAgentProcess(b, "--config", cfg)
		e.k.WaitRegistered(b, "alice", 10*time.Second)
		settle(b)
		b.ReportMetric(float64(rssKiB(b, p.cmd.Process.Pid)), "rss_KiB")
	})
	b.Run("baresip", func(b *testing.B) {
		_, _, pem := e.pki.Client("carol")
		br := test.StartBaresip(b, test.BaresipKamailio(e.k, "carol"), test.BaresipCertificate(pem),
			test.BaresipMediaEnc("srtp-mand"))
		br.WaitRegistered(b, 10*time.Second)
		settle(b)
		b.ReportMetric(float64(rssKiB(b, br.PID())), "rss_KiB")
	})
}

// settle lets start-up allocations be collected before RSS is read: idle
// means registered and past start-up.
func settle(b *testing.B) {
	for i := 0; i < b.N; i++ {
		time.Sleep(2 * time.Second)
	}
}

func rssKiB(b *testing.B, pid int) int {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(s), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			n, err := strconv.Atoi(strings.Fields(l)[1])
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatalf("no VmRSS for pid %d", pid)
	return 0
}
