package ubootenv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardphone/hardphone/test"
)

const testSize = 0x4000

func TestEncodeDecode(t *testing.T) {
	tests := []struct {
		name      string
		vars      map[string]string
		redundant bool
		flags     byte
	}{
		{"empty single", map[string]string{}, false, 0},
		{"empty redundant", map[string]string{}, true, 7},
		{"bootchooser", map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3"}, false, 0},
		{"bootchooser redundant", map[string]string{"BOOT_ORDER": "B A", "BOOT_A_LEFT": "0", "BOOT_B_LEFT": "3"}, true, 255},
		{"value with = and spaces", map[string]string{"bootcmd": "setenv x=1; run y", "e": ""}, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			block, err := Encode(tt.vars, testSize, tt.redundant, tt.flags)
			if err != nil {
				t.Fatalf("Encode() error %v", err)
			}
			if len(block) != testSize {
				t.Fatalf("Encode() length %d, want %d", len(block), testSize)
			}
			got, flags, err := Decode(block, tt.redundant)
			if err != nil {
				t.Fatalf("Decode(Encode()) error %v", err)
			}
			if !maps.Equal(got, tt.vars) || flags != tt.flags {
				t.Errorf("Decode(Encode(%v)) = %v flags %d, want flags %d", tt.vars, got, flags, tt.flags)
			}
		})
	}
}

// TestEncodeLayout pins the exact bytes: sorted pairs, CRC over the data
// area little-endian, the flags byte in front of the data when redundant.
func TestEncodeLayout(t *testing.T) {
	vars := map[string]string{"b": "2", "a": "1"}
	for _, redundant := range []bool{false, true} {
		block, err := Encode(vars, 64, redundant, 0)
		if err != nil {
			t.Fatalf("Encode() error %v", err)
		}
		hdr := 4
		if redundant {
			hdr = 5
		}
		wantData := make([]byte, 64-hdr)
		copy(wantData, "a=1\x00b=2\x00")
		if !bytes.Equal(block[hdr:], wantData) {
			t.Errorf("redundant=%v data = %q, want %q", redundant, block[hdr:], wantData)
		}
		if got, want := binary.LittleEndian.Uint32(block), crc32.ChecksumIEEE(wantData); got != want {
			t.Errorf("redundant=%v crc = %08x, want %08x", redundant, got, want)
		}
	}
}

func TestEncodeRefuses(t *testing.T) {
	tests := []struct {
		name string
		vars map[string]string
		size int
		want error
	}{
		{"empty name", map[string]string{"": "x"}, testSize, errBadName},
		{"name with =", map[string]string{"a=b": "x"}, testSize, errBadName},
		{"NUL in value", map[string]string{"a": "x\x00y"}, testSize, errBadValue},
		{"too large", map[string]string{"a": strings.Repeat("x", 100)}, 64, ErrTooLarge},
		{"one byte too many", map[string]string{"a": strings.Repeat("x", 64-4-3)}, 64, ErrTooLarge},
		{"tiny block", map[string]string{}, 4, errShortBlock},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Encode(tt.vars, tt.size, false, 0); !errors.Is(err, tt.want) {
				t.Errorf("Encode() error %v, want %v", err, tt.want)
			}
		})
	}
	// The largest value that fits: "a=" + value + NUL + terminating NUL.
	if _, err := Encode(map[string]string{"a": strings.Repeat("x", 64-4-4)}, 64, false, 0); err != nil {
		t.Errorf("Encode(largest fitting) error %v", err)
	}
}

