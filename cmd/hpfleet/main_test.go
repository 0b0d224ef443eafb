package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardphone/hardphone/fleet/ca"
)

func hpfleet(args ...string) (string, string, int) {
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return out.String(), errOut.String(), code
}

// TestServeRefusals: the server does not start on a configuration that
// would be unsafe, and says why.
func TestServeRefusals(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if err := ca.Init(dir, ca.InitOptions{Organization: "T", ServerIPs: []net.IP{net.IPv4(127, 0, 0, 1)}, AdminName: "a"}); err != nil {
		t.Fatalf("Init: %v", err)
	}
	data := filepath.Join(t.TempDir(), "data")
	mfg := filepath.Join(dir, ca.AdminCACertFile) // any certificate will do to get past the flags
	tests := []struct {
		name  string
		setup func()
		args  []string
		code  int
		want  string
	}{
		{"no store", nil, []string{"serve", "--ca-dir", dir, "--manufacturer-ca", mfg}, 2, "exactly one of --data and --postgres"},
		{"two stores", nil, []string{"serve", "--data", data, "--postgres", "x", "--ca-dir", dir, "--manufacturer-ca", mfg}, 2, "exactly one"},
		{"no manufacturer", nil, []string{"serve", "--data", data, "--ca-dir", dir}, 2, "would accept no TPM"},
		{"CA key readable by others", func() { os.Chmod(filepath.Join(dir, ca.DeviceCAKeyFile), 0o644) },
			[]string{"serve", "--data", data, "--ca-dir", dir, "--manufacturer-ca", mfg, "--listen", "127.0.0.1:0"}, 1, "readable by group or others"},
		{"server key readable by others", func() {
			os.Chmod(filepath.Join(dir, ca.DeviceCAKeyFile), 0o600)
			os.Chmod(filepath.Join(dir, ca.ServerKeyFile), 0o640)
		}, []string{"serve", "--data", data, "--ca-dir", dir, "--manufacturer-ca", mfg, "--listen", "127.0.0.1:0"}, 1, "readable by group or others"},
		{"admin CA is the device CA", func() { os.Chmod(filepath.Join(dir, ca.ServerKeyFile), 0o600) },
			[]string{"serve", "--data", data, "--ca-dir", dir, "--manufacturer-ca", mfg, "--admin-ca", filepath.Join(dir, ca.DeviceCACertFile), "--listen", "127.0.0.1:0"}, 1, "device CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			so, se, code := hpfleet(tt.args...)
			if code != tt.code || !strings.Contains(se, tt.want) {
				t.Fatalf("hpfleet %v: exit %d\n%s%s\nwant exit %d and %q", tt.args, code, so, se, tt.code, tt.want)
			}
			if strings.Contains(se, "PRIVATE KEY") {
				t.Fatalf("key material in the output:\n%s", se)
			}
		})
	}
	if so, _, code := hpfleet("--help"); code != 0 || !strings.Contains(so, "serve") {
		t.Fatalf("hpfleet --help: exit %d %s", code, so)
	}
	if so, _, code := hpfleet("serve", "--help"); code != 0 || !strings.Contains(so, "--manufacturer-ca") && !strings.Contains(so, "-manufacturer-ca") {
		t.Fatalf("hpfleet serve --help: exit %d %s", code, so)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
