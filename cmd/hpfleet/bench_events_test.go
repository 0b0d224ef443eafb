package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/agent/events"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/client"
	"github.com/hardphone/hardphone/fleet/store/boltstore"
	"github.com/hardphone/hardphone/fleet/store/pgstore"
	"github.com/hardphone/hardphone/test"
)

const (
	// eventDevices is how many phones export at once.
	eventDevices = 200
	// eventsPerBatch: a batch is 64 events and the checkpoint that signs
	// them (the journal's default checkpoint interval).
	eventsPerBatch = 64
)

// journalFeed is one phone's exported journal, cut into batches before
// the clock starts: the benchmark measures the fleet, not the phone.
type journalFeed struct {
	mu      sync.Mutex
	batches [][][]byte
	bodies  [][]byte // the same batches as JSON, for the reference
}

// makeFeeds gives each device per batches of its own journal, signed by
// its key.
func makeFeeds(b *testing.B, devs []*benchDevice, per int) []*journalFeed {
	b.Helper()
	feeds := make([]*journalFeed, len(devs))
	kinds := []events.Kind{events.KindForeignSource, events.KindScanner, events.KindSIPAuthFailure, events.KindDialRefused, events.KindForeignDialog}
	for i, d := range devs {
		db, err := bolt.Open(filepath.Join(b.TempDir(), "state.db"), 0o600, &bolt.Options{NoSync: true})
		if err != nil {
			b.Fatalf("bolt.Open: %v", err)
		}
		j, err := events.Open(db, d.key, events.WithCheckpointEvery(1<<20), events.WithMaxBytes(64<<20))
		if err != nil {
			b.Fatalf("events.Open: %v", err)
		}
		f := &journalFeed{}
		next := uint64(1)
		for k := 0; k < per; k++ {
			evs := make([]events.Event, eventsPerBatch)
			for e := range evs {
				n := k*eventsPerBatch + e
				evs[e] = events.Event{Kind: kinds[n%len(kinds)], Account: "line1",
					Peer:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(n % 251), byte(i)}), 5060),
					Detail: events.Detail{"user_agent": fmt.Sprintf("friendly-scanner %d", n), "method": "OPTIONS"}}
			}
			if _, err := j.Append(evs...); err != nil {
				b.Fatalf("Append: %v", err)
			}
			if _, err := j.Checkpoint(); err != nil {
				b.Fatalf("Checkpoint: %v", err)
			}
			recs, err := j.List(next, events.MaxList)
			if err != nil {
				b.Fatalf("List: %v", err)
			}
			var raws [][]byte
			for r := range recs {
				raws = append(raws, recs[r].Raw())
			}
			next = recs[len(recs)-1].Seq + 1
			body, err := json.Marshal(api.EventBatch{Records: raws})
			if err != nil {
				b.Fatalf("Marshal: %v", err)
			}
			f.batches, f.bodies = append(f.batches, raws), append(f.bodies, body)
		}
		db.Close()
		feeds[i] = f
	}
	return feeds
}

// inOrder runs b.N operations from saturators concurrent clients, the
// i-th on device i mod len(devs), holding the device's lock across it: a
// device's batches go one after the other, in order (its journal's runs
// must). It reports like saturate.
func inOrder(b *testing.B, devs []*benchDevice, srv measured, op func(*benchDevice) error) {
	var lat latencies
	var failed, next atomic.Int64
	cpu0 := srv.CPU()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range saturators {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				d := devs[i%len(devs)]
				t0 := time.Now()
				d.mu.Lock()
				err := op(d)
				d.mu.Unlock()
				if err != nil {
					if failed.Add(1) == 1 {
						b.Errorf("request failed: %v", err)
					}
					continue
				}
				lat.add(time.Since(t0))
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	report(b, &lat, float64(b.N)/el.Seconds(), srv, cpu0, b.N)
}

// pop takes the device's next batch.
func (f *journalFeed) pop() ([][]byte, []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.batches) == 0 {
		return nil, nil
	}
	raws, body := f.batches[0], f.bodies[0]
	f.batches, f.bodies = f.batches[1:], f.bodies[1:]
	return raws, body
}