func TestDecodeRules(t *testing.T) {
	mk := func(data string) []byte {
		block := make([]byte, 32)
		copy(block[4:], data)
		binary.LittleEndian.PutUint32(block, crc32.ChecksumIEEE(block[4:]))
		return block
	}
	tests := []struct {
		name    string
		block   []byte
		want    map[string]string
		wantErr error
	}{
		{"pairs", mk("a=1\x00b=\x00"), map[string]string{"a": "1", "b": ""}, nil},
		{"no = skipped", mk("junk\x00a=1\x00"), map[string]string{"a": "1"}, nil},
		{"empty name skipped", mk("=x\x00a=1\x00"), map[string]string{"a": "1"}, nil},
		{"last wins", mk("a=1\x00a=2\x00"), map[string]string{"a": "2"}, nil},
		{"stops at empty pair", mk("a=1\x00\x00b=2\x00"), map[string]string{"a": "1"}, nil},
		{"unterminated", mk(strings.Repeat("x", 28)), nil, errUnterminated},
		{"bad crc", append([]byte{1, 2, 3, 4}, make([]byte, 28)...), nil, ErrNoValidCopy},
		{"short", []byte{0, 0, 0}, nil, errShortBlock},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := Decode(tt.block, false)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Decode() error %v, want %v", err, tt.wantErr)
			}
			if err == nil && !maps.Equal(got, tt.want) {
				t.Errorf("Decode() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewer(t *testing.T) {
	tests := []struct {
		a, b byte
		want bool
	}{
		{2, 1, true}, {1, 2, false}, {1, 1, false}, {0, 255, true}, {255, 0, false}, {255, 254, true},
	}
	for _, tt := range tests {
		if got := newer(tt.a, tt.b); got != tt.want {
			t.Errorf("newer(%d, %d) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// newEnvFile creates a file holding two zeroed copies and returns a config
// for it (redundant or not).
func newEnvFile(t *testing.T, redundant bool) Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "env.img")
	if err := os.WriteFile(path, make([]byte, 2*testSize+4096), 0o600); err != nil {
		t.Fatalf("create env file: %v", err)
	}
	cfg := Config{Size: testSize, Copies: []Copy{{Path: path, Offset: 4096}}}
	if redundant {
		cfg.Copies = []Copy{{Path: path, Offset: 0}, {Path: path, Offset: testSize}}
	}
	return cfg
}

func TestStoreRedundantAlternates(t *testing.T) {
	cfg := newEnvFile(t, true)
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open() error %v", err)
	}
	if _, err := s.Load(); !errors.Is(err, ErrNoValidCopy) {
		t.Fatalf("Load(blank) error %v, want ErrNoValidCopy", err)
	}
	if err := s.Set(map[string]string{"a": "1"}); !errors.Is(err, ErrNoValidCopy) {
		t.Fatalf("Set(blank) error %v, want ErrNoValidCopy", err)
	}
	if err := s.Init(map[string]string{"BOOT_ORDER": "A B"}); err != nil {
		t.Fatalf("Init() error %v", err)
	}
	for i := 1; i <= 300; i++ {
		st, err := s.read()
		if err != nil {
			t.Fatalf("read() error %v", err)
		}
		if err := s.Set(map[string]string{"n": string(rune('a' + i%26))}); err != nil {
			t.Fatalf("Set(%d) error %v", i, err)
		}
		after, err := s.read()
		if err != nil {
			t.Fatalf("read() error %v", err)
		}
		if after.current == st.current {
			t.Fatalf("Set(%d) wrote copy %d, the current one", i, st.current)
		}
		if after.flags != st.flags+1 {
			t.Fatalf("Set(%d) flags = %d, want %d", i, after.flags, st.flags+1)
		}
		if after.vars["BOOT_ORDER"] != "A B" {
			t.Fatalf("Set(%d) lost BOOT_ORDER: %v", i, after.vars)
		}
	}
}

// TestStoreTornWrite proves the power-cut property: a partly written
// non-current copy (any prefix of the new block over the old bytes) never
// becomes current, so the previous environment stays.
func TestStoreTornWrite(t *testing.T) {
	cfg := newEnvFile(t, true)
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open() error %v", err)
	}
	old := map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3"}
	if err := s.Init(old); err != nil {
		t.Fatalf("Init() error %v", err)
	}
	st, err := s.read()
	if err != nil {
		t.Fatalf("read() error %v", err)
	}
	next := maps.Clone(old)
	next["BOOT_ORDER"] = "B A"
	newBlock, err := Encode(next, testSize, true, st.flags+1)
	if err != nil {
		t.Fatalf("Encode() error %v", err)
	}
	target := cfg.Copies[1-st.current]
	orig, err := readBlock(target, testSize)
	if err != nil {
		t.Fatalf("readBlock() error %v", err)
	}
	lastDiff := 0
	for i := range newBlock {
		if newBlock[i] != orig[i] {
			lastDiff = i
		}
	}
	// Every cut that leaves at least one new byte unwritten: the CRC at the
	// front (written first) then does not match the data behind it.
	for _, cut := range []int{1, 3, 4, 5, 6, lastDiff / 2, lastDiff} {
		torn := append(append([]byte(nil), newBlock[:cut]...), orig[cut:]...)
		if err := writeBlock(target, torn); err != nil {
			t.Fatalf("writeBlock() error %v", err)
		}
		got, err := s.Load()
		if err != nil {
			t.Fatalf("Load() after a cut at %d: error %v", cut, err)
		}
		if !maps.Equal(got, old) {
			t.Errorf("Load() after a cut at %d = %v, want the old %v", cut, got, old)
		}
	}
	if err := writeBlock(target, newBlock); err != nil {
		t.Fatalf("writeBlock() error %v", err)
	}
	if got, err := s.Load(); err != nil || !maps.Equal(got, next) {
		t.Errorf("Load() after the full write = %v, %v, want %v", got, err, next)
	}
}

func TestStoreSetNoChangeWritesNothing(t *testing.T) {
	cfg := newEnvFile(t, true)
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open() error %v", err)
	}
	if err := s.Init(map[string]string{"a": "1"}); err != nil {
		t.Fatalf("Init() error %v", err)
	}
	before, err := os.ReadFile(cfg.Copies[0].Path)
	if err != nil {
		t.Fatalf("read env file: %v", err)
	}
	if err := s.Set(map[string]string{"a": "1"}); err != nil {
		t.Fatalf("Set() error %v", err)
	}
	after, err := os.ReadFile(cfg.Copies[0].Path)
	if err != nil {
		t.Fatalf("read env file: %v", err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("Set(same value) changed the file")
	}
}

func TestConfigRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "small")
	if err := os.WriteFile(path, make([]byte, 100), 0o600); err != nil {
		t.Fatalf("create: %v", err)
	}
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no copies", Config{Size: testSize}},
		{"three copies", Config{Size: 64, Copies: []Copy{{path, 0}, {path, 64}, {path, 128}}}},
		{"overlap", Config{Size: 64, Copies: []Copy{{path, 0}, {path, 32}}}},
		{"file too small", Config{Size: testSize, Copies: []Copy{{path, 0}}}},
		{"negative offset", Config{Size: 64, Copies: []Copy{{path, -1}}}},
		{"missing file", Config{Size: 64, Copies: []Copy{{path + ".none", 0}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Open(tt.cfg); err == nil {
				t.Errorf("Open(%+v) succeeded, want an error", tt.cfg)
			}
		})
	}
}

