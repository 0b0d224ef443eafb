package uptane

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/fleet/tufrepo"
	"github.com/hardphone/hardphone/test"
	"github.com/hardphone/hardphone/update/bundle"
)

// The tests build real repositories with fleet/tufrepo, serve them with
// nginx as static files, and point the client at them over plain HTTP:
// the transport is untrusted by design.

const (
	testCompatible = "hardphone-test-board"
	devA           = "dev-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	devB           = "dev-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// clock is the test's settable clock, shared by the repositories (expiry
// dates) and the client (expiry checks).
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var (
	shared     sync.Once
	sharedPKI  *test.UpdatePKI
	sharedDir  string
	bundlesMu  sync.Mutex
	bundleMemo = map[string]string{}
)

// testPKI is one bundle-signing PKI for the package's tests.
func testPKI(t testing.TB) *test.UpdatePKI {
	t.Helper()
	shared.Do(func() {
		dir, err := os.MkdirTemp("", "uptane-test-")
		if err != nil {
			t.Fatalf("temp dir: %v", err)
		}
		sharedDir = dir
		sharedPKI = test.NewUpdatePKI(t, filepath.Join(dir, "pki"))
	})
	if sharedPKI == nil {
		t.Fatalf("no PKI")
	}
	return sharedPKI
}

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(childRefreshLoop())
	}
	code := m.Run()
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
	}
	os.Exit(code)
}

// makeBundle returns a signed bundle of the given version and security
// version (made once per pair).
func makeBundle(t testing.TB, version string, secver uint64) string {
	t.Helper()
	pki := testPKI(t)
	bundlesMu.Lock()
	defer bundlesMu.Unlock()
	key := fmt.Sprintf("%s/%d", version, secver)
	if p, ok := bundleMemo[key]; ok {
		return p
	}
	dir := filepath.Join(sharedDir, "bundles", key)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("bundle dir: %v", err)
	}
	img := filepath.Join(dir, "rootfs.img")
	b := make([]byte, 64<<10)
	rand.Read(b)
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatalf("image: %v", err)
	}
	out := filepath.Join(dir, "hardphone-"+version+".raucb")
	m := &bundle.Manifest{Compatible: testCompatible, Version: version, SecurityVersion: secver, HasSecurityVersion: true,
		Images: []bundle.Image{{SlotClass: "rootfs", Filename: "rootfs.img"}}}
	if err := bundle.Create(context.Background(), out, m, map[string]string{"rootfs.img": img}, bundle.Signer{Cert: pki.Leaf.Cert, Key: pki.Leaf.Key}); err != nil {
		t.Fatalf("bundle.Create: %v", err)
	}
	bundleMemo[key] = out
	return out
}

// fleet is an image repository and a director, served by nginx, and the
// state of one phone.
type fleet struct {
	t      testing.TB
	clock  *clock
	ngx    *test.StaticNginx
	base   string // this fleet's directory under nginx's root
	url    string // its URL
	keyDir string

	image      *tufrepo.Repo
	imageRoot  []*tufrepo.Key
	imageTgt   []*tufrepo.Key
	imageSnap  []*tufrepo.Key
	imageTS    []*tufrepo.Key
	dirRepo    *tufrepo.Repo
	director   *tufrepo.Director
	dirRoot    []*tufrepo.Key
	dirOnline  tufrepo.OnlineKeys
	dirAdmin   *tufrepo.Key
	devices    map[string]*tufrepo.DeviceRepo
	firmware   map[string]tufrepo.Firmware
	configVers uint64
	phones     []*phone
	// admin is set when director targets need the admin signature too.
	admin bool
}

type fleetOptions struct {
	// adminThreshold makes the director's targets need the online key
	// and an admin key.
	adminThreshold bool
}

var fleetSeq struct {
	sync.Mutex
	n int
}

