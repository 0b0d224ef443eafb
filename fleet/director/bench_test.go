package director_test

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
	"net"
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
	"github.com/hardphone/hardphone/fleet/director"
	"github.com/hardphone/hardphone/fleet/store"
	"github.com/hardphone/hardphone/fleet/store/boltstore"
	"github.com/hardphone/hardphone/test"
)

const (
	benchPhones  = 200
	benchWorkers = 16
)

// benchPhone is a simulated phone with a software key and a certificate
// from the device CA, recorded in the store as after an enrolment.
type benchPhone struct {
	id     string
	serial string
	key    *ecdsa.PrivateKey
	cert   *tls.Certificate
	fc     *client.Client
	http   *http.Client // a new connection per request
	etag   string       // of its director timestamp.json
	mu     sync.Mutex
}

// countConn counts the bytes that cross a connection.
type countConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// counters are the bytes every request of a run moved: on the wire (TLS
// records, handshake included) and of HTTP (the plaintext both ways).
type counters struct{ wire, plain atomic.Int64 }

// httpClient makes a client that opens a new mutual-TLS connection for
// every request, as a phone polling every few minutes does, counting its
// bytes.
func httpClient(cfg *tls.Config, c *counters) *http.Client {
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableKeepAlives: true,
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			raw, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(&countConn{Conn: raw, n: &c.wire}, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, err
			}
			return &countConn{Conn: tc, n: &c.plain}, nil
		}}}
}