func TestParseFWEnvConfig(t *testing.T) {
	c, err := ParseFWEnvConfig(strings.NewReader("# comment\n/dev/vda5 0x0 0x4000 0x1000\n/dev/vda5 0x4000 0x4000\n"))
	if err != nil {
		t.Fatalf("ParseFWEnvConfig() error %v", err)
	}
	if c.Size != 0x4000 || len(c.Copies) != 2 || c.Copies[1].Offset != 0x4000 {
		t.Errorf("ParseFWEnvConfig() = %+v", c)
	}
	if _, err := ParseFWEnvConfig(strings.NewReader("/x 0 0x4000\n/x 0x4000 0x2000\n")); err == nil {
		t.Errorf("ParseFWEnvConfig(different sizes) succeeded, want an error")
	}
	if _, err := ParseFWEnvConfig(strings.NewReader("/x zero 0x4000\n")); err == nil {
		t.Errorf("ParseFWEnvConfig(bad offset) succeeded, want an error")
	}
}

// fwTool runs fw_printenv or fw_setenv from libubootenv-tool against cfg.
func fwTool(t *testing.T, cfg Config, tool string, args ...string) string {
	t.Helper()
	bin := test.RequireTool(t, tool)
	dir := t.TempDir()
	conf := filepath.Join(dir, "fw_env.config")
	if err := os.WriteFile(conf, []byte(cfg.FWEnvConfig()), 0o600); err != nil {
		t.Fatalf("write fw_env.config: %v", err)
	}
	cmd := exec.Command(bin, append([]string{"-c", conf}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\nstdout: %s\nstderr: %s", tool, args, err, out.String(), errOut.String())
	}
	return out.String()
}

func parsePrintenv(out string) map[string]string {
	vars := map[string]string{}
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if name, value, ok := strings.Cut(line, "="); ok {
			vars[name] = value
		}
	}
	return vars
}

