package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/test"
)

// TestREADMEFleet runs every command of the README's fleet section as
// written, in a world made for them: the working directory holds
// tpm-vendor-root.pem (a test TPM manufacturer) and manifest.csv (the
// phone's EK hash), a swtpm manufactured by that vendor stands for
// /dev/tpmrm0, fleet.example.com:8443 is the hpfleet the section starts,
// and hardphone is on PATH for the station. A command the section gains
// that this world cannot run fails the test.
func TestREADMEFleet(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	sec := regexp.MustCompile("(?s)## The fleet: .*?```sh\n(.*?)```").FindSubmatch(b)
	if sec == nil {
		t.Fatalf("README has no fleet section with an sh block")
	}
	var lines []string
	for _, l := range strings.Split(string(sec[1]), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) < 8 {
		t.Fatalf("fleet section has %d commands", len(lines))
	}

	// Everything that needs the package directory first.
	hpfleet := test.BuildHPFleet(t)
	bindir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bindir, "hardphone"), "../hardphone")
	build.Env = test.HostBuildEnv()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build hardphone: %v\n%s", err, out)
	}
	t.Setenv("PATH", bindir+string(os.PathListSeparator)+os.Getenv("PATH"))
	work := t.TempDir()
	t.Chdir(work)
	mfg := test.NewManufacturerCA(t, filepath.Join(t.TempDir(), "mfg"))
	copyFileT(t, mfg.CertFile, filepath.Join(work, "tpm-vendor-root.pem"))
	sw := test.StartSWTPM(t, test.SWTPMWithEK(mfg))
	write(t, filepath.Join(work, "manifest.csv"), fmt.Sprintf("serial,ek_sha256,model,group\nHP1-000001,%x,hp-desk-1,floor-1\n", sha256.Sum256(sw.EKCertECCP256)))
	state, data := filepath.Join(t.TempDir(), "state"), filepath.Join(t.TempDir(), "hpfleet")
	subst := strings.NewReplacer("/dev/tpmrm0", sw.Spec, "/data/hardphone", state, "/var/lib/hpfleet", data)
	var srv *test.HPFleet
	deviceID := ""
	for _, line := range lines {
		line = subst.Replace(line)
		if srv != nil {
			line = strings.ReplaceAll(line, "https://fleet.example.com:8443", srv.URL+" --server-name fleet.example.com")
		}
		line = strings.ReplaceAll(line, "DEVICE-ID", deviceID)
		args, err := splitWords(line)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		switch args[0] {
		case "hpfleet":
			// hpfleet serve ... --listen :8443: the harness picks the port.
			var rest []string
			for i := 2; i < len(args); i++ {
				if args[i] == "--listen" {
					i++
					continue
				}
				// The harness runs hpfleet in a directory of its own:
				// files named relative to ours become absolute.
				a := args[i]
				if _, err := os.Stat(a); err == nil && !filepath.IsAbs(a) {
					a = filepath.Join(work, a)
				}
				rest = append(rest, a)
			}
			srv = test.StartHPFleet(t, hpfleet, filepath.Join(work, "fleet-pki", ca.ServerCACertFile), "fleet.example.com", rest...)
			t.Logf("ok (serving): %s", line)
			continue
		case "hpctl":
		default:
			t.Fatalf("README fleet command %q: this test runs hpctl and hpfleet only", line)
		}
		so, se, code := hpctl(t, args[1:]...)
		if code != 0 {
			t.Fatalf("README command failed: %s\nexit %d\n%s%s", line, code, so, se)
		}
		if args[1] == "enrol" {
			m := regexp.MustCompile(`device (dev-[0-9a-f]{32})`).FindStringSubmatch(so)
			if m == nil {
				t.Fatalf("hpctl enrol printed no device ID: %s", so)
			}
			deviceID = m[1]
		}
		t.Logf("ok: %s\n%s", line, so)
	}
	if srv == nil || deviceID == "" {
		t.Fatalf("the fleet section neither started hpfleet nor enrolled a phone")
	}
}

// splitWords splits on spaces, keeping double-quoted words whole.
func splitWords(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	quoted, in := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, in = !quoted, true
		case r == ' ' && !quoted:
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("unbalanced quote in %q", s)
	}
	if in {
		out = append(out, cur.String())
	}
	return out, nil
}

func copyFileT(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
