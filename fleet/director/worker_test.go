package director_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/hardphone/hardphone/fleet/director"
	"github.com/hardphone/hardphone/fleet/store"
	"github.com/hardphone/hardphone/fleet/store/boltstore"
	"github.com/hardphone/hardphone/fleet/store/pgstore"
	"github.com/hardphone/hardphone/fleet/tufrepo"
	"github.com/hardphone/hardphone/test"
)

// directorRepo makes a director root repository with one online key per
// role and short lifetimes, and returns the signing director on clock.
func directorRepo(t testing.TB, now func() time.Time) *tufrepo.Director {
	d, _ := directorRepoDir(t, now)
	return d
}

// directorRepoDir is directorRepo that also returns the directory: the
// repository in DIR/repo, the keys in DIR/{targets,snapshot,timestamp}.pem.
func directorRepoDir(t testing.TB, now func() time.Time) (*tufrepo.Director, string) {
	t.Helper()
	dir := t.TempDir()
	k := func(name string) *tufrepo.Key {
		key, err := tufrepo.GenerateKey(filepath.Join(dir, name+".pem"), tufrepo.AlgECDSAP256)
		if err != nil {
			t.Fatalf("GenerateKey: %v", err)
		}
		return key
	}
	root, tgt, snap, ts := k("root"), k("targets"), k("snapshot"), k("timestamp")
	life := tufrepo.Lifetimes{Root: 365 * 24 * time.Hour, Targets: 30 * 24 * time.Hour, Snapshot: 7 * 24 * time.Hour, Timestamp: time.Hour}
	r, err := tufrepo.Init(filepath.Join(dir, "repo"), tufrepo.InitParams{Root: tufrepo.RoleKeys{Keys: []*tufrepo.Key{root}, Threshold: 1},
		Targets: tufrepo.RoleKeys{Keys: []*tufrepo.Key{tgt}, Threshold: 1}, Snapshot: tufrepo.RoleKeys{Keys: []*tufrepo.Key{snap}, Threshold: 1},
		Timestamp: tufrepo.RoleKeys{Keys: []*tufrepo.Key{ts}, Threshold: 1}, Lifetimes: life}, tufrepo.WithClock(now))
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	if _, err := r.Publish(tufrepo.SigningKeys{Snapshot: []*tufrepo.Key{snap}, Timestamp: []*tufrepo.Key{ts}}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	d, err := tufrepo.OpenDirector(r.Dir(), tufrepo.OnlineKeys{Targets: []*tufrepo.Key{tgt}, Snapshot: []*tufrepo.Key{snap},
		Timestamp: []*tufrepo.Key{ts}}, tufrepo.WithClock(now))
	if err != nil {
		t.Fatalf("OpenDirector: %v", err)
	}
	return d, dir
}

// enrolDirect records n enrolled devices in st as enrolment would.
func enrolDirect(t testing.TB, st store.Store, n int, now time.Time) []store.DeviceID {
	t.Helper()
	var entries []store.AllowEntry
	for i := 0; i < n; i++ {
		entries = append(entries, store.AllowEntry{EK: sha256.Sum256(fmt.Appendf(nil, "ek-%d", i)), Serial: fmt.Sprintf("HP1-%06d", i),
			Model: "hp-desk-1", Group: group, ImportedAt: now})
	}
	if _, err := st.ImportAllowList(ctx, entries); err != nil {
		t.Fatalf("ImportAllowList: %v", err)
	}
	var ids []store.DeviceID
	for _, e := range entries {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
		serial, err := st.NextCertSerial(ctx)
		if err != nil {
			t.Fatalf("NextCertSerial: %v", err)
		}
		d := store.Device{ID: store.NewDeviceID(), Serial: e.Serial, Model: e.Model, Group: e.Group, EK: e.EK,
			IdentityPublicKey: pub, State: store.StateEnrolled, EnrolledAt: now}
		c := store.Cert{Serial: serial, DeviceID: d.ID, NotBefore: now, NotAfter: now.Add(30 * 24 * time.Hour), DER: []byte("cert")}
		if err := st.CreateDevice(ctx, d, c); err != nil {
			t.Fatalf("CreateDevice: %v", err)
		}
		ids = append(ids, d.ID)
	}
	return ids
}

func timestampOf(t *testing.T, svc *director.Service, id store.DeviceID) *metadata.Metadata[metadata.TimestampType] {
	t.Helper()
	b, _, err := svc.File(ctx, id, "timestamp.json")
	if err != nil {
		t.Fatalf("File(timestamp.json): %v", err)
	}
	ts, err := metadata.Timestamp().FromBytes(b)
	if err != nil {
		t.Fatalf("timestamp: %v", err)
	}
	return ts
}

// TestWorkerRefreshesTimestamps: the worker re-signs a device's timestamp
// once half its life is gone, before it expires, and not before; a device
// not due is left alone.
func TestWorkerRefreshesTimestamps(t *testing.T) {
	c := &clock{t: time.Now().UTC().Truncate(time.Second)}
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatalf("boltstore.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := director.New(director.Config{Store: st, Director: directorRepo(t, c.Now)}, director.WithClock(c.Now))
	if err != nil {
		t.Fatalf("director.New: %v", err)
	}
	ids := enrolDirect(t, st, 2, c.Now())
	for _, id := range ids {
		if _, err := svc.Publish(ctx, id); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	first := timestampOf(t, svc, ids[0])
	if n, err := svc.RunOnce(ctx); err != nil || n != 0 {
		t.Fatalf("RunOnce right after publishing = %d, %v; want nothing due", n, err)
	}
	c.Add(29 * time.Minute)
	if n, _ := svc.RunOnce(ctx); n != 0 {
		t.Fatalf("RunOnce at 29 of 60 minutes = %d due, want 0", n)
	}
	c.Add(2 * time.Minute)
	if n, err := svc.RunOnce(ctx); err != nil || n != 2 {
		t.Fatalf("RunOnce at 31 of 60 minutes = %d, %v; want both devices", n, err)
	}
	next := timestampOf(t, svc, ids[0])
	if next.Signed.Version != first.Signed.Version+1 || !next.Signed.Expires.After(first.Signed.Expires) {
		t.Fatalf("refreshed timestamp v%d expiring %v, was v%d expiring %v", next.Signed.Version, next.Signed.Expires,
			first.Signed.Version, first.Signed.Expires)
	}
	if n, _ := svc.RunOnce(ctx); n != 0 {
		t.Fatalf("RunOnce after the refresh = %d due, want 0", n)
	}
	// Days without a publication: the worker keeps every timestamp fresh.
	for i := 0; i < 72; i++ {
		c.Add(31 * time.Minute)
		if _, err := svc.RunOnce(ctx); err != nil {
			t.Fatalf("RunOnce: %v", err)
		}
		if ts := timestampOf(t, svc, ids[1]); ts.Signed.IsExpired(c.Now()) {
			t.Fatalf("after %d passes the timestamp expired at %v (now %v)", i, ts.Signed.Expires, c.Now())
		}
	}
}

// TestReplicasRace: director replicas on one PostgreSQL database publish
// and refresh the same devices at once; every publication lands with its
// own version, none is lost or duplicated.
func TestReplicasRace(t *testing.T) {
	pg := test.StartPostgres(t)
	open := func() store.Store {
		s, err := pgstore.Open(ctx, pg.DSN)
		if err != nil {
			t.Fatalf("pgstore.Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	c := &clock{t: time.Now().UTC().Truncate(time.Second)}
	tdir := directorRepo(t, c.Now)
	var svcs []*director.Service
	for i := 0; i < 3; i++ {
		svc, err := director.New(director.Config{Store: open(), Director: tdir}, director.WithClock(c.Now))
		if err != nil {
			t.Fatalf("director.New: %v", err)
		}
		svcs = append(svcs, svc)
	}
	ids := enrolDirect(t, open(), 3, c.Now())
	const rounds = 5
	var wg sync.WaitGroup
	for _, svc := range svcs {
		for _, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := 0; r < rounds; r++ {
					if err := svc.Refresh(ctx, id); err != nil {
						t.Errorf("Refresh: %v", err)
					}
					if _, err := svc.Publish(ctx, id); err != nil {
						t.Errorf("Publish: %v", err)
					}
				}
			}()
		}
	}
	wg.Wait()
	for _, id := range ids {
		ts := timestampOf(t, svcs[0], id)
		// Publish with nothing new signs nothing: one publication per
		// device, whoever made it; every replica serves the same.
		for _, svc := range svcs[1:] {
			if other := timestampOf(t, svc, id); other.Signed.Version != ts.Signed.Version {
				t.Fatalf("replicas disagree on %s: v%d and v%d", id, ts.Signed.Version, other.Signed.Version)
			}
		}
		if ts.Signed.Version != 1 {
			t.Fatalf("device %s timestamp v%d after racing publications of nothing new, want 1", id, ts.Signed.Version)
		}
	}
	// A forced change on all replicas at once: versions advance by one
	// per accepted publication.
	c.Add(40 * time.Minute)
	wg = sync.WaitGroup{}
	for _, svc := range svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := svc.RunOnce(ctx); err != nil {
				t.Errorf("RunOnce: %v", err)
			}
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if ts := timestampOf(t, svcs[0], id); ts.Signed.Version != 2 {
			t.Fatalf("device %s timestamp v%d after three replicas' workers ran once, want 2 (refreshed once)", id, ts.Signed.Version)
		}
	}
}
