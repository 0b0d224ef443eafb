package uptane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/fleet/tufrepo"
)

// TestRefreshResolve is the path that works: a phone follows both
// repositories from its pinned roots over plain HTTP from nginx, resolves
// its assignment (firmware both agree on, its config document), fetches
// the document, and an unchanged poll changes nothing.
func TestRefreshResolve(t *testing.T) {
	f := newFleet(t, fleetOptions{})
	f.assign(devA, "1.0")
	p := f.newPhone(devA)
	st := p.mustRefresh()
	if st.Stale || st.Director.Targets != 1 || st.Image.Targets != 2 || st.Image.Root != 1 {
		t.Fatalf("Status after refresh = %+v", st)
	}
	if got, ok := p.c.SignedTime(); !ok || !got.Equal(f.clock.Now()) {
		t.Fatalf("SignedTime = %v, %v, want %v", got, ok, f.clock.Now())
	}
	a, err := p.c.Resolve(devA)
	if err != nil {
		t.Fatalf("Resolve = %v", err)
	}
	want := f.fw("1.0")
	if a.Firmware == nil || a.Firmware.Name != want.Name || a.Firmware.SHA256 != want.SHA256 || a.Firmware.Length != want.Length ||
		a.Firmware.SecurityVersion != 1 || a.Firmware.Version != "1.0" || a.Firmware.Path != want.Path() {
		t.Fatalf("Resolve firmware = %+v, want %+v", a.Firmware, want)
	}
	if a.Config == nil || a.Config.Version != 1 {
		t.Fatalf("Resolve config = %+v, want version 1", a.Config)
	}
	doc, err := p.c.FetchConfig(context.Background(), a.Config)
	if err != nil || string(doc) != "# config v1\n[update]\n" {
		t.Fatalf("FetchConfig = %q, %v", doc, err)
	}
	// The bundle itself, streamed through the target reader.
	resp, err := http.Get(f.imageURL() + a.Firmware.Path)
	if err != nil {
		t.Fatalf("GET bundle: %v", err)
	}
	var buf bytes.Buffer
	_, err = buf.ReadFrom(NewTargetReader(resp.Body, a.Firmware.Target))
	resp.Body.Close()
	if err != nil || int64(buf.Len()) != a.Firmware.Length {
		t.Fatalf("bundle through the target reader: %d bytes, %v", buf.Len(), err)
	}
	if _, err := p.c.Resolve(devB); !errors.Is(err, ErrWrongDevice) {
		t.Fatalf("Resolve(other device) = %v, want ErrWrongDevice", err)
	}

	before := dump(t, p.db)
	st = p.mustRefresh()
	if st.Director.LastChanged || st.Image.LastChanged {
		t.Fatalf("unchanged poll changed: %+v", st)
	}
	sameState(t, before, dump(t, p.db))

	// A new assignment and a fresh timestamp arrive; the state survives a
	// restart and the stored set verifies when loaded.
	f.clock.Add(time.Hour)
	f.assign(devA, "2.0")
	st = p.mustRefresh()
	if st.Director.Targets != 2 || !st.Director.LastChanged {
		t.Fatalf("Status after a new assignment = %+v", st.Director)
	}
	p.close()
	p.open()
	a, err = p.c.Resolve(devA)
	if err != nil || a.Firmware.Version != "2.0" || a.Config.Version != 2 {
		t.Fatalf("Resolve after restart = %+v, %v", a, err)
	}
	// No firmware named: only the config.
	f.assign(devA, "")
	p.mustRefresh()
	if a, err := p.c.Resolve(devA); err != nil || a.Firmware != nil || a.Config == nil {
		t.Fatalf("Resolve(config only) = %+v, %v", a, err)
	}
}

