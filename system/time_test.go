package system

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/agent/store"
	"github.com/hardphone/hardphone/board"
	"github.com/hardphone/hardphone/crypto/timefloor"
	"github.com/hardphone/hardphone/hal/ubootenv"
	"github.com/hardphone/hardphone/test"
	"github.com/hardphone/hardphone/update"
	"github.com/hardphone/hardphone/update/bootchooser"
)

// TestUpdaterChecksAgainstTheTimeFloor: the clock is set back 45 days,
// before the release signer's validity began. Checked against that clock, a
// genuine bundle signed today is refused (and an expired signer would be
// revived: TestClientTimeIsTheFloor in crypto/policy shows that direction);
// checked against the time floor, which has seen today, it installs.
func TestUpdaterChecksAgainstTheTimeFloor(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	woundBack := now.AddDate(0, 0, -45)
	upki := test.NewUpdatePKI(t, filepath.Join(dir, "upki"))
	image := filepath.Join(dir, "rootfs.img")
	content := make([]byte, 1<<20)
	if _, err := rand.Read(content); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(image, content, 0o600); err != nil {
		t.Fatal(err)
	}
	bundle := test.RaucBundle(t, test.RaucBundleSpec{Compatible: "hardphone-test", Version: "2", Format: "verity",
		Images: map[string]string{"rootfs": image}, Cert: upki.Leaf.CertFile, Key: upki.Leaf.KeyFile}, filepath.Join(dir, "v2.raucb"))

	for _, tt := range []struct {
		name      string
		withFloor bool
		wantErr   string
	}{
		{"wound-back clock, no floor", false, "not valid before"},
		{"time floor", true, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rig := t.TempDir()
			b := fileRig(t, rig)
			st, err := store.Open(filepath.Join(rig, "state"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			clock := func() time.Time { return woundBack }
			if tt.withFloor {
				f, err := timefloor.Open(st.DB(), BuildTime(), timefloor.WithClock(clock))
				if err != nil {
					t.Fatal(err)
				}
				if err := f.Advance(now, "registrar certificate"); err != nil {
					t.Fatal(err)
				}
				clock = f.Now
			}
			u, err := NewUpdater(UpdaterParams{Board: b, State: st, Keyring: upki.CA.CertFile, Now: clock})
			if err != nil {
				t.Fatal(err)
			}
			slotB, _ := os.ReadFile(b.Slots[1].Device)
			res, err := u.Install(context.Background(), bundle, update.InstallOptions{})
			if tt.wantErr == "" {
				if err != nil || res.Slot != "B" {
					t.Fatalf("Install() with the time floor = %+v, %v; want slot B", res, err)
				}
				return
			}
			if err == nil || !errors.Is(err, update.ErrBadSignature) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Install() against the wound-back clock = %v, want the signer %s", err, tt.wantErr)
			}
			if got, _ := os.ReadFile(b.Slots[1].Device); string(got) != string(slotB) {
				t.Errorf("a refused install changed slot B")
			}
		})
	}
}

// fileRig is a board of file slots with A booted and primary.
func fileRig(t *testing.T, dir string) *board.Board {
	t.Helper()
	for _, s := range []string{"A", "B"} {
		if err := os.WriteFile(filepath.Join(dir, "slot"+s), make([]byte, 4<<20), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	envFile := filepath.Join(dir, "ubootenv")
	if err := os.WriteFile(envFile, make([]byte, 0x8000), 0o600); err != nil {
		t.Fatal(err)
	}
	env, err := ubootenv.Open(ubootenv.Config{Size: 0x4000, Copies: []ubootenv.Copy{{Path: envFile}, {Path: envFile, Offset: 0x4000}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Init(bootchooser.Initial([]string{"A", "B"}, 3)); err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(dir, "layout.toml")
	if err := os.WriteFile(layout, []byte(fmt.Sprintf("compatible = \"hardphone-test\"\nbooted_slot = \"A\"\n[slots]\nA = %q\nB = %q\n[env]\npath = %q\nredundant_offset = 0x4000\n",
		filepath.Join(dir, "slotA"), filepath.Join(dir, "slotB"), envFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := board.ReadLayout(layout)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
