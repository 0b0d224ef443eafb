package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
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
		reportMemory(b, p.cmd.Process.Pid)
		// Where the Go side of it goes, from the agent's own runtime/metrics.
		out, err := exec.Command(hardphoneBinary(b), "status", "--json", "--config", cfg).Output()
		if err != nil {
			b.Fatalf("hardphone status: %v", err)
		}
		var st struct {
			R struct {
				Goroutines  int    `json:"goroutines"`
				HeapBytes   uint64 `json:"heap_bytes"`
				StackBytes  uint64 `json:"stack_bytes"`
				MappedBytes uint64 `json:"mapped_bytes"`
			} `json:"runtime"`
		}
		if err := json.Unmarshal(out, &st); err != nil {
			b.Fatalf("status: %v", err)
		}
		b.ReportMetric(float64(st.R.HeapBytes/1024), "go_heap_KiB")
		b.ReportMetric(float64(st.R.StackBytes/1024), "go_stacks_KiB")
		b.ReportMetric(float64(st.R.MappedBytes/1024), "go_mapped_KiB")
		b.ReportMetric(float64(st.R.Goroutines), "goroutines")
	})
	b.Run("baresip", func(b *testing.B) {
		_, _, pem := e.pki.Client("carol")
		br := test.StartBaresip(b, test.BaresipKamailio(e.k, "carol"), test.BaresipCertificate(pem),
			test.BaresipMediaEnc("srtp-mand"))
		br.WaitRegistered(b, 10*time.Second)
		settle(b)
		reportMemory(b, br.PID())
	})
}

// reportMemory reports a process's RSS and its two halves: anonymous
// memory (its own heap, stacks, data) and file-backed pages (its binary and
// shared libraries, mapped from the page cache: baresip's libssl and libc
// are shared with other processes, hardphone's static binary is not).
func reportMemory(b *testing.B, pid int) {
	b.ReportMetric(float64(statusKiB(b, pid, "VmRSS")), "rss_KiB")
	b.ReportMetric(float64(statusKiB(b, pid, "RssAnon")), "anon_KiB")
	b.ReportMetric(float64(statusKiB(b, pid, "RssFile")), "file_KiB")
}

// settle lets start-up allocations be collected before RSS is read: idle
// means registered and past start-up.
func settle(b *testing.B) {
	for i := 0; i < b.N; i++ {
		time.Sleep(2 * time.Second)
	}
}

func statusKiB(b *testing.B, pid int, field string) int {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(s), "\n") {
		if strings.HasPrefix(l, field+":") {
			n, err := strconv.Atoi(strings.Fields(l)[1])
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatalf("no %s for pid %d", field, pid)
	return 0
}
