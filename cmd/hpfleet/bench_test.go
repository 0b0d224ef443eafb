package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hardphone/hardphone/crypto/policy"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/client"
	"github.com/hardphone/hardphone/fleet/store"
	"github.com/hardphone/hardphone/fleet/store/boltstore"
	"github.com/hardphone/hardphone/fleet/store/pgstore"
	"github.com/hardphone/hardphone/test"
)

// The fleet's load: 100,000 phones polling every 15 minutes.
const (
	benchDevices = 2000
	goalRate     = 100000.0 / (15 * 60) // check-ins per second
	saturators   = 32                   // concurrent clients when saturating
)

var bctx = context.Background()

// benchDevice is a simulated phone: a software key with a device
// certificate made directly through fleet/ca and the store, the server's
// records exactly as after an enrolment. Its client opens a new TLS
// connection (a full handshake with its certificate) for every request,
// as a phone polling every 15 minutes does.
type benchDevice struct {
	id, serial string
	key        *ecdsa.PrivateKey
	cert       *tls.Certificate
	hpfleet    *client.Client
	nginx      *http.Client
	mu         sync.Mutex // one request of a device at a time
}

// makeDevices allow-lists n devices and enrols them in st directly.
func makeDevices(b *testing.B, st store.Store, dca *ca.CA, n int) []*benchDevice {
	b.Helper()
	now := time.Now()
	devs := make([]*benchDevice, n)
	var entries []store.AllowEntry
	for i := range devs {
		entries = append(entries, store.AllowEntry{EK: sha256.Sum256(fmt.Appendf(nil, "bench-ek-%d", i)),
			Serial: fmt.Sprintf("HP1-%06d", i), Model: "hp-desk-1", Group: "floor-1", ImportedAt: now})
	}
	if _, err := st.ImportAllowList(bctx, entries); err != nil {
		b.Fatalf("ImportAllowList: %v", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	next := atomic.Int64{}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				d, err := makeDevice(st, dca, entries[i], now)
				if err != nil {
					errs <- err
					return
				}
				devs[i] = d
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatalf("make device: %v", err)
	}
	return devs
}

func makeDevice(st store.Store, dca *ca.CA, e store.AllowEntry, now time.Time) (*benchDevice, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	d := store.Device{ID: store.NewDeviceID(), Serial: e.Serial, Model: e.Model, Group: e.Group, EK: e.EK,
		IdentityPublicKey: pub, State: store.StateEnrolled, EnrolledAt: now}
	serial, err := st.NextCertSerial(bctx)
	if err != nil {
		return nil, err
	}
	nb, na := now.Add(-ca.Backdate), now.Add(ca.DefaultDeviceLifetime)
	der, err := dca.IssueDevice(ca.DeviceRequest{Serial: serial.BigInt(), PublicKey: &key.PublicKey, DeviceID: string(d.ID),
		DeviceSerial: d.Serial, Group: d.Group, NotBefore: nb, NotAfter: na})
	if err != nil {
		return nil, err
	}
	if err := st.CreateDevice(bctx, d, store.Cert{Serial: serial, DeviceID: d.ID, NotBefore: nb, NotAfter: na, DER: der}); err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &benchDevice{id: string(d.ID), serial: d.Serial, key: key,
		cert: &tls.Certificate{Certificate: [][]byte{der, dca.Certificate().Raw}, PrivateKey: key, Leaf: leaf}}, nil
}

// connect gives each device a client of the hpfleet at url and of nginx
// at nginxURL.
func connect(b *testing.B, devs []*benchDevice, url, nginxURL string, roots *x509.CertPool) {
	b.Helper()
	for _, d := range devs {
		var err error
		if d.hpfleet, err = client.New(client.Config{URL: url, ServerName: "fleet.test", Roots: roots, Certificate: d.cert}); err != nil {
			b.Fatalf("client.New: %v", err)
		}
		tc, err := policy.ClientConfig(policy.ClientTLS{Roots: roots, ServerName: "fleet.test", Certificate: d.cert})
		if err != nil {
			b.Fatalf("ClientConfig: %v", err)
		}
		d.nginx = &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true, ForceAttemptHTTP2: true}}
	}
}