// TestRefusedChangesNothing: every attack on the metadata is refused and
// leaves the state file's trusted sets byte for byte as they were.
func TestRefusedChangesNothing(t *testing.T) {
	type attack struct {
		name string
		// setup attacks the served files and returns what Refresh must
		// fail with.
		setup func(t *testing.T, f *fleet) error
	}
	attacks := []attack{
		{"tampered timestamp", func(t *testing.T, f *fleet) error {
			p := f.devicePath(devA, "timestamp.json")
			b := readFile(t, p)
			replaceFile(t, p, bytes.Replace(b, []byte(`"x-hardphone-time":"`), []byte(`"x-hardphone-time":"1`), 1))
			return ErrRefused
		}},
		{"tampered targets of a new version", func(t *testing.T, f *fleet) error {
			r := f.assign(devA, "2.0")
			p := f.devicePath(devA, fmt.Sprintf("%d.targets.json", r.TargetsVersion))
			b := readFile(t, p)
			replaceFile(t, p, bytes.Replace(b, []byte(`"security_version":2`), []byte(`"security_version":9`), 1))
			return ErrRefused
		}},
		{"tampered image snapshot", func(t *testing.T, f *fleet) error {
			f.clock.Add(time.Minute)
			if err := f.image.RemoveTarget("hardphone-1.0.raucb", f.imageTgt); err != nil {
				t.Fatalf("RemoveTarget: %v", err)
			}
			f.publishImage()
			v := f.imageVersion(metadata.SNAPSHOT)
			p := f.imagePath(fmt.Sprintf("%d.snapshot.json", v))
			b := readFile(t, p)
			replaceFile(t, p, bytes.Replace(b, []byte(fmt.Sprintf(`"version":%d`, v)), []byte(fmt.Sprintf(`"version":%d`, v+1)), 1))
			return ErrRefused
		}},
		{"replayed older timestamp", func(t *testing.T, f *fleet) error {
			old := readFile(t, f.devicePath(devA, "timestamp.json"))
			f.assign(devA, "2.0")
			p := f.phones[0]
			p.mustRefresh()
			replaceFile(t, f.devicePath(devA, "timestamp.json"), old)
			return ErrRefused
		}},
		{"replayed older image timestamp", func(t *testing.T, f *fleet) error {
			old := readFile(t, f.imagePath("timestamp.json"))
			f.refreshTimestamps()
			f.phones[0].mustRefresh()
			replaceFile(t, f.imagePath("timestamp.json"), old)
			return ErrRefused
		}},
		{"rolled-back root", func(t *testing.T, f *fleet) error {
			// The next root version is the first root again.
			root1 := readFile(t, f.imagePath("1.root.json"))
			serve(t, f.imagePath("2.root.json"), root1)
			return ErrRefused
		}},
		{"root signed by the new keys only", func(t *testing.T, f *fleet) error {
			newKeys := []*tufrepo.Key{genKey(t, f, "evil-root-0"), genKey(t, f, "evil-root-1")}
			if err := f.image.RotateRoot(tufrepo.Rotation{Root: &tufrepo.RoleKeys{Keys: newKeys, Threshold: 2}}, newKeys); err != nil {
				t.Fatalf("RotateRoot: %v", err)
			}
			// Published by hand, skipping the repository's own check.
			staged := readFile(t, filepath.Join(f.image.Dir(), "staged", "root.json"))
			serve(t, f.imagePath("2.root.json"), staged)
			return ErrRefused
		}},
		{"another device's director metadata", func(t *testing.T, f *fleet) error {
			// B's repository, with versions above A's, served as A's.
			for i := 0; i < 3; i++ {
				f.assign(devB, "2.0")
			}
			for name, data := range f.devices[devB].Files() {
				serve(t, f.devicePath(devA, name), data)
			}
			return ErrWrongDevice
		}},
		{"targets naming another device", func(t *testing.T, f *fleet) error {
			// Timestamp and snapshot name this device; the targets they
			// carry is another device's, all signed with the online keys.
			s, err := f.director.StageDevice(f.devices[devB], devB, f.assignment("2.0"))
			if err != nil {
				t.Fatalf("StageDevice: %v", err)
			}
			f.forgeDevice(devA, s.Targets, f.devices[devB].TargetsVersion+1, devA)
			return ErrWrongDevice
		}},
		{"threshold not met", func(t *testing.T, f *fleet) error {
			// A director server holding only the online keys publishes
			// targets that lack the admin signature.
			s, err := f.director.StageDevice(f.devices[devA], devA, f.assignment("2.0"))
			if err != nil {
				t.Fatalf("StageDevice: %v", err)
			}
			f.forgeDevice(devA, s.Targets, f.devices[devA].TargetsVersion+1, devA)
			return ErrRefused
		}},
		{"snapshot longer than its timestamp says", func(t *testing.T, f *fleet) error {
			r := f.assign(devA, "2.0")
			p := f.devicePath(devA, fmt.Sprintf("%d.snapshot.json", r.SnapshotVersion))
			replaceFile(t, p, append(readFile(t, p), bytes.Repeat([]byte(" "), 100)...))
			return ErrTooLarge
		}},
		{"timestamp beyond the hard cap", func(t *testing.T, f *fleet) error {
			p := f.devicePath(devA, "timestamp.json")
			replaceFile(t, p, append(readFile(t, p), bytes.Repeat([]byte(" "), MaxTimestampSize)...))
			return ErrTooLarge
		}},
		{"frozen director", func(t *testing.T, f *fleet) error {
			// Nothing is re-signed for two days: the served timestamp
			// expired.
			f.clock.Add(48 * time.Hour)
			return ErrStale
		}},
		{"expired timestamp of a newer version", func(t *testing.T, f *fleet) error {
			f.clock.Add(-48 * time.Hour)
			f.refreshTimestamps()
			f.clock.Add(48 * time.Hour)
			return ErrStale
		}},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			f := newFleet(t, fleetOptions{adminThreshold: a.name == "threshold not met"})
			f.assign(devA, "1.0")
			f.assign(devB, "1.0")
			p := f.newPhone(devA)
			f.phones = append(f.phones, p)
			p.mustRefresh()
			want := a.setup(t, f)
			before := dump(t, p.db)
			assignBefore, errBefore := p.c.Resolve(devA)
			st, err := p.refresh()
			wantErr(t, "Refresh", err, want)
			sameState(t, before, dump(t, p.db))
			// The client still answers from what it trusted before, unless
			// that has expired meanwhile.
			assignAfter, errAfter := p.c.Resolve(devA)
			var ee *ExpiredError
			if want == ErrStale && (!errors.As(err, &ee) || ee.Role != metadata.TIMESTAMP) {
				t.Fatalf("Refresh = %v, want the timestamp expired", err)
			}
			if st.Director.LastError == "" && st.Image.LastError == "" {
				t.Fatalf("Status %+v reports no error", st)
			}
			if a.name == "frozen director" {
				// The trusted set itself expired: stale, and not used.
				if !st.Stale || st.Director.ExpiredRole != metadata.TIMESTAMP || !errors.Is(errAfter, ErrStale) {
					t.Fatalf("frozen: Status %+v, Resolve = %v, want stale (timestamp)", st.Director, errAfter)
				}
			} else if st.Stale || errBefore != nil || errAfter != nil || assignBefore.DirectorTargets != assignAfter.DirectorTargets {
				t.Fatalf("Resolve before %v/%v, after %v/%v", assignBefore, errBefore, assignAfter, errAfter)
			}
			// A reopened client loads the same trusted set.
			p.close()
			p.open()
			sameState(t, before, dump(t, p.db))
		})
	}
}