// TestFWPrintenvReadsOurs and TestWeReadFWSetenv cross-check the codec with
// Debian's libubootenv-tool both ways, single and redundant.
func TestFWPrintenvReadsOurs(t *testing.T) {
	for _, redundant := range []bool{false, true} {
		t.Run(map[bool]string{false: "single", true: "redundant"}[redundant], func(t *testing.T) {
			cfg := newEnvFile(t, redundant)
			s, err := Open(cfg)
			if err != nil {
				t.Fatalf("Open() error %v", err)
			}
			vars := map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3", "bootcmd": "run x; run y"}
			if err := s.Init(vars); err != nil {
				t.Fatalf("Init() error %v", err)
			}
			// Several saves so that the current copy alternates and the
			// flags byte matters.
			for _, order := range []string{"B A", "A B", "B A"} {
				vars["BOOT_ORDER"] = order
				if err := s.Set(map[string]string{"BOOT_ORDER": order}); err != nil {
					t.Fatalf("Set() error %v", err)
				}
				got := parsePrintenv(fwTool(t, cfg, "fw_printenv"))
				if !maps.Equal(got, vars) {
					t.Fatalf("fw_printenv after Set(BOOT_ORDER=%s) = %v, want %v", order, got, vars)
				}
			}
		})
	}
}

func TestWeReadFWSetenv(t *testing.T) {
	for _, redundant := range []bool{false, true} {
		t.Run(map[bool]string{false: "single", true: "redundant"}[redundant], func(t *testing.T) {
			cfg := newEnvFile(t, redundant)
			s, err := Open(cfg)
			if err != nil {
				t.Fatalf("Open() error %v", err)
			}
			if err := s.Init(map[string]string{"BOOT_ORDER": "A B"}); err != nil {
				t.Fatalf("Init() error %v", err)
			}
			want := map[string]string{"BOOT_ORDER": "A B"}
			for i, kv := range [][2]string{{"BOOT_A_LEFT", "2"}, {"BOOT_ORDER", "B A"}, {"BOOT_B_LEFT", "3"}, {"BOOT_A_LEFT", "0"}} {
				fwTool(t, cfg, "fw_setenv", kv[0], kv[1])
				want[kv[0]] = kv[1]
				got, err := s.Load()
				if err != nil {
					t.Fatalf("Load() after fw_setenv %d: %v", i, err)
				}
				if !maps.Equal(got, want) {
					t.Fatalf("Load() after fw_setenv %s=%s = %v, want %v", kv[0], kv[1], got, want)
				}
				// And our write on top of theirs stays readable by them.
				if err := s.Set(map[string]string{"ours": kv[1]}); err != nil {
					t.Fatalf("Set() error %v", err)
				}
				want["ours"] = kv[1]
				if got := parsePrintenv(fwTool(t, cfg, "fw_printenv")); !maps.Equal(got, want) {
					t.Fatalf("fw_printenv = %v, want %v", got, want)
				}
			}
		})
	}
}

// TestMkenvimageReadable checks a block made by U-Boot's own mkenvimage.
func TestMkenvimageReadable(t *testing.T) {
	bin := test.RequireTool(t, "mkenvimage")
	dir := t.TempDir()
	in := filepath.Join(dir, "env.txt")
	if err := os.WriteFile(in, []byte("BOOT_ORDER=A B\nBOOT_A_LEFT=3\nbootdelay=0\n"), 0o600); err != nil {
		t.Fatalf("write: %v", err)
	}
	for _, redundant := range []bool{false, true} {
		out := filepath.Join(dir, "env.bin")
		args := []string{"-s", "0x4000", "-o", out, in}
		if redundant {
			args = append([]string{"-r"}, args...)
		}
		if b, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("mkenvimage: %v: %s", err, b)
		}
		block, err := os.ReadFile(out)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		got, _, err := Decode(block, redundant)
		if err != nil {
			t.Fatalf("Decode(mkenvimage -r=%v) error %v", redundant, err)
		}
		want := map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "bootdelay": "0"}
		if !maps.Equal(got, want) {
			t.Errorf("Decode(mkenvimage) = %v, want %v", got, want)
		}
	}
}

// TestStoreIsBootEnv pins the method set update.BootEnv expects (declared
// there, by the consumer; repeated here without importing update).
func TestStoreIsBootEnv(t *testing.T) {
	var _ interface {
		Get(names ...string) (map[string]string, error)
		Set(vars map[string]string) error
	} = (*Store)(nil)
}