func (d *benchDevice) report() api.Report {
	return api.Report{DeviceID: d.id, SentAt: time.Now(), Model: "hp-desk-1", Serial: d.serial,
		Firmware: api.Firmware{Version: "1.0.0", SecurityVersion: 5},
		Slots: []api.Slot{{Name: "A", Version: "1.0.0", SecurityVersion: 5, Booted: true, Good: true},
			{Name: "B", Version: "0.9.0", SecurityVersion: 4, Good: true}},
		Boot: api.Boot{Slot: "A", AttemptsLeft: 3, MarkedGood: true}, CertNotAfter: d.cert.Leaf.NotAfter,
		Lockdown: api.Lockdown{OK: true}, Counters: map[string]uint64{"sip_auth_failures": 1, "tls_handshake_failures": 0},
		UptimeSeconds: 86400}
}

// checkIn is one check-in over a new connection.
func (d *benchDevice) checkIn() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer d.hpfleet.CloseIdleConnections()
	_, err := d.hpfleet.CheckIn(bctx, d.key, d.report())
	return err
}

func (d *benchDevice) renew() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer d.hpfleet.CloseIdleConnections()
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, d.key)
	if err != nil {
		return err
	}
	_, err = d.hpfleet.Renew(bctx, csr)
	return err
}

// fetch GETs path from nginx over a new connection.
func (d *benchDevice) fetch(url string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	resp, err := d.nginx.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("nginx: %s", resp.Status)
	}
	return nil
}

// measured is what a load run measures: hpfleet or nginx.
type measured interface {
	RSS() int64
	CPU() time.Duration
}