func genKey(t testing.TB, f *fleet, name string) *tufrepo.Key {
	t.Helper()
	k, err := tufrepo.GenerateKey(filepath.Join(f.keyDir, name+".pem"), tufrepo.AlgEd25519)
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	return k
}

// TestFreezeRecovers: a frozen repository is reported stale, the phone
// keeps its last good set, and a fresh timestamp makes it current again.
func TestFreezeRecovers(t *testing.T) {
	f := newFleet(t, fleetOptions{})
	f.assign(devA, "1.0")
	p := f.newPhone(devA)
	p.mustRefresh()
	f.clock.Add(25 * time.Hour)
	st := p.c.Status()
	if !st.Stale || st.Director.ExpiredRole != metadata.TIMESTAMP || st.Image.ExpiredRole != metadata.TIMESTAMP {
		t.Fatalf("Status after 25 h = %+v, want both stale (timestamp)", st)
	}
	if _, err := p.c.Resolve(devA); !errors.Is(err, ErrStale) {
		t.Fatalf("Resolve(stale) = %v, want ErrStale", err)
	}
	f.refreshTimestamps()
	st = p.mustRefresh()
	if st.Stale {
		t.Fatalf("Status after fresh timestamps = %+v, want fresh", st)
	}
	if a, err := p.c.Resolve(devA); err != nil || a.Firmware == nil {
		t.Fatalf("Resolve = %+v, %v", a, err)
	}
	if got, _ := p.c.SignedTime(); !got.Equal(f.clock.Now()) {
		t.Fatalf("SignedTime = %v, want %v", got, f.clock.Now())
	}
	// Snapshot expiry (a week) is reported as the snapshot's, when only
	// the timestamp is kept fresh.
	f.clock.Add(8 * 24 * time.Hour)
	f.forgeImageTimestamp()
	_, err := p.refresh()
	var ee *ExpiredError
	if !errors.As(err, &ee) || ee.Role != metadata.SNAPSHOT {
		t.Fatalf("Refresh with an expired snapshot = %v, want snapshot expired", err)
	}
}

