package timefloor

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openDB(t *testing.T, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// TestWoundBackClock: a clock set back before the floor reads as the floor;
// the floor survives a restart and never comes down.
func TestWoundBackClock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	build := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	seen := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	past := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	db := openDB(t, path)
	f, err := Open(db, build, WithClock(func() time.Time { return past }))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Now(); !got.Equal(build) {
		t.Fatalf("Now() with the clock in 2024 = %v, want the build time %v", got, build)
	}
	if err := f.Advance(seen, "registrar certificate"); err != nil {
		t.Fatal(err)
	}
	if err := f.Advance(seen.Add(-time.Hour), "older"); err != nil {
		t.Fatal(err)
	}
	if got, src := f.Floor(); !got.Equal(seen) || src != "registrar certificate" {
		t.Fatalf("Floor() = %v %q, want %v from the registrar certificate", got, src, seen)
	}
	if d := f.Behind(); d != seen.Sub(past) {
		t.Errorf("Behind() = %v, want %v", d, seen.Sub(past))
	}
	db.Close()
	db = openDB(t, path)
	defer db.Close()
	got, src, err := Read(db)
	if err != nil || !got.Equal(seen) || src != "registrar certificate" {
		t.Fatalf("Read() after restart = %v %q %v, want %v", got, src, err, seen)
	}
	f, err = Open(db, build, WithClock(func() time.Time { return past }))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Now(); !got.Equal(seen) {
		t.Fatalf("Now() after restart = %v, want the floor %v", got, seen)
	}
	// A clock ahead of the floor is the clock.
	ahead := seen.Add(48 * time.Hour)
	f2, err := Open(db, build, WithClock(func() time.Time { return ahead }))
	if err != nil {
		t.Fatal(err)
	}
	if got := f2.Now(); !got.Equal(ahead) {
		t.Errorf("Now() with a clock past the floor = %v, want %v", got, ahead)
	}
}

func TestNoStateFile(t *testing.T) {
	build := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	f, err := Open(nil, build, WithClock(func() time.Time { return time.Unix(0, 0) }))
	if err != nil {
		t.Fatal(err)
	}
	if !f.Now().Equal(build) {
		t.Fatalf("Now() = %v, want the build time", f.Now())
	}
	if err := f.Advance(build.Add(time.Hour), "x"); err != nil || !f.Now().Equal(build.Add(time.Hour)) {
		t.Fatalf("Advance without a state file = %v, Now %v", err, f.Now())
	}
}

func TestReadEmpty(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "state.db"))
	defer db.Close()
	if _, _, err := Read(db); err != ErrNoState {
		t.Fatalf("Read() on a new state file = %v, want ErrNoState", err)
	}
}