// latencies collects request latencies.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) pct(p float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	s := slices.Clone(l.d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// saturate runs b.N operations from saturators concurrent clients, each
// on its own devices, and reports the rate, latency percentiles, the
// server's CPU per operation and its RSS.
func saturate(b *testing.B, devs []*benchDevice, srv measured, op func(*benchDevice) error) {
	var lat latencies
	var failed atomic.Int64
	var next atomic.Int64
	cpu0 := srv.CPU()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < saturators; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				// Worker w takes devices w, w+saturators, ...: a device is
				// never used by two workers at once.
				d := devs[(w+saturators*(i/saturators))%len(devs)]
				t0 := time.Now()
				if err := op(d); err != nil {
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

// atRate runs b.N operations at a fixed rate (open loop: a slow answer
// does not delay the next request), latency measured from each request's
// scheduled start, as phones polling on their own clocks see it.
func atRate(b *testing.B, devs []*benchDevice, srv measured, rate float64, op func(*benchDevice) error) {
	var lat latencies
	var failed atomic.Int64
	cpu0 := srv.CPU()
	interval := time.Duration(float64(time.Second) / rate)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < b.N; i++ {
		at := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(at))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := op(devs[i%len(devs)]); err != nil {
				if failed.Add(1) == 1 {
					b.Errorf("request failed: %v", err)
				}
				return
			}
			lat.add(time.Since(at))
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	report(b, &lat, float64(b.N)/el.Seconds(), srv, cpu0, b.N)
}

func report(b *testing.B, lat *latencies, rate float64, srv measured, cpu0 time.Duration, n int) {
	// The machine is shared: the load says how much of it the run had.
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		b.Logf("load average after the run: %s", strings.Fields(string(la))[0])
	}
	b.ReportMetric(rate, "req/s")
	b.ReportMetric(float64(lat.pct(0.50).Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat.pct(0.99).Microseconds())/1000, "p99_ms")
	b.ReportMetric(float64((srv.CPU()-cpu0).Microseconds())/1000/float64(n), "server_cpu_ms/op")
	b.ReportMetric(float64(srv.RSS())/(1<<20), "server_RSS_MB")
}

// BenchmarkCheckIn measures hpfleet serving check-ins from benchDevices
// simulated phones (software keys, certificates from the device CA), each
// over a new mutual-TLS connection with a signed report, on bbolt and on
// PostgreSQL (durable), saturated and at the goal's rate (100,000 phones
// every 15 minutes = 111/s); renewals saturated; and beside them nginx
// serving a file of the answer's size over TLS (client certificates
// verified) to the same clients, the reference. Clients, server and
// database share the machine's cores.
func BenchmarkCheckIn(b *testing.B) {
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
	mfg := test.NewManufacturerCA(b, filepath.Join(b.TempDir(), "mfg"))
	bin := test.BuildHPFleet(b)
	serverCA := filepath.Join(pki, ca.ServerCACertFile)
	common := []string{"--ca-dir", pki, "--manufacturer-ca", mfg.CertFile, "--log-level", "warn"}

	// The reference: nginx, the same certificate, client certificates
	// verified against the device CA, files of the answers' sizes.
	sample := &api.CheckInResponse{Action: api.ActionNone, NextCheckInSeconds: 900}
	checkinBody := fmt.Appendf(nil, `{"action":%q,"next_checkin_s":%d}`+"\n", sample.Action, sample.NextCheckInSeconds)
	renewBody := make([]byte, 1500)
	nginx := test.StartNginx(b, test.NginxTLS{CertFile: filepath.Join(pki, ca.ServerCertFile), KeyFile: filepath.Join(pki, ca.ServerKeyFile),
		ClientCAFile: filepath.Join(pki, ca.DeviceCACertFile), Files: map[string][]byte{"/checkin.json": checkinBody, "/renew.json": renewBody}})

	run := func(b *testing.B, devs []*benchDevice, h *test.HPFleet) {
		connect(b, devs, h.URL, nginx.URL(), roots)
		b.Run("saturated/ours", func(b *testing.B) {
			b.ReportAllocs()
			saturate(b, devs, h, (*benchDevice).checkIn)
		})
		b.Run("saturated/reference", func(b *testing.B) {
			saturate(b, devs, nginx, func(d *benchDevice) error { return d.fetch(nginx.URL() + "/checkin.json") })
		})
		b.Run("goal_111_per_s/ours", func(b *testing.B) {
			atRate(b, devs, h, goalRate, (*benchDevice).checkIn)
		})
		b.Run("goal_111_per_s/reference", func(b *testing.B) {
			atRate(b, devs, nginx, goalRate, func(d *benchDevice) error { return d.fetch(nginx.URL() + "/checkin.json") })
		})
		b.Run("renew_saturated/ours", func(b *testing.B) {
			// Each device may hold store.MaxLiveCertsPerDevice
			// certificates: at most that many renewals per device.
			if b.N > len(devs)*(store.MaxLiveCertsPerDevice-1) {
				b.Skipf("b.N %d is more renewals than %d devices may make", b.N, len(devs))
			}
			saturate(b, devs, h, (*benchDevice).renew)
		})
		b.Run("renew_saturated/reference", func(b *testing.B) {
			saturate(b, devs, nginx, func(d *benchDevice) error { return d.fetch(nginx.URL() + "/renew.json") })
		})
	}

	b.Run("bbolt", func(b *testing.B) {
		data := filepath.Join(b.TempDir(), "data")
		st, err := boltstore.Open(data)
		if err != nil {
			b.Fatalf("boltstore.Open: %v", err)
		}
		devs := makeDevices(b, st, dca, benchDevices)
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
		devs := makeDevices(b, st, dca, benchDevices)
		st.Close()
		dsn := filepath.Join(b.TempDir(), "dsn")
		if err := writeFile(dsn, pg.DSN); err != nil {
			b.Fatalf("write DSN: %v", err)
		}
		h := test.StartHPFleet(b, bin, serverCA, "fleet.test", append([]string{"--postgres", "@" + dsn}, common...)...)
		run(b, devs, h)
	})
}