// TestMixAndMatch: director metadata that verifies but names firmware the
// image repository does not list as the director says is not resolved.
func TestMixAndMatch(t *testing.T) {
	f := newFleet(t, fleetOptions{})
	p := f.newPhone(devA)
	cases := []struct {
		name string
		fw   func() *tufrepo.Firmware
		want error
	}{
		{"not listed", func() *tufrepo.Firmware { fw := *f.fw("1.0"); fw.Name = "evil.raucb"; return &fw }, ErrMixAndMatch},
		{"other hash", func() *tufrepo.Firmware { fw := *f.fw("1.0"); fw.SHA256[0] ^= 1; return &fw }, ErrMixAndMatch},
		{"other length", func() *tufrepo.Firmware { fw := *f.fw("1.0"); fw.Length++; return &fw }, ErrMixAndMatch},
		{"other security version", func() *tufrepo.Firmware { fw := *f.fw("1.0"); fw.SecurityVersion = 9; return &fw }, ErrMixAndMatch},
		{"other compatible", func() *tufrepo.Firmware { fw := *f.fw("1.0"); fw.Compatible = "other-board"; return &fw }, ErrMixAndMatch},
		{"other version", func() *tufrepo.Firmware { fw := *f.fw("1.0"); fw.Version = "9.9"; return &fw }, ErrMixAndMatch},
		{"agreeing", func() *tufrepo.Firmware { return f.fw("2.0") }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := f.assignment("")
			a.Firmware = tc.fw()
			r, err := f.director.Publish(f.devices[devA], devA, a)
			if err != nil {
				t.Fatalf("director Publish: %v", err)
			}
			f.writeDevice(r)
			p.mustRefresh()
			got, err := p.c.Resolve(devA)
			if tc.want == nil {
				if err != nil || got.Firmware == nil || got.Firmware.Version != "2.0" {
					t.Fatalf("Resolve = %+v, %v, want firmware 2.0", got, err)
				}
				return
			}
			wantErr(t, "Resolve", err, tc.want)
		})
	}
}

// TestIncompatibleBoard: firmware both repositories agree on, for another
// board.
func TestIncompatibleBoard(t *testing.T) {
	f := newFleet(t, fleetOptions{})
	f.assign(devA, "1.0")
	p := f.newPhone(devA)
	p.mustRefresh()
	imgF, _ := NewHTTPFetcher(p.http, f.imageURL())
	dirF, _ := NewHTTPFetcher(p.http, f.directorURL(devA))
	p.close()
	db := mustOpenDB(t, p.dbPath)
	c, err := New(db, devA, f.clock.Now, RepoConfig{Root: f.pinned(filepath.Join(f.base, "image", "public")), Fetcher: imgF},
		RepoConfig{Root: f.pinned(f.dirRepo.PublicDir()), Fetcher: dirF}, WithCompatible("another-board"))
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	if _, err := c.Resolve(devA); !errors.Is(err, ErrIncompatible) {
		t.Fatalf("Resolve = %v, want ErrIncompatible", err)
	}
}

