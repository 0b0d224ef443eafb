package uptane

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// countingConn counts the bytes a connection carries both ways.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// countingClient is an HTTP client (keep-alive, as the phone's) whose
// wire bytes, headers included, are counted.
func countingClient() (*http.Client, *atomic.Int64, *atomic.Int64) {
	var bytes, reqs atomic.Int64
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return countingConn{Conn: c, n: &bytes}, nil
		},
		MaxIdleConnsPerHost: 4,
		DisableCompression:  true,
	}
	return &http.Client{Transport: countingRT{tr, &reqs}, Timeout: 10 * time.Second}, &bytes, &reqs
}

type countingRT struct {
	http.RoundTripper
	n *atomic.Int64
}

func (c countingRT) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.RoundTripper.RoundTrip(r)
}

// BenchmarkPoll measures one poll of both repositories: time, bytes on
// the wire (requests and responses, headers included) and requests.
//
//   - unchanged/ours: nothing new; the timestamp is asked for with
//     If-None-Match (304, no body), the next root version is a 404.
//   - unchanged-no-etag/ours: the same, with the timestamps sent in full.
//   - changed/ours: the director published a new assignment: new
//     timestamp, snapshot and targets for the device, verified and
//     committed to the state file (fsync included).
//   - .../reference: nginx serving the same files to plain GETs, no
//     verification, no state: what the HTTP part alone costs.
func BenchmarkPoll(b *testing.B) {
	f := newFleet(b, fleetOptions{})
	f.assign(devA, "1.0")
	hc, wire, reqs := countingClient()
	p := &phone{f: f, dev: devA, dbPath: b.TempDir() + "/state.db", http: hc}
	p.open()
	defer p.close()
	if _, err := p.refresh(); err != nil {
		b.Fatalf("Refresh: %v", err)
	}
	report := func(b *testing.B, w0, r0 int64) {
		b.ReportMetric(float64(wire.Load()-w0)/float64(b.N), "wire-B/op")
		b.ReportMetric(float64(reqs.Load()-r0)/float64(b.N), "req/op")
	}
	unchangedFiles := []string{f.imageURL() + "2.root.json", f.imageURL() + "timestamp.json",
		f.directorURL(devA) + "2.root.json", f.directorURL(devA) + "timestamp.json"}
	get := func(b *testing.B, urls []string, etag bool) {
		for _, u := range urls {
			req, _ := http.NewRequest(http.MethodGet, u, nil)
			if etag {
				req.Header.Set("If-None-Match", etags[u])
			}
			resp, err := hc.Do(req)
			if err != nil {
				b.Fatalf("GET %s: %v", u, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if etag && resp.StatusCode == http.StatusOK {
				etags[u] = resp.Header.Get("ETag")
			}
		}
	}

	b.Run("unchanged/ours", func(b *testing.B) {
		b.ReportAllocs()
		w0, r0 := wire.Load(), reqs.Load()
		for b.Loop() {
			st, err := p.refresh()
			if err != nil || st.Director.LastChanged || st.Image.LastChanged {
				b.Fatalf("Refresh = %+v, %v", st, err)
			}
		}
		report(b, w0, r0)
	})
	b.Run("unchanged/reference", func(b *testing.B) {
		b.ReportAllocs()
		get(b, unchangedFiles, true)
		w0, r0 := wire.Load(), reqs.Load()
		for b.Loop() {
			get(b, unchangedFiles, true)
		}
		report(b, w0, r0)
	})
	b.Run("unchanged-no-etag/ours", func(b *testing.B) {
		b.ReportAllocs()
		w0, r0 := wire.Load(), reqs.Load()
		for b.Loop() {
			// The fetchers forget the timestamps' ETags: full bodies.
			for _, r := range p.c.repos {
				hf := r.fetcher.(*HTTPFetcher)
				hf.mu.Lock()
				hf.etag, hf.body = "", nil
				hf.mu.Unlock()
			}
			if _, err := p.refresh(); err != nil {
				b.Fatalf("Refresh = %v", err)
			}
		}
		report(b, w0, r0)
	})
	b.Run("unchanged-no-etag/reference", func(b *testing.B) {
		b.ReportAllocs()
		w0, r0 := wire.Load(), reqs.Load()
		for b.Loop() {
			get(b, unchangedFiles, false)
		}
		report(b, w0, r0)
	})
	b.Run("changed/ours", func(b *testing.B) {
		b.ReportAllocs()
		var w, r int64
		i := 0
		for b.Loop() {
			b.StopTimer()
			i++
			f.assign(devA, []string{"1.0", "2.0"}[i%2])
			b.StartTimer()
			w0, r0 := wire.Load(), reqs.Load()
			st, err := p.refresh()
			if err != nil || !st.Director.LastChanged {
				b.Fatalf("Refresh = %+v, %v", st.Director, err)
			}
			w, r = w+wire.Load()-w0, r+reqs.Load()-r0
		}
		b.ReportMetric(float64(w)/float64(b.N), "wire-B/op")
		b.ReportMetric(float64(r)/float64(b.N), "req/op")
	})
	b.Run("changed/reference", func(b *testing.B) {
		b.ReportAllocs()
		r := f.devices[devA]
		files := append(append([]string{}, unchangedFiles...),
			f.directorURL(devA)+fmt.Sprintf("%d.snapshot.json", r.SnapshotVersion),
			f.directorURL(devA)+fmt.Sprintf("%d.targets.json", r.TargetsVersion))
		w0, r0 := wire.Load(), reqs.Load()
		for b.Loop() {
			get(b, files, false)
		}
		report(b, w0, r0)
	})
}

// etags are the reference client's remembered validators.
var etags = map[string]string{}
