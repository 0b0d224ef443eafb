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
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/hardphone/hardphone/agent/sip"
	"github.com/hardphone/hardphone/internal/resident"
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

	// From a warm agent; from one that released its code pages just
	// before (idle_code_release: what a call after a quiet spell costs);
	// and from one whose code was also dropped from the page cache (the
	// first release after start: the call's code is read back from disk).
	for _, run := range []struct {
		name    string
		release bool
		drop    bool
	}{{"hardphone_to_baresip", false, false}, {"hardphone_to_baresip_after_release", true, false}, {"hardphone_to_baresip_after_first_release", true, true}} {
		b.Run(run.name, func(b *testing.B) {
			p := e.startPhone(b, phoneConf{user: "alice"}, nil)
			p.waitRegistered(b)
			var total time.Duration
			for i := 0; i < b.N; i++ {
				if run.release {
					// This test binary holds the agent: the pages its
					// code runs from are released as the agent would.
					if _, err := resident.ReleaseCode(run.drop); err != nil {
						b.Fatal(err)
					}
				}
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
	}
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
// `hardphone run` beside a registered, idle baresip: each sampled every
// second over the same window (6 s a round: a minute at -benchtime 10x),
// mean and peak. The agent releases its code pages once idle
// (idle_code_release, 10 s), so its window starts after the first release,
// and its RFC 5626 keepalive runs every 15 s (90 s by default) so the
// window holds the code faulted back in by several.
func BenchmarkIdleRSS(b *testing.B) {
	e := newEnv(b)
	b.Run("hardphone_run", func(b *testing.B) {
		cfg := e.writeConfig(b, phoneConf{user: "alice", extra: "keepalive = \"15s\"\n"})
		// Releasing code pages drops the binary's pages from the page
		// cache; read it back so every run starts warm, as baresip's
		// shared libraries always are.
		if _, err := os.ReadFile(hardphoneBinary(b)); err != nil {
			b.Fatal(err)
		}
		p := startAgentProcess(b, "--config", cfg)
		pid := p.cmd.Process.Pid
		e.k.WaitRegistered(b, "alice", 10*time.Second)
		// Just registered: start-up's pages still mapped.
		b.ReportMetric(float64(statusKiB(b, pid, "VmRSS")), "start_rss_KiB")
		waitRelease(b, pid)
		sampleMemory(b, pid, time.Duration(b.N)*6*time.Second)
		// The status after the window (asking runs code the window would
		// have counted).
		st := agentStatus(b, cfg)
		c := st.R.Code
		if c.Count < 1 {
			b.Fatalf("code pages dropped but the status reports no release: %+v", c)
		}
		b.ReportMetric(float64(c.Count), "releases")
		b.ReportMetric(float64(c.BeforeKiB), "released_from_KiB")
		b.ReportMetric(float64(c.AfterKiB), "released_to_KiB")
		// Where the Go side of it goes, from the agent's own runtime/metrics.
		b.ReportMetric(float64(st.R.HeapBytes/1024), "go_heap_KiB")
		b.ReportMetric(float64(st.R.StackBytes/1024), "go_stacks_KiB")
		b.ReportMetric(float64(st.R.MappedBytes/1024), "go_mapped_KiB")
		b.ReportMetric(float64(st.R.Goroutines), "goroutines")
		// The idle agent's garbage: heap allocated over 30 s, and the
		// collections that ran.
		time.Sleep(30 * time.Second)
		st2 := agentStatus(b, cfg)
		b.ReportMetric(float64(st2.R.AllocBytes-st.R.AllocBytes)/30, "idle_alloc_B/s")
		b.ReportMetric(float64(st2.R.GCCycles-st.R.GCCycles), "gc_in_30s")
		reportWorkingSet(b, pid)
	})
	b.Run("baresip", func(b *testing.B) {
		_, _, pem := e.pki.Client("carol")
		br := test.StartBaresip(b, test.BaresipKamailio(e.k, "carol"), test.BaresipCertificate(pem),
			test.BaresipMediaEnc("srtp-mand"))
		br.WaitRegistered(b, 10*time.Second)
		time.Sleep(2 * time.Second)
		sampleMemory(b, br.PID(), time.Duration(b.N)*6*time.Second)
		reportWorkingSet(b, br.PID())
	})
}

// idleStatus is what BenchmarkIdleRSS reads of `hardphone status --json`.
type idleStatus struct {
	R struct {
		Goroutines  int    `json:"goroutines"`
		HeapBytes   uint64 `json:"heap_bytes"`
		StackBytes  uint64 `json:"stack_bytes"`
		MappedBytes uint64 `json:"mapped_bytes"`
		AllocBytes  uint64 `json:"alloc_bytes"`
		GCCycles    uint64 `json:"gc_cycles"`
		Code        struct {
			Count     int `json:"count"`
			BeforeKiB int `json:"before_kib"`
			AfterKiB  int `json:"after_kib"`
		} `json:"code_release"`
	} `json:"runtime"`
}

func agentStatus(b *testing.B, cfg string) idleStatus {
	out, err := exec.Command(hardphoneBinary(b), "status", "--json", "--config", cfg).Output()
	if err != nil {
		b.Fatalf("hardphone status: %v", err)
	}
	var st idleStatus
	if err := json.Unmarshal(out, &st); err != nil {
		b.Fatalf("status: %v", err)
	}
	return st
}

// waitRelease waits for the agent's first release of its code pages, seen
// from outside (answering a status request would fault code in): its
// executable's read-only pages resident fall below a third of what they
// were at registration.
func waitRelease(b *testing.B, pid int) {
	text, ro, _ := binaryResident(b, pid)
	start := text + ro
	deadline := time.Now().Add(60 * time.Second)
	for {
		text, ro, _ := binaryResident(b, pid)
		if text+ro < start/3 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("the agent did not release its code pages in 60 s: %d KiB resident, %d at registration", text+ro, start)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sampleMemory reads the process's memory every second for the window and
// reports the mean (rss_KiB and its parts) and the peak of each.
func sampleMemory(b *testing.B, pid int, window time.Duration) {
	names := []string{"rss", "anon", "file", "pss", "exe_text", "exe_rodata", "exe_data"}
	var sum, peak [7]int
	n := 0
	for end := time.Now().Add(window); ; {
		text, ro, data := binaryResident(b, pid)
		v := [7]int{statusKiB(b, pid, "VmRSS"), statusKiB(b, pid, "RssAnon"), statusKiB(b, pid, "RssFile"), pssKiB(b, pid), text, ro, data}
		for i := range v {
			sum[i] += v[i]
			peak[i] = max(peak[i], v[i])
		}
		n++
		if time.Now().After(end) {
			break
		}
		time.Sleep(time.Second)
	}
	for i, name := range names {
		b.ReportMetric(float64(sum[i])/float64(n), name+"_KiB")
	}
	b.ReportMetric(float64(peak[0]), "rss_peak_KiB")
	b.ReportMetric(float64(peak[1]), "anon_peak_KiB")
	b.ReportMetric(float64(peak[2]), "file_peak_KiB")
}

// binaryResident sums the resident pages of the process's own executable
// (not its shared libraries) by mapping: code (r-x), read-only data (r--,
// Go's rodata and pclntab) and writable data (rw-, file-backed part only).
func binaryResident(b *testing.B, pid int) (text, rodata, data int) {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		b.Fatal(err)
	}
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		b.Fatal(err)
	}
	var cur *int
	for _, l := range strings.Split(string(s), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			// A mapping's header: "start-end perms offset dev inode [path]".
			cur = nil
			if len(f) < 6 || f[5] != exe {
				continue
			}
			switch f[1] {
			case "r-xp":
				cur = &text
			case "r--p":
				cur = &rodata
			case "rw-p":
				cur = &data
			}
		case len(f) >= 2 && f[0] == "Rss:" && cur != nil:
			n, err := strconv.Atoi(f[1])
			if err != nil {
				b.Fatal(err)
			}
			*cur += n
		}
	}
	return text, rodata, data
}

// reportWorkingSet asks the kernel to reclaim every page of the idle
// process it can (process_madvise MADV_PAGEOUT: clean file pages are
// dropped, a page another process also maps is kept, anonymous memory stays
// without swap), lets it idle again, and reports what it faulted back in:
// what an idle phone needs resident when memory is short. The plain RSS
// above also holds every page the kernel mapped around a fault (64 KiB
// fault-around) while the process started.
func reportWorkingSet(b *testing.B, pid int) {
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		b.Fatal(err)
	}
	// struct iovec {void *base; size_t len}: addresses in the other
	// process, so plain integers here.
	type iovec struct{ base, len uintptr }
	var iov []iovec
	for _, l := range strings.Split(string(maps), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 || (len(f) >= 6 && strings.HasPrefix(f[5], "[v")) {
			continue // [vvar], [vdso], [vsyscall] cannot be paged out
		}
		var lo, hi uintptr
		if _, err := fmt.Sscanf(f[0], "%x-%x", &lo, &hi); err != nil {
			b.Fatalf("maps line %q: %v", l, err)
		}
		iov = append(iov, iovec{lo, hi - lo})
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		b.Fatalf("pidfd_open: %v", err)
	}
	defer unix.Close(pidfd)
	for len(iov) > 0 {
		n := min(len(iov), 512)
		if _, _, e := unix.Syscall6(unix.SYS_PROCESS_MADVISE, uintptr(pidfd), uintptr(unsafe.Pointer(&iov[0])), uintptr(n), unix.MADV_PAGEOUT, 0, 0); e != 0 {
			b.Fatalf("process_madvise: %v", e)
		}
		iov = iov[n:]
	}
	settle(b)
	b.ReportMetric(float64(statusKiB(b, pid, "VmRSS")), "ws_rss_KiB")
	b.ReportMetric(float64(statusKiB(b, pid, "RssFile")), "ws_file_KiB")
	b.ReportMetric(float64(statusKiB(b, pid, "RssAnon")), "ws_anon_KiB")
	b.ReportMetric(float64(pssKiB(b, pid)), "ws_pss_KiB")
}

// pssKiB is the process's proportional set size: a page mapped by n
// processes counts 1/n (baresip's libc and libssl are shared, hardphone's
// static binary is not).
func pssKiB(b *testing.B, pid int) int {
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(s), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "Pss:" {
			n, err := strconv.Atoi(f[1])
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatalf("no Pss for pid %d", pid)
	return 0
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
