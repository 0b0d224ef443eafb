package provision

import (
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hardphone/hardphone/crypto/policy"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/store"
	"github.com/hardphone/hardphone/test"
)

// benchPhones is how many swtpm phones enrol at once.
const benchPhones = 8

// BenchmarkEnrol measures attested enrolment against the hpfleet binary on
// bbolt and PostgreSQL: benchPhones phones, each its own swtpm, enrolling
// concurrently (the first round of a phone creates its device, later
// rounds re-enrol the same key: the same checks, MakeCredential and a
// certificate). Reported: enrolments per second, latency, hpfleet's CPU
// per enrolment and RSS. The reference is nginx serving files of the two
// answers' sizes over TLS to the same number of clients, two requests per
// enrolment, as the phone makes. The phones' TPM work (swtpm) shares the
// cores with the server.
func BenchmarkEnrol(b *testing.B) {
	bin := test.BuildHPFleet(b)
	fl := newBinFleet(b)
	nginx := test.StartNginx(b, test.NginxTLS{CertFile: filepath.Join(fl.dir, ca.ServerCertFile), KeyFile: filepath.Join(fl.dir, ca.ServerKeyFile),
		Files: map[string][]byte{"/start.json": make([]byte, 700), "/finish.json": make([]byte, 1500)}})
	for _, backend := range []string{"bbolt", "postgres"} {
		b.Run(backend+"/ours", func(b *testing.B) {
			var args []string
			if backend == "bbolt" {
				args = []string{"--data", filepath.Join(b.TempDir(), "data")}
			} else {
				pg := test.StartPostgres(b, test.PostgresDurable())
				dsn := filepath.Join(b.TempDir(), "dsn")
				writeFile(b, dsn, pg.DSN)
				args = []string{"--postgres", "@" + dsn}
			}
			h := fl.start(b, bin, args...)
			admin := fl.admin(b, h)
			// Each phone may hold store.MaxLiveCertsPerDevice certificates.
			n := max(benchPhones, (b.N+store.MaxLiveCertsPerDevice-1)/store.MaxLiveCertsPerDevice)
			phones := make([]*phone, n)
			var entries []api.AllowEntry
			for i := range phones {
				phones[i] = newPhone(b, fl.mfg)
				entries = append(entries, phones[i].allowEntry(i))
			}
			if _, err := admin.Import(ctx, entries); err != nil {
				b.Fatalf("Import: %v", err)
			}
			clients := make([]*Client, n)
			for i, p := range phones {
				c, err := New(Config{Credentials: p.creds, ServerURL: h.URL, ServerName: "fleet.test", ServerRoots: fl.serverRoots, DeviceCA: fl.deviceCA})
				if err != nil {
					b.Fatalf("New: %v", err)
				}
				clients[i] = c
			}
			cpu0 := h.CPU()
			lat := runConcurrent(b, benchPhones, func(i int) error {
				// Worker w enrols phones w, w+benchPhones, ...
				_, err := clients[i%n].EnrolOnce(ctx)
				return err
			})
			reportB(b, lat, float64((h.CPU()-cpu0).Microseconds())/1000/float64(b.N), h.RSS())
		})
	}
	b.Run("reference", func(b *testing.B) {
		tc, err := policy.ClientConfig(policy.ClientTLS{Roots: fl.serverRoots, ServerName: "fleet.test"})
		if err != nil {
			b.Fatalf("ClientConfig: %v", err)
		}
		hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}}
		get := func(path string) error {
			resp, err := hc.Get(nginx.URL() + path)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			_, err = io.Copy(io.Discard, resp.Body)
			return err
		}
		cpu0 := nginx.CPU()
		lat := runConcurrent(b, benchPhones, func(int) error {
			if err := get("/start.json"); err != nil {
				return err
			}
			return get("/finish.json")
		})
		reportB(b, lat, float64((nginx.CPU()-cpu0).Microseconds())/1000/float64(b.N), nginx.RSS())
	})
}

// runConcurrent runs b.N operations on workers goroutines (operation i on
// worker i mod workers, in order) and returns their latencies.
func runConcurrent(b *testing.B, workers int, op func(i int) error) []time.Duration {
	var mu sync.Mutex
	var lat []time.Duration
	var failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < b.N; i += workers {
				t0 := time.Now()
				if err := op(i); err != nil {
					if failed.Add(1) == 1 {
						b.Errorf("operation %d: %v", i, err)
					}
					continue
				}
				d := time.Since(t0)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
	return lat
}

func reportB(b *testing.B, lat []time.Duration, cpuMS float64, rss int64) {
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.5), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
	b.ReportMetric(cpuMS, "server_cpu_ms/op")
	b.ReportMetric(float64(rss)/(1<<20), "server_RSS_MB")
}