func newBenchPhone(b *testing.B, st store.Store, dca *ca.CA, i int, now time.Time) *benchPhone {
	b.Helper()
	e := store.AllowEntry{EK: sha256.Sum256(fmt.Appendf(nil, "bench-ek-%d", i)), Serial: fmt.Sprintf("HP1-%06d", i),
		Model: "hp-desk-1", Group: group, ImportedAt: now}
	if _, err := st.ImportAllowList(ctx, []store.AllowEntry{e}); err != nil {
		b.Fatalf("ImportAllowList: %v", err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	d := store.Device{ID: store.NewDeviceID(), Serial: e.Serial, Model: e.Model, Group: e.Group, EK: e.EK,
		IdentityPublicKey: pub, State: store.StateEnrolled, EnrolledAt: now}
	serial, err := st.NextCertSerial(ctx)
	if err != nil {
		b.Fatalf("NextCertSerial: %v", err)
	}
	nb, na := now.Add(-ca.Backdate), now.Add(ca.DefaultDeviceLifetime)
	der, err := dca.IssueDevice(ca.DeviceRequest{Serial: serial.BigInt(), PublicKey: &key.PublicKey, DeviceID: string(d.ID),
		DeviceSerial: d.Serial, Group: d.Group, NotBefore: nb, NotAfter: na})
	if err != nil {
		b.Fatalf("IssueDevice: %v", err)
	}
	if err := st.CreateDevice(ctx, d, store.Cert{Serial: serial, DeviceID: d.ID, NotBefore: nb, NotAfter: na, DER: der}); err != nil {
		b.Fatalf("CreateDevice: %v", err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &benchPhone{id: string(d.ID), serial: d.Serial, key: key,
		cert: &tls.Certificate{Certificate: [][]byte{der, dca.Certificate().Raw}, PrivateKey: key, Leaf: leaf}}
}

type latencies struct {
	mu sync.Mutex
	d  []time.Duration
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

// measured is the server of a run (hpfleet or nginx).
type measured interface{ CPU() time.Duration }

// saturate runs b.N operations from benchWorkers clients, each phone used
// by one worker at a time, and reports rate, latency, server CPU per
// operation and, when c is given, bytes per operation.
func saturate(b *testing.B, phones []*benchPhone, srv measured, c *counters, op func(*benchPhone) error) {
	var lat latencies
	var next, failed atomic.Int64
	if c != nil {
		c.wire.Store(0)
		c.plain.Store(0)
	}
	cpu0 := srv.CPU()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < benchWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				p := phones[(w+benchWorkers*(i/benchWorkers))%len(phones)]
				t0 := time.Now()
				err := op(p)
				if err != nil {
					if failed.Add(1) == 1 {
						b.Errorf("request failed: %v", err)
					}
					continue
				}
				lat.mu.Lock()
				lat.d = append(lat.d, time.Since(t0))
				lat.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		b.Logf("load average after the run: %s", strings.Fields(string(la))[0])
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "req/s")
	b.ReportMetric(float64(lat.pct(0.50).Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat.pct(0.99).Microseconds())/1000, "p99_ms")
	b.ReportMetric(float64((srv.CPU()-cpu0).Microseconds())/1000/float64(b.N), "server_cpu_ms/op")
	if c != nil {
		b.ReportMetric(float64(c.wire.Load())/float64(b.N), "wire_B/op")
		b.ReportMetric(float64(c.plain.Load())/float64(b.N), "http_B/op")
	}
}

// get does one GET with If-None-Match (when etag is set) and wants the
// status.
func get(hc *http.Client, url, etag string, want int) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("GET %s: %s, want %d", url, resp.Status, want)
	}
	return nil
}

// BenchmarkPoll measures what the director adds to the fleet server: each
// simulated phone (software key, certificate from the device CA) polls
// its director repository over a new mutual-TLS connection, as a phone
// on a 15-minute poll does. An unchanged poll sends If-None-Match and
// gets a 304 with no body; a changed one gets timestamp.json. Beside it,
// in the same run: the plain signed check-in on the same server, and the
// reference, nginx serving a file of timestamp.json's size with
// If-None-Match (its own 304) to the same clients, client certificates
// verified. Bytes are counted per request: on the wire (handshake
// included) and of HTTP.
func BenchmarkPoll(b *testing.B) {
	pki := filepath.Join(b.TempDir(), "pki")
	if err := ca.Init(pki, ca.InitOptions{Organization: "Bench", ServerNames: []string{serverName}, AdminName: "admin"}); err != nil {
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
	tdir, repoDir := directorRepoDir(b, time.Now)
	data := filepath.Join(b.TempDir(), "data")
	st, err := boltstore.Open(data)
	if err != nil {
		b.Fatalf("boltstore.Open: %v", err)
	}
	svc, err := director.New(director.Config{Store: st, Director: tdir})
	if err != nil {
		b.Fatalf("director.New: %v", err)
	}
	now := time.Now()
	var phones []*benchPhone
	for i := 0; i < benchPhones; i++ {
		p := newBenchPhone(b, st, dca, i, now)
		if _, err := svc.Publish(ctx, store.DeviceID(p.id)); err != nil {
			b.Fatalf("Publish: %v", err)
		}
		if _, p.etag, err = svc.File(ctx, store.DeviceID(p.id), "timestamp.json"); err != nil {
			b.Fatalf("File: %v", err)
		}
		phones = append(phones, p)
	}
	ts, _, _ := svc.File(ctx, store.DeviceID(phones[0].id), "timestamp.json")
	if err := st.Close(); err != nil {
		b.Fatalf("Close: %v", err)
	}
	mfg := test.NewManufacturerCA(b, filepath.Join(b.TempDir(), "mfg"))
	h := test.StartHPFleet(b, hpfleetBinaryB(b), filepath.Join(pki, ca.ServerCACertFile), serverName,
		"--data", data, "--ca-dir", pki, "--manufacturer-ca", mfg.CertFile, "--log-level", "warn",
		"--director", filepath.Join(repoDir, "repo"), "--director-targets-key", filepath.Join(repoDir, "targets.pem"),
		"--director-snapshot-key", filepath.Join(repoDir, "snapshot.pem"), "--director-timestamp-key", filepath.Join(repoDir, "timestamp.pem"))
	ngx := test.StartNginx(b, test.NginxTLS{CertFile: filepath.Join(pki, ca.ServerCertFile), KeyFile: filepath.Join(pki, ca.ServerKeyFile),
		ClientCAFile: filepath.Join(pki, ca.DeviceCACertFile), Files: map[string][]byte{"/timestamp.json": ts}})
	var cnt counters
	for _, p := range phones {
		cfg, err := policy.ClientConfig(policy.ClientTLS{Roots: roots, ServerName: serverName, Certificate: p.cert})
		if err != nil {
			b.Fatalf("ClientConfig: %v", err)
		}
		p.http = httpClient(cfg, &cnt)
		if p.fc, err = client.New(client.Config{URL: h.URL, ServerName: serverName, Roots: roots, Certificate: p.cert}); err != nil {
			b.Fatalf("client.New: %v", err)
		}
	}
	// nginx's own validator for the reference's unchanged polls.
	resp, err := phones[0].http.Get(ngx.URL() + "/timestamp.json")
	if err != nil {
		b.Fatalf("nginx: %v", err)
	}
	resp.Body.Close()
	ngxETag := resp.Header.Get("ETag")
	dirURL := func(p *benchPhone) string { return h.URL + api.DirectorBase(p.id) + "timestamp.json" }
	b.Logf("timestamp.json: %d bytes", len(ts))

	b.Run("unchanged_poll/ours", func(b *testing.B) {
		b.ReportAllocs()
		saturate(b, phones, h, &cnt, func(p *benchPhone) error { return get(p.http, dirURL(p), p.etag, http.StatusNotModified) })
	})
	b.Run("unchanged_poll/reference", func(b *testing.B) {
		saturate(b, phones, ngx, &cnt, func(p *benchPhone) error {
			return get(p.http, ngx.URL()+"/timestamp.json", ngxETag, http.StatusNotModified)
		})
	})
	b.Run("changed_poll/ours", func(b *testing.B) {
		saturate(b, phones, h, &cnt, func(p *benchPhone) error { return get(p.http, dirURL(p), "", http.StatusOK) })
	})
	b.Run("changed_poll/reference", func(b *testing.B) {
		saturate(b, phones, ngx, &cnt, func(p *benchPhone) error { return get(p.http, ngx.URL()+"/timestamp.json", "", http.StatusOK) })
	})
	b.Run("checkin/ours", func(b *testing.B) {
		saturate(b, phones, h, nil, func(p *benchPhone) error {
			p.mu.Lock()
			defer p.mu.Unlock()
			defer p.fc.CloseIdleConnections()
			_, err := p.fc.CheckIn(ctx, p.key, api.Report{DeviceID: p.id, SentAt: time.Now(), Model: "hp-desk-1", Serial: p.serial,
				Firmware: api.Firmware{Version: "1.0.0", SecurityVersion: 5}, Boot: api.Boot{Slot: "A", AttemptsLeft: 3, MarkedGood: true},
				CertNotAfter: p.cert.Leaf.NotAfter, Lockdown: api.Lockdown{OK: true}})
			return err
		})
	})
}

// hpfleetBinaryB builds hpfleet once for benchmarks too.
func hpfleetBinaryB(b *testing.B) string {
	b.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hpfleet-bin-")
		if err != nil {
			buildErr = err
			return
		}
		hpfleetBin = test.BuildHPFleet(&onceTB{TB: b, dir: dir})
	})
	if buildErr != nil || hpfleetBin == "" {
		b.Fatalf("build hpfleet: %v", buildErr)
	}
	return hpfleetBin
}