// BenchmarkEventIngest measures hpfleet taking phones' event journals:
// eventDevices simulated phones (software identity keys, certificates
// from the device CA) each POST runs of their journal (64 events and the
// checkpoint that signs them, about 13 KiB of JSON) over a new mutual-TLS
// connection; the server proves each run, stores it with an observation
// per event, and its anomaly detector consumes the observations. ours
// reports the events per second accepted, and the events per second
// through the detector (until it has consumed the last one); the
// reference is nginx taking POSTs of the same bodies over the same TLS
// (client certificates verified), reading them whole and answering 204.
// Clients, server and database share the machine's cores.
func BenchmarkEventIngest(b *testing.B) {
	pki := filepath.Join(b.TempDir(), "pki")
	if err := ca.Init(pki, ca.InitOptions{Organization: "Bench", ServerNames: []string{"fleet.test"}, AdminName: "admin"}); err != nil {
		b.Fatalf("ca.Init: %v", err)
	}
	dca, err := ca.Load(filepath.Join(pki, ca.DeviceCACertFile), filepath.Join(pki, ca.DeviceCAKeyFile))
	if err != nil {
		b.Fatalf("ca.Load: %v", err)
	}
	roots, err := ca.LoadPool(filepath.Join(pki, ca.ServerCACertFile))
	if err != nil {
		b.Fatalf("LoadPool: %v", err)
	}
	adminCert, err := tls.LoadX509KeyPair(filepath.Join(pki, ca.AdminCertFile), filepath.Join(pki, ca.AdminKeyFile))
	if err != nil {
		b.Fatalf("admin certificate: %v", err)
	}
	mfg := test.NewManufacturerCA(b, filepath.Join(b.TempDir(), "mfg"))
	bin := test.BuildHPFleet(b)
	serverCA := filepath.Join(pki, ca.ServerCACertFile)
	common := []string{"--ca-dir", pki, "--manufacturer-ca", mfg.CertFile, "--log-level", "warn",
		"--event-batch-rate", "100000", "--event-batch-burst", "100000", "--event-record-rate", "10000000",
		"--anomaly-poll-interval", "20ms", "--anomaly-state-interval", "10s"}
	nginx := test.StartNginx(b, test.NginxTLS{CertFile: filepath.Join(pki, ca.ServerCertFile), KeyFile: filepath.Join(pki, ca.ServerKeyFile),
		ClientCAFile: filepath.Join(pki, ca.DeviceCACertFile), PostSink: "/events", Files: map[string][]byte{"/health": []byte("ok\n")}})

	run := func(b *testing.B, devs []*benchDevice, h *test.HPFleet) {
		connect(b, devs, h.URL, nginx.URL(), roots)
		admin, err := client.New(client.Config{URL: h.URL, ServerName: "fleet.test", Roots: roots, Certificate: &adminCert})
		if err != nil {
			b.Fatalf("client.New: %v", err)
		}
		observed := func() uint64 {
			m, err := admin.Metrics(bctx)
			if err != nil {
				b.Fatalf("Metrics: %v", err)
			}
			c := m.Counters
			return c["anomaly_observations"] + c["anomaly_observations_stale"] + c["anomaly_observations_future"] + c["anomaly_observations_invalid"]
		}
		b.Run("ours", func(b *testing.B) {
			feeds := makeFeeds(b, devs, (b.N+len(devs)-1)/len(devs))
			byDev := map[*benchDevice]*journalFeed{}
			for i, d := range devs {
				byDev[d] = feeds[i]
			}
			base := observed()
			start := time.Now()
			var accepted, sent atomic.Int64
			inOrder(b, devs, h, func(d *benchDevice) error {
				raws, _ := byDev[d].pop()
				if raws == nil {
					return fmt.Errorf("device %s has no batch left", d.id)
				}
				defer d.hpfleet.CloseIdleConnections()
				sent.Add(int64(len(raws)))
				ack, err := d.hpfleet.PushEvents(bctx, api.EventBatch{Records: raws})
				if err != nil {
					return err
				}
				accepted.Add(int64(ack.Stored))
				return nil
			})
			stored := time.Since(start)
			want := base + uint64(b.N*eventsPerBatch)
			for deadline := time.Now().Add(5 * time.Minute); observed() < want; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					b.Fatalf("the detector consumed %d of %d observations in 5 minutes", observed()-base, want-base)
				}
			}
			detected := time.Since(start)
			if got, want := accepted.Load(), sent.Load(); got != want {
				b.Fatalf("%d records stored, %d sent", got, want)
			}
			b.ReportMetric(float64(b.N*eventsPerBatch)/stored.Seconds(), "events/s")
			b.ReportMetric(float64(b.N*eventsPerBatch)/detected.Seconds(), "detected_events/s")
		})
		b.Run("reference", func(b *testing.B) {
			feeds := makeFeeds(b, devs[:1], 1)
			_, body := feeds[0].pop()
			start := time.Now()
			inOrder(b, devs, nginx, func(d *benchDevice) error {
				resp, err := d.nginx.Post(nginx.URL()+"/events", api.ContentType, bytes.NewReader(body))
				if err != nil {
					return err
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent {
					return fmt.Errorf("nginx: %s", resp.Status)
				}
				return nil
			})
			b.ReportMetric(float64(b.N*eventsPerBatch)/time.Since(start).Seconds(), "events/s")
		})
	}

	b.Run("bbolt", func(b *testing.B) {
		data := filepath.Join(b.TempDir(), "data")
		st, err := boltstore.Open(data)
		if err != nil {
			b.Fatalf("boltstore.Open: %v", err)
		}
		devs := makeDevices(b, st, dca, eventDevices)
		if err := st.Close(); err != nil {
			b.Fatalf("Close: %v", err)
		}
		h := test.StartHPFleet(b, bin, serverCA, "fleet.test", append([]string{"--data", data}, common...)...)
		run(b, devs, h)
	})
	b.Run("postgres", func(b *testing.B) {
		pg := test.StartPostgres(b, test.PostgresDurable())
		st, err := pgstore.Open(bctx, pg.DSN)
		if err != nil {
			b.Fatalf("pgstore.Open: %v", err)
		}
		devs := makeDevices(b, st, dca, eventDevices)
		st.Close()
		dsn := filepath.Join(b.TempDir(), "dsn")
		if err := writeFile(dsn, pg.DSN); err != nil {
			b.Fatalf("write DSN: %v", err)
		}
		h := test.StartHPFleet(b, bin, serverCA, "fleet.test", append([]string{"--postgres", "@" + dsn}, common...)...)
		run(b, devs, h)
	})
}
