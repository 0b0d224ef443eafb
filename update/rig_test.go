package update

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/hal/ubootenv"
	"github.com/hardphone/hardphone/test"
	"github.com/hardphone/hardphone/update/bundle"
)

const (
	rigCompatible = "hardphone-test-board"
	envSize       = 0x4000
)

var (
	pkiOnce sync.Once
	pkiVal  *test.UpdatePKI
)

// sharedPKI returns one PKI for the package (key generation is slow next to
// a small test).
func sharedPKI(t testing.TB) *test.UpdatePKI {
	t.Helper()
	pkiOnce.Do(func() {
		dir, err := os.MkdirTemp("", "update-pki-")
		if err != nil {
			t.Fatalf("pki dir: %v", err)
		}
		pkiVal = test.NewUpdatePKI(t, dir)
	})
	return pkiVal
}

// rigFiles is everything a device has that the updater touches, as files
// in one directory; it is written as JSON for the power-cut child.
type rigFiles struct {
	Dir      string `json:"dir"`
	SlotA    string `json:"slot_a"`
	SlotB    string `json:"slot_b"`
	Env      string `json:"env"`
	Cmdline  string `json:"cmdline"`
	BootID   string `json:"boot_id"`
	DB       string `json:"db"`
	Keyring  string `json:"keyring"`
	SlotSize int    `json:"slot_size"`
}

// rig is a simulated device: two file slots, a redundant fw_env block, a
// kernel command line and boot id written by the simulated bootloader, and
// the updater's database.
type rig struct {
	t testing.TB
	rigFiles
	db  *bbolt.DB
	env *ubootenv.Store
}

func newRig(t testing.TB, slotSize int) *rig {
	t.Helper()
	dir := t.TempDir()
	pki := sharedPKI(t)
	r := &rig{t: t, rigFiles: rigFiles{Dir: dir, SlotA: filepath.Join(dir, "slotA"), SlotB: filepath.Join(dir, "slotB"),
		Env: filepath.Join(dir, "ubootenv"), Cmdline: filepath.Join(dir, "cmdline"), BootID: filepath.Join(dir, "boot_id"),
		DB: filepath.Join(dir, "state.db"), Keyring: pki.CA.CertFile, SlotSize: slotSize}}
	for _, p := range []string{r.SlotA, r.SlotB} {
		writeFile(t, p, randomBytes(t, slotSize))
	}
	writeFile(t, r.Env, make([]byte, 2*envSize))
	st := r.store()
	if err := st.Init(map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3",
		"bootcmd": "run bootchooser"}); err != nil {
		t.Fatalf("init env: %v", err)
	}
	writeFile(t, r.Cmdline, []byte("console=ttyAMA0 root=/dev/vda2 rauc.slot=A\n"))
	writeFile(t, r.BootID, []byte(newBootID(t)))
	return r
}

func (r *rig) store() *ubootenv.Store {
	r.t.Helper()
	if r.env == nil {
		st, err := ubootenv.Open(ubootenv.Config{Size: envSize, Copies: []ubootenv.Copy{{Path: r.Env, Offset: 0}, {Path: r.Env, Offset: envSize}}})
		if err != nil {
			r.t.Fatalf("ubootenv.Open() error %v", err)
		}
		r.env = st
	}
	return r.env
}

func (f rigFiles) config() Config {
	return Config{Compatible: rigCompatible, Slots: []Slot{{"A", f.SlotA}, {"B", f.SlotB}},
		CmdlinePath: f.Cmdline, BootIDPath: f.BootID, WorkDir: f.Dir}
}

