package integration

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/control"
)

// BenchmarkFleetConfig measures the time from the director publishing a
// new configuration document for a phone to the phone running it (the
// agent rebuilt on the merged config: running_ms) and having proven it
// (its account registered again: good_ms), told at once by check-sync
// through Kamailio, and found by the phone's own poll (every check-in,
// 10 s here, jittered). Beside them, measured in the same run: the
// check-sync NOTIFY's own round trip through Kamailio (the floor of the
// first), and the bytes an unchanged poll costs (director over mutual TLS
// and image repository: a 304 for each timestamp and a 404 for the next
// root) beside a plain GET of the same timestamp.
func BenchmarkFleetConfig(b *testing.B) {
	u := newUptaneEnv(b)
	p := u.start(b, u.uptanePhone(b, "alice", "HP1-000020", "", ""), "alice")
	version := uint64(0)
	publish := func() uint64 {
		version++
		// Alternate what the document says, so every version is a change.
		u.assign(b, p.id, version, docExpires(fmt.Sprintf("%ds", 120+version%2*30)), nil)
		return version
	}
	running := func(v uint64) func(*control.Status) bool {
		return func(st *control.Status) bool { return st.Provisioning.ConfigVersion == v }
	}
	good := func(v uint64) func(*control.Status) bool {
		return func(st *control.Status) bool {
			return st.Provisioning.GoodVersion == v && st.Provisioning.ConfigVersion == v && registered(st)
		}
	}
	b.Run("check_sync", func(b *testing.B) {
		var run, prove time.Duration
		for i := 0; i < b.N; i++ {
			v := publish()
			start := time.Now()
			u.checkSync(b, "alice")
			p.waitStatus(b, 30*time.Second, "running", running(v))
			run += time.Since(start)
			p.waitStatus(b, 30*time.Second, "good", good(v))
			prove += time.Since(start)
		}
		b.ReportMetric(float64(run.Milliseconds())/float64(b.N), "running_ms")
		b.ReportMetric(float64(prove.Milliseconds())/float64(b.N), "good_ms")
	})
	b.Run("poll", func(b *testing.B) {
		var run, prove time.Duration
		for i := 0; i < b.N; i++ {
			v := publish()
			start := time.Now()
			p.waitStatus(b, 60*time.Second, "running", running(v))
			run += time.Since(start)
			p.waitStatus(b, 30*time.Second, "good", good(v))
			prove += time.Since(start)
		}
		b.ReportMetric(float64(run.Milliseconds())/float64(b.N), "running_ms")
		b.ReportMetric(float64(prove.Milliseconds())/float64(b.N), "good_ms")
	})
	b.Run("reference_notify_rtt", func(b *testing.B) {
		var total time.Duration
		for i := 0; i < b.N; i++ {
			start := time.Now()
			u.checkSync(b, "alice")
			total += time.Since(start)
			// Let the refresh it starts pass before the next NOTIFY (the
			// phone coalesces NOTIFYs within 2 s).
			p.waitStatus(b, 10*time.Second, "refreshed", func(st *control.Status) bool { return st.Provisioning.LastRefresh.After(start) })
		}
		b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "notify_ms")
	})
	b.Run("unchanged_poll_bytes", func(b *testing.B) {
		var dir, img int64
		for i := 0; i < b.N; i++ {
			dOff, iOff := fileSize(u.dirNginx.AccessLog), fileSize(u.imgNginx.AccessLog)
			start := time.Now()
			u.checkSync(b, "alice")
			p.waitStatus(b, 10*time.Second, "refreshed", func(st *control.Status) bool { return st.Provisioning.LastRefresh.After(start) })
			dir += logBytes(b, u.dirNginx.AccessLog, dOff)
			img += logBytes(b, u.imgNginx.AccessLog, iOff)
		}
		b.ReportMetric(float64(dir)/float64(b.N), "director_B/poll")
		b.ReportMetric(float64(img)/float64(b.N), "image_B/poll")
		// Reference: the same image timestamp fetched whole.
		off := fileSize(u.imgNginx.AccessLog)
		resp, err := http.Get(u.imgNginx.URL + "/image/public/timestamp.json")
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		var full int64
		waitFor(b, 5*time.Second, func() bool { full = logBytes(b, u.imgNginx.AccessLog, off); return full > 0 })
		b.ReportMetric(float64(full), "reference_full_timestamp_B")
	})
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logBytes sums the bytes_sent field of the access log lines written
// after offset ("METHOD URI STATUS BYTES ...").
func logBytes(t testing.TB, path string, offset int64) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if offset > int64(len(b)) {
		offset = 0
	}
	var sum int64
	for _, line := range strings.Split(string(b[offset:]), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		n, err := strconv.ParseInt(f[3], 10, 64)
		if err == nil {
			sum += n
		}
	}
	return sum
}
