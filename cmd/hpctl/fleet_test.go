package main

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/test"
)

// TestFleetCommands walks an admin's day with the real programs: hpctl
// fleet init, hpfleet serving that PKI, a vendor manifest imported, a
// phone (swtpm with EK certificates from a test manufacturer) enrolled by
// the factory station (hpctl enrol driving its TPM with the phone's own
// hardphone tool), the inventory, one device shown, a setting, revoke
// (the CRL lists it) and retire.
func TestFleetCommands(t *testing.T) {
	dir := t.TempDir()
	pki := filepath.Join(dir, "pki")
	so, se, code := hpctl(t, "fleet", "init", pki, "--org", "Acme Phones", "--server-name", "fleet.test", "--server-ip", "127.0.0.1")
	if code != 0 {
		t.Fatalf("fleet init: exit %d\n%s%s", code, so, se)
	}
	if st, err := os.Stat(filepath.Join(pki, ca.DeviceCAKeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("device CA key mode %v, %v, want 0600", st.Mode(), err)
	}
	if _, _, code := hpctl(t, "fleet", "init", pki, "--org", "x", "--server-name", "y"); code == 0 {
		t.Fatalf("second fleet init over the same directory succeeded")
	}
	mfg := test.NewManufacturerCA(t, filepath.Join(dir, "mfg"))
	srv := test.StartHPFleet(t, test.BuildHPFleet(t), filepath.Join(pki, ca.ServerCACertFile), "fleet.test",
		"--data", filepath.Join(dir, "data"), "--ca-dir", pki, "--manufacturer-ca", mfg.CertFile)
	admin := []string{"--server", srv.URL, "--server-name", "fleet.test", "--pki", pki}

	sw := test.StartSWTPM(t, test.SWTPMWithEK(mfg))
	ek := fmt.Sprintf("%x", sha256.Sum256(sw.EKCertECCP256))
	csvFile := filepath.Join(dir, "manifest.csv")
	write(t, csvFile, "serial,model,group,ek_sha256\nHP1-000042,hp-desk-1,floor-1,"+ek+"\n")
	jsonFile := filepath.Join(dir, "manifest.json")
	write(t, jsonFile, `{"devices":[{"serial":"HP1-000043","ek_cert_sha256":"`+strings.Repeat("ab", 32)+`","model":"hp-desk-1","group":"floor-2"}]}`)
	for _, f := range []string{csvFile, jsonFile} {
		so, se, code := hpctl(t, append([]string{"fleet", "device", "import", f}, admin...)...)
		if code != 0 || !strings.Contains(so, "1 added") {
			t.Fatalf("fleet device import %s: exit %d\n%s%s", f, code, so, se)
		}
	}
	badFile := filepath.Join(dir, "bad.csv")
	write(t, badFile, "serial,model,group,ek_sha256\nHP1-000044,hp-desk-1,floor-1,nothex\n")
	if so, se, code := hpctl(t, append([]string{"fleet", "device", "import", badFile}, admin...)...); code == 0 {
		t.Fatalf("import of a bad manifest: exit 0\n%s%s", so, se)
	}

	// The factory station enrols the phone.
	hardphone := filepath.Join(dir, "hardphone")
	build := exec.Command("go", "build", "-o", hardphone, "../hardphone")
	build.Env = test.HostBuildEnv()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build hardphone: %v\n%s", err, out)
	}
	state := filepath.Join(dir, "phone-state")
	station := []string{"enrol", "--server", srv.URL, "--server-name", "fleet.test", "--server-ca", filepath.Join(pki, ca.ServerCACertFile),
		"--device-ca", filepath.Join(pki, ca.DeviceCACertFile), "--tpm", sw.Spec, "--state-dir", state, "--hardphone", hardphone}
	so, se, code = hpctl(t, station...)
	if code != 0 {
		t.Fatalf("hpctl enrol: exit %d\n%s%s\n--- hpfleet ---\n%s", code, so, se, srv.LogTail())
	}
	id := regexp.MustCompile(`device (dev-[0-9a-f]{32}) serial HP1-000042`).FindStringSubmatch(so)
	if id == nil {
		t.Fatalf("hpctl enrol output %q names no device", so)
	}
	// The phone holds the fleet's certificate on its TPM key.
	out, err := exec.Command(hardphone, "identity", "show", "--tpm", sw.Spec, "--state-dir", state).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "CN="+id[1]) || !strings.Contains(string(out), "Acme Phones device CA") {
		t.Fatalf("hardphone identity show: %v\n%s", err, out)
	}

	so, se, code = hpctl(t, append([]string{"fleet", "inventory"}, admin...)...)
	if code != 0 || !strings.Contains(so, id[1]) || !strings.Contains(so, "HP1-000042") || !strings.Contains(so, "1 devices") {
		t.Fatalf("fleet inventory: exit %d\n%s%s", code, so, se)
	}
	so, se, code = hpctl(t, append([]string{"fleet", "inventory", "--json"}, admin...)...)
	var devs []api.Device
	if code != 0 || json.Unmarshal([]byte(so), &devs) != nil || len(devs) != 1 || devs[0].State != "enrolled" {
		t.Fatalf("fleet inventory --json: exit %d\n%s%s", code, so, se)
	}
	so, se, code = hpctl(t, append([]string{"fleet", "device", "show", id[1]}, admin...)...)
	if code != 0 || !strings.Contains(so, "serial     HP1-000042") || !strings.Contains(so, "state      enrolled") {
		t.Fatalf("fleet device show: exit %d\n%s%s", code, so, se)
	}
	if so, se, code = hpctl(t, append([]string{"fleet", "setting", "set", "min_security_version", "3"}, admin...)...); code != 0 {
		t.Fatalf("fleet setting set: exit %d\n%s%s", code, so, se)
	}
	if so, se, code = hpctl(t, append([]string{"fleet", "setting", "get", "min_security_version"}, admin...)...); code != 0 || strings.TrimSpace(so) != "3" {
		t.Fatalf("fleet setting get: exit %d\n%s%s", code, so, se)
	}

	so, se, code = hpctl(t, append([]string{"fleet", "device", "revoke", id[1], "--reason", "key_compromise"}, admin...)...)
	if code != 0 || !strings.Contains(so, "is revoked") {
		t.Fatalf("fleet device revoke: exit %d\n%s%s", code, so, se)
	}
	crlFile := filepath.Join(dir, "crl.pem")
	if so, se, code = hpctl(t, append([]string{"fleet", "crl", "--pem", "-o", crlFile}, admin...)...); code != 0 {
		t.Fatalf("fleet crl: exit %d\n%s%s", code, so, se)
	}
	b, err := os.ReadFile(crlFile)
	if err != nil {
		t.Fatalf("read CRL: %v", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "X509 CRL" {
		t.Fatalf("CRL file is not PEM X509 CRL: %.80q", b)
	}
	crl, err := x509.ParseRevocationList(blk.Bytes)
	if err != nil || len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].ReasonCode != 1 {
		t.Fatalf("CRL = %+v, %v, want one key-compromise entry", crl, err)
	}
	// The revoked phone cannot enrol again.
	if so, se, code = hpctl(t, station...); code == 0 || !strings.Contains(se, "revoked") {
		t.Fatalf("hpctl enrol of a revoked phone: exit %d\n%s%s", code, so, se)
	}
	so, se, code = hpctl(t, append([]string{"fleet", "device", "retire", id[1]}, admin...)...)
	if code != 0 || !strings.Contains(so, "is retired") {
		t.Fatalf("fleet device retire: exit %d\n%s%s", code, so, se)
	}
	// Admin commands need the admin's certificate.
	if so, se, code = hpctl(t, "fleet", "inventory", "--server", srv.URL, "--server-name", "fleet.test",
		"--server-ca", filepath.Join(pki, ca.ServerCACertFile), "--cert", filepath.Join(pki, ca.ServerCertFile),
		"--key", filepath.Join(pki, ca.ServerKeyFile)); code == 0 {
		t.Fatalf("fleet inventory with the server's certificate: exit 0\n%s%s", so, se)
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}