// updater opens the database (once) and returns a fresh Updater on it.
func (r *rig) updater(opts ...Option) *Updater {
	r.t.Helper()
	if r.db == nil {
		db, err := bbolt.Open(r.DB, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
		if err != nil {
			r.t.Fatalf("bbolt.Open() error %v", err)
		}
		r.db = db
		r.t.Cleanup(func() { r.closeDB() })
	}
	kr, err := bundle.LoadKeyring(r.Keyring)
	if err != nil {
		r.t.Fatalf("LoadKeyring() error %v", err)
	}
	u, err := New(r.config(), r.db, r.store(), kr, opts...)
	if err != nil {
		r.t.Fatalf("New() error %v", err)
	}
	return u
}

func (r *rig) closeDB() {
	if r.db != nil {
		r.db.Close()
		r.db = nil
	}
}

// snapshot is every byte the updater must not change on a refusal.
type snapshot struct{ a, b, env []byte }

func (r *rig) snapshot() snapshot {
	r.t.Helper()
	return snapshot{readFile(r.t, r.SlotA), readFile(r.t, r.SlotB), readFile(r.t, r.Env)}
}

func (s snapshot) diff(o snapshot) string {
	var d []string
	if !bytes.Equal(s.a, o.a) {
		d = append(d, "slot A")
	}
	if !bytes.Equal(s.b, o.b) {
		d = append(d, "slot B")
	}
	if !bytes.Equal(s.env, o.env) {
		d = append(d, "boot env")
	}
	return strings.Join(d, ", ")
}

// vars reads the boot environment.
func (r *rig) vars() map[string]string {
	r.t.Helper()
	v, err := r.store().Load()
	if err != nil {
		r.t.Fatalf("load env: %v", err)
	}
	return v
}

// boot is the simulated bootloader. It follows RAUC's U-Boot example
// script: default the variables if unset; for each slot in BOOT_ORDER take
// the first with BOOT_<slot>_LEFT > 0, decrement it, saveenv, and boot it
// with rauc.slot=<slot>; if none is left, set every counter back to 3,
// saveenv and reset (here: try once more). It returns the booted slot and
// gives the "kernel" a new boot id and command line.
func (r *rig) boot() string {
	r.t.Helper()
	st := r.store()
	for try := 0; try < 2; try++ {
		v := r.vars()
		set := map[string]string{}
		if v["BOOT_ORDER"] == "" {
			set["BOOT_ORDER"] = "A B"
		}
		for _, s := range []string{"A", "B"} {
			if v["BOOT_"+s+"_LEFT"] == "" {
				set["BOOT_"+s+"_LEFT"] = "3"
			}
		}
		if len(set) > 0 {
			if err := st.Set(set); err != nil {
				r.t.Fatalf("bootloader saveenv: %v", err)
			}
			v = r.vars()
		}
		for _, s := range strings.Fields(v["BOOT_ORDER"]) {
			left, err := strconv.Atoi(v["BOOT_"+s+"_LEFT"])
			if err != nil || left <= 0 {
				continue
			}
			if err := st.Set(map[string]string{"BOOT_" + s + "_LEFT": strconv.Itoa(left - 1)}); err != nil {
				r.t.Fatalf("bootloader saveenv: %v", err)
			}
			writeFile(r.t, r.Cmdline, []byte("console=ttyAMA0 rauc.slot="+s+"\n"))
			writeFile(r.t, r.BootID, []byte(newBootID(r.t)))
			return s
		}
		if err := st.Set(map[string]string{"BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3"}); err != nil {
			r.t.Fatalf("bootloader saveenv: %v", err)
		}
	}
	r.t.Fatalf("bootloader found no slot to boot after a reset")
	return ""
}

// bundleSpec describes a bundle our writer makes for the rig.
type bundleSpec struct {
	compatible string
	version    string
	secver     uint64
	signer     test.CertKey
	image      []byte
}

func (r *rig) ownBundle(s bundleSpec) string {
	r.t.Helper()
	if s.compatible == "" {
		s.compatible = rigCompatible
	}
	dir, err := os.MkdirTemp(r.Dir, "bundle-")
	if err != nil {
		r.t.Fatalf("mkdir: %v", err)
	}
	img := filepath.Join(dir, "rootfs.img")
	writeFile(r.t, img, s.image)
	m := &bundle.Manifest{Compatible: s.compatible, Version: s.version,
		Images:          []bundle.Image{{SlotClass: "rootfs", Filename: "rootfs.img"}},
		SecurityVersion: s.secver, HasSecurityVersion: true}
	out := filepath.Join(dir, "update.raucb")
	signer := bundle.Signer{Cert: s.signer.Cert, Key: s.signer.Key}
	if err := bundle.Create(context.Background(), out, m, map[string]string{"rootfs.img": img}, signer); err != nil {
		r.t.Fatalf("bundle.Create() error %v", err)
	}
	return out
}

func (r *rig) slotHas(path string, image []byte) bool {
	got := readFile(r.t, path)
	return bytes.Equal(got[:len(image)], image)
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("rand: %v", err)
	}
	return b
}

func newBootID(t testing.TB) string {
	b := randomBytes(t, 16)
	return fmt.Sprintf("%x-%x-%x-%x-%x\n", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatalf("write %s: %v", path, err)
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

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatalf("json: %v", err)
	}
	return string(b)
}