func newFleet(t testing.TB, o fleetOptions) *fleet {
	t.Helper()
	pki := testPKI(t)
	ngx := test.StartStaticNginx(t)
	fleetSeq.Lock()
	fleetSeq.n++
	name := fmt.Sprintf("fleet%d", fleetSeq.n)
	fleetSeq.Unlock()
	f := &fleet{t: t, clock: &clock{t: time.Now().UTC().Truncate(time.Second)}, ngx: ngx, admin: o.adminThreshold,
		base: filepath.Join(ngx.Root, name), url: ngx.URL + "/" + name, keyDir: t.TempDir(),
		devices: map[string]*tufrepo.DeviceRepo{}}
	if err := os.MkdirAll(f.base, 0o755); err != nil {
		t.Fatalf("fleet dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(f.base) })
	keys := func(prefix string, n int) []*tufrepo.Key {
		var ks []*tufrepo.Key
		for i := 0; i < n; i++ {
			k, err := tufrepo.GenerateKey(filepath.Join(f.keyDir, fmt.Sprintf("%s-%d.pem", prefix, i)), tufrepo.AlgECDSAP256)
			if err != nil {
				t.Fatalf("GenerateKey: %v", err)
			}
			ks = append(ks, k)
		}
		return ks
	}
	f.imageRoot, f.imageTgt, f.imageSnap, f.imageTS = keys("image-root", 2), keys("image-targets", 2), keys("image-snapshot", 1), keys("image-timestamp", 1)
	var err error
	f.image, err = tufrepo.Init(filepath.Join(f.base, "image"), tufrepo.InitParams{
		Root:      tufrepo.RoleKeys{Keys: f.imageRoot, Threshold: 2},
		Targets:   tufrepo.RoleKeys{Keys: f.imageTgt, Threshold: 2},
		Snapshot:  tufrepo.RoleKeys{Keys: f.imageSnap, Threshold: 1},
		Timestamp: tufrepo.RoleKeys{Keys: f.imageTS, Threshold: 1},
	}, tufrepo.WithClock(f.clock.Now))
	if err != nil {
		t.Fatalf("image Init: %v", err)
	}
	f.publishImage()
	kr, err := bundle.LoadKeyring(pki.CA.CertFile)
	if err != nil {
		t.Fatalf("keyring: %v", err)
	}
	for _, b := range []struct {
		v string
		s uint64
	}{{"1.0", 1}, {"2.0", 2}} {
		if _, err := f.image.AddBundle(makeBundle(t, b.v, b.s), "", kr, f.imageTgt); err != nil {
			t.Fatalf("AddBundle: %v", err)
		}
	}
	f.publishImage()
	if f.firmware, err = f.image.Targets(); err != nil {
		t.Fatalf("image Targets: %v", err)
	}

	f.dirRoot = keys("director-root", 1)
	f.dirOnline = tufrepo.OnlineKeys{Targets: keys("director-online", 1), Snapshot: keys("director-snapshot", 1), Timestamp: keys("director-timestamp", 1)}
	f.dirAdmin = keys("director-admin", 1)[0]
	targets := tufrepo.RoleKeys{Keys: f.dirOnline.Targets, Threshold: 1}
	if o.adminThreshold {
		targets = tufrepo.RoleKeys{Keys: append(append([]*tufrepo.Key{}, f.dirOnline.Targets...), f.dirAdmin), Threshold: 2}
	}
	f.dirRepo, err = tufrepo.Init(filepath.Join(f.keyDir, "director-root"), tufrepo.InitParams{
		Root: tufrepo.RoleKeys{Keys: f.dirRoot, Threshold: 1}, Targets: targets,
		Snapshot: tufrepo.RoleKeys{Keys: f.dirOnline.Snapshot, Threshold: 1}, Timestamp: tufrepo.RoleKeys{Keys: f.dirOnline.Timestamp, Threshold: 1},
	}, tufrepo.WithClock(f.clock.Now))
	if err != nil {
		t.Fatalf("director Init: %v", err)
	}
	if o.adminThreshold {
		if err := f.dirRepo.Sign(tufrepo.RoleTargets, f.dirAdmin); err != nil {
			t.Fatalf("director Sign: %v", err)
		}
	}
	if _, err := f.dirRepo.Publish(tufrepo.SigningKeys{Snapshot: f.dirOnline.Snapshot, Timestamp: f.dirOnline.Timestamp}); err != nil {
		t.Fatalf("director Publish: %v", err)
	}
	f.openDirector()
	return f
}

func (f *fleet) openDirector() {
	d, err := tufrepo.OpenDirector(f.dirRepo.Dir(), f.dirOnline, tufrepo.WithClock(f.clock.Now))
	if err != nil {
		f.t.Fatalf("OpenDirector: %v", err)
	}
	f.director = d
}

func (f *fleet) publishImage() {
	f.t.Helper()
	if _, err := f.image.Publish(tufrepo.SigningKeys{Snapshot: f.imageSnap, Timestamp: f.imageTS}); err != nil {
		f.t.Fatalf("image Publish: %v", err)
	}
}

func (f *fleet) fw(version string) *tufrepo.Firmware {
	f.t.Helper()
	fw, ok := f.firmware["hardphone-"+version+".raucb"]
	if !ok {
		f.t.Fatalf("no firmware %s in %v", version, f.firmware)
	}
	return &fw
}

// assign publishes a device's director repository: firmware version (""
// for none) and a new config document.
func (f *fleet) assign(dev, version string) *tufrepo.DeviceRepo {
	f.t.Helper()
	a := f.assignment(version)
	s, err := f.director.StageDevice(f.devices[dev], dev, a)
	if err != nil {
		f.t.Fatalf("StageDevice(%s): %v", dev, err)
	}
	if f.admin {
		if err := f.director.SignStaged(s, f.dirAdmin); err != nil {
			f.t.Fatalf("SignStaged: %v", err)
		}
	}
	r, err := f.director.PublishStaged(f.devices[dev], s)
	if err != nil {
		f.t.Fatalf("director PublishStaged(%s): %v", dev, err)
	}
	f.writeDevice(r)
	return r
}

func (f *fleet) assignment(version string) tufrepo.Assignment {
	f.configVers++
	a := tufrepo.Assignment{Config: &tufrepo.ConfigDoc{Version: f.configVers, Data: []byte(fmt.Sprintf("# config v%d\n[update]\n", f.configVers))}}
	if version != "" {
		a.Firmware = f.fw(version)
	}
	return a
}

func (f *fleet) writeDevice(r *tufrepo.DeviceRepo) {
	f.t.Helper()
	if err := tufrepo.WriteDeviceRepo(filepath.Join(f.base, "director"), f.director, r); err != nil {
		f.t.Fatalf("WriteDeviceRepo: %v", err)
	}
	f.devices[r.DeviceID] = r
}

// refreshTimestamps re-signs every timestamp (image and devices).
func (f *fleet) refreshTimestamps() {
	f.t.Helper()
	if _, err := f.image.Timestamp(tufrepo.SigningKeys{Snapshot: f.imageSnap, Timestamp: f.imageTS}); err != nil {
		f.t.Fatalf("image Timestamp: %v", err)
	}
	for dev, r := range f.devices {
		n, err := f.director.RefreshTimestamp(r)
		if err != nil {
			f.t.Fatalf("RefreshTimestamp(%s): %v", dev, err)
		}
		f.writeDevice(n)
	}
}

// imageVersion is the image repository's published version of role.
func (f *fleet) imageVersion(role string) int64 {
	f.t.Helper()
	st, err := f.image.Status()
	if err != nil {
		f.t.Fatalf("image Status: %v", err)
	}
	for _, r := range st {
		if r.Role == role {
			return r.Version
		}
	}
	f.t.Fatalf("no role %s", role)
	return 0
}

func (f *fleet) imageURL() string              { return f.url + "/image/public/" }
func (f *fleet) directorURL(dev string) string { return f.url + "/director/" + dev + "/" }
func (f *fleet) devicePath(dev, name string) string {
	return filepath.Join(f.base, "director", dev, filepath.FromSlash(name))
}
func (f *fleet) imagePath(name string) string {
	return filepath.Join(f.base, "image", "public", filepath.FromSlash(name))
}

// phone is a client over its own state file.
type phone struct {
	f      *fleet
	dev    string
	dbPath string
	db     *bolt.DB
	c      *Client
	http   *http.Client
}

func (f *fleet) pinned(repoDir string) []byte {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(repoDir, "1.root.json"))
	if err != nil {
		f.t.Fatalf("pinned root: %v", err)
	}
	return b
}

func (f *fleet) newPhone(dev string) *phone {
	f.t.Helper()
	p := &phone{f: f, dev: dev, dbPath: filepath.Join(f.t.TempDir(), "state.db"), http: &http.Client{Timeout: 10 * time.Second}}
	p.open()
	f.t.Cleanup(func() { p.close() })
	return p
}

func mustOpenDB(t testing.TB, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func (p *phone) open() {
	p.f.t.Helper()
	db, err := bolt.Open(p.dbPath, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		p.f.t.Fatalf("bolt.Open: %v", err)
	}
	p.db = db
	c, err := p.f.client(db, p.dev, p.http)
	if err != nil {
		p.f.t.Fatalf("New: %v", err)
	}
	p.c = c
}

func (p *phone) close() {
	if p.db != nil {
		p.db.Close()
		p.db = nil
	}
}

func (f *fleet) client(db *bolt.DB, dev string, hc *http.Client) (*Client, error) {
	imgF, err := NewHTTPFetcher(hc, f.imageURL())
	if err != nil {
		return nil, err
	}
	dirF, err := NewHTTPFetcher(hc, f.directorURL(dev))
	if err != nil {
		return nil, err
	}
	return New(db, dev, f.clock.Now,
		RepoConfig{Root: f.pinned(filepath.Join(f.base, "image", "public")), Fetcher: imgF},
		RepoConfig{Root: f.pinned(f.dirRepo.PublicDir()), Fetcher: dirF},
		WithCompatible(testCompatible))
}

func (p *phone) refresh() (Status, error) {
	return p.c.Refresh(context.Background())
}

func (p *phone) mustRefresh() Status {
	p.f.t.Helper()
	st, err := p.refresh()
	if err != nil {
		p.f.t.Fatalf("Refresh = %v", err)
	}
	return st
}

// dump is every key of the state file's uptane bucket.
func dump(t testing.TB, db *bolt.DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := db.View(func(tx *bolt.Tx) error {
		top := tx.Bucket(bucketUptane)
		if top == nil {
			return nil
		}
		return top.ForEachBucket(func(name []byte) error {
			return top.Bucket(name).ForEach(func(k, v []byte) error {
				out[string(name)+"/"+string(k)] = string(v)
				return nil
			})
		})
	})
	if err != nil {
		t.Fatalf("dump state: %v", err)
	}
	return out
}

func sameState(t testing.TB, before, after map[string]string) {
	t.Helper()
	if len(before) != len(after) {
		t.Fatalf("state has %d keys, had %d", len(after), len(before))
	}
	var changed []string
	for k, v := range before {
		if after[k] != v {
			changed = append(changed, k)
		}
	}
	sort.Strings(changed)
	if len(changed) > 0 {
		t.Fatalf("state changed: %s", strings.Join(changed, ", "))
	}
}

// replaceFile swaps a served file's bytes and returns a function that
// restores them.
func replaceFile(t testing.TB, path string, data []byte) func() {
	t.Helper()
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	serve(t, path, data)
	return func() { serve(t, path, old) }
}

// serve writes a file the way any later write would look to an HTTP
// server: with a newer modification time (so its ETag changes even within
// the same second).
func serve(t testing.TB, path string, data []byte) {
	t.Helper()
	mt := time.Now()
	if st, err := os.Stat(path); err == nil && mt.Unix() <= st.ModTime().Unix() {
		mt = time.Unix(st.ModTime().Unix()+1, 0)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	if err := os.Chtimes(path, mt, mt); err != nil {
		t.Fatalf("chtimes %s: %v", path, err)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return b
}

// forgeDevice writes a device repository around arbitrary targets bytes:
// snapshot and timestamp signed with the director's online keys, as a
// compromised director server could. version bumps the snapshot and
// timestamp past the device's current ones.
func (f *fleet) forgeDevice(dev string, targets []byte, targetsVersion int64, device string) {
	f.t.Helper()
	prev := f.devices[dev]
	exp := f.clock.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	snap := metadata.Snapshot(exp)
	snap.Signed.Version = prev.SnapshotVersion + 1
	snap.Signed.Meta = map[string]*metadata.MetaFiles{"targets.json": metaOf(targetsVersion, targets)}
	snap.Signed.UnrecognizedFields = map[string]any{fieldDevice: device}
	sb := signMeta(f.t, snap, f.dirOnline.Snapshot[0])
	ts := metadata.Timestamp(exp)
	ts.Signed.Version = prev.TimestampVersion + 1
	ts.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": metaOf(snap.Signed.Version, sb)}
	ts.Signed.UnrecognizedFields = map[string]any{fieldDevice: device, fieldSignedTime: f.clock.Now().UTC().Format(time.RFC3339)}
	tb := signMeta(f.t, ts, f.dirOnline.Timestamp[0])
	serve(f.t, f.devicePath(dev, fmt.Sprintf("%d.targets.json", targetsVersion)), targets)
	serve(f.t, f.devicePath(dev, fmt.Sprintf("%d.snapshot.json", snap.Signed.Version)), sb)
	serve(f.t, f.devicePath(dev, "timestamp.json"), tb)
}

// forgeImageTimestamp serves a fresh image timestamp over whatever
// snapshot is published, signed with the timestamp key, as a host that
// only refreshes timestamps would.
func (f *fleet) forgeImageTimestamp() {
	f.t.Helper()
	var cur metadata.Metadata[metadata.TimestampType]
	if _, err := cur.FromBytes(readFile(f.t, f.imagePath("timestamp.json"))); err != nil {
		f.t.Fatalf("image timestamp: %v", err)
	}
	ts := metadata.Timestamp(f.clock.Now().Add(24 * time.Hour).UTC().Truncate(time.Second))
	ts.Signed.Version = cur.Signed.Version + 1
	ts.Signed.Meta = cur.Signed.Meta
	ts.Signed.UnrecognizedFields = map[string]any{fieldSignedTime: f.clock.Now().UTC().Format(time.RFC3339)}
	serve(f.t, f.imagePath("timestamp.json"), signMeta(f.t, ts, f.imageTS[0]))
}

func metaOf(version int64, data []byte) *metadata.MetaFiles {
	m := metadata.MetaFile(version)
	m.Length = int64(len(data))
	mf, _ := metadata.TargetFile().FromBytes("x", data)
	m.Hashes = mf.Hashes
	return m
}

func signMeta[T metadata.Roles](t testing.TB, m *metadata.Metadata[T], k *tufrepo.Key) []byte {
	t.Helper()
	b, err := m.ToBytes(false)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	b, err = tufrepo.AddSignature(b, k)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return b
}

func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s = %v, want %v", what, err, want)
	}
}