// TestRootRotation: the phone follows root rotations of both
// repositories, including rotated timestamp and snapshot keys (whose old
// metadata it then drops, §5.3.11), and root rotations it missed in
// between.
func TestRootRotation(t *testing.T) {
	f := newFleet(t, fleetOptions{})
	f.assign(devA, "1.0")
	p := f.newPhone(devA)
	p.mustRefresh()
	// Image: two rotations, the second replacing the timestamp and
	// snapshot keys.
	newRoot := []*tufrepo.Key{genKey(t, f, "root2-0"), genKey(t, f, "root2-1")}
	if err := f.image.RotateRoot(tufrepo.Rotation{Root: &tufrepo.RoleKeys{Keys: newRoot, Threshold: 2}}, append(append([]*tufrepo.Key{}, f.imageRoot...), newRoot...)); err != nil {
		t.Fatalf("RotateRoot: %v", err)
	}
	f.publishImage()
	newTS, newSnap := genKey(t, f, "ts2"), genKey(t, f, "snap2")
	if err := f.image.RotateRoot(tufrepo.Rotation{Timestamp: &tufrepo.RoleKeys{Keys: []*tufrepo.Key{newTS}, Threshold: 1},
		Snapshot: &tufrepo.RoleKeys{Keys: []*tufrepo.Key{newSnap}, Threshold: 1}}, newRoot); err != nil {
		t.Fatalf("RotateRoot: %v", err)
	}
	f.imageTS, f.imageSnap = []*tufrepo.Key{newTS}, []*tufrepo.Key{newSnap}
	f.publishImage()
	// Director: one rotation of its root key.
	dirRoot2 := genKey(t, f, "dirroot2")
	if err := f.dirRepo.RotateRoot(tufrepo.Rotation{Root: &tufrepo.RoleKeys{Keys: []*tufrepo.Key{dirRoot2}, Threshold: 1}}, append(f.dirRoot, dirRoot2)); err != nil {
		t.Fatalf("director RotateRoot: %v", err)
	}
	if _, err := f.dirRepo.Publish(tufrepo.SigningKeys{}); err != nil {
		t.Fatalf("director Publish: %v", err)
	}
	f.openDirector()
	f.assign(devA, "2.0")

	st, err := p.refresh()
	if err != nil {
		t.Fatalf("Refresh = %v", err)
	}
	if st.Image.Root != 3 || st.Director.Root != 2 || st.Stale {
		t.Fatalf("Status after rotations = image root v%d, director root v%d, stale %v; want 3, 2, fresh", st.Image.Root, st.Director.Root, st.Stale)
	}
	if a, err := p.c.Resolve(devA); err != nil || a.Firmware.Version != "2.0" {
		t.Fatalf("Resolve = %+v, %v", a, err)
	}
	// A new phone pinned to root v1 walks the whole chain.
	q := f.newPhone(devA)
	if st := q.mustRefresh(); st.Image.Root != 3 {
		t.Fatalf("new phone image root v%d, want 3", st.Image.Root)
	}
	// Firmware that pins a newer root than the state file holds: the
	// pinned one wins at once. Root v4 also rotates the timestamp key, so
	// the stored set no longer verifies under it: it is not used until a
	// refresh brings one that does.
	p.close()
	db := mustOpenDB(t, p.dbPath)
	imgF, _ := NewHTTPFetcher(p.http, f.imageURL())
	dirF, _ := NewHTTPFetcher(p.http, f.directorURL(devA))
	dirPinned := f.pinned(f.dirRepo.PublicDir())
	f.clock.Add(time.Minute)
	ts3 := genKey(t, f, "ts3")
	if err := f.image.RotateRoot(tufrepo.Rotation{Timestamp: &tufrepo.RoleKeys{Keys: []*tufrepo.Key{ts3}, Threshold: 1}}, newRoot); err != nil {
		t.Fatalf("RotateRoot: %v", err)
	}
	f.imageTS = []*tufrepo.Key{ts3}
	f.publishImage()
	c, err := New(db, devA, f.clock.Now, RepoConfig{Root: readFile(t, f.imagePath("4.root.json")), Fetcher: imgF}, RepoConfig{Root: dirPinned, Fetcher: dirF})
	if err != nil {
		t.Fatalf("New(newer pinned root) = %v", err)
	}
	if st := c.Status(); st.Image.Root != 4 || st.Image.Targets != 0 || !st.Image.Stale {
		t.Fatalf("Status with a newer pinned root = %+v, want root v4 and no usable set", st.Image)
	}
	if _, err := c.Resolve(devA); !errors.Is(err, ErrNoMetadata) {
		t.Fatalf("Resolve before the refresh = %v, want ErrNoMetadata", err)
	}
	st, err = c.Refresh(context.Background())
	if err != nil || st.Image.Root != 4 || st.Image.Stale {
		t.Fatalf("Refresh = %+v, %v, want root v4 and fresh", st.Image, err)
	}
	if got := dump(t, db)["image/root"]; got != string(readFile(t, f.imagePath("4.root.json"))) {
		t.Fatalf("stored image root is not v4")
	}
	if a, err := c.Resolve(devA); err != nil || a.Firmware == nil {
		t.Fatalf("Resolve after the refresh = %+v, %v", a, err)
	}
}

// TestDamagedState: a state file whose trusted set does not verify (a
// byte of the stored targets changed) is refused when the client is made.
func TestDamagedState(t *testing.T) {
	f := newFleet(t, fleetOptions{})
	f.assign(devA, "1.0")
	p := f.newPhone(devA)
	p.mustRefresh()
	err := p.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUptane).Bucket([]byte(Director))
		v := append([]byte(nil), b.Get(keyTargets)...)
		v[len(v)/2] ^= 1
		return b.Put(keyTargets, v)
	})
	if err != nil {
		t.Fatalf("damage: %v", err)
	}
	if _, err := f.client(p.db, devA, p.http); !errors.Is(err, ErrState) {
		t.Fatalf("New(damaged state) = %v, want ErrState", err)
	}
}
