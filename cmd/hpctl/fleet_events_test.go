package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/test"
)

// TestFleetFindingsCommands: the monitoring commands against a real
// hpfleet: findings (table and JSON) on a fleet that has none, a device's
// journal and a lift for a device the fleet does not know, and the
// arguments checked before the server is asked.
func TestFleetFindingsCommands(t *testing.T) {
	dir := t.TempDir()
	pki := filepath.Join(dir, "pki")
	if so, se, code := hpctl(t, "fleet", "init", pki, "--org", "Acme Phones", "--server-name", "fleet.test", "--server-ip", "127.0.0.1"); code != 0 {
		t.Fatalf("fleet init: exit %d\n%s%s", code, so, se)
	}
	mfg := test.NewManufacturerCA(t, filepath.Join(dir, "mfg"))
	srv := test.StartHPFleet(t, test.BuildHPFleet(t), filepath.Join(pki, ca.ServerCACertFile), "fleet.test",
		"--data", filepath.Join(dir, "data"), "--ca-dir", pki, "--manufacturer-ca", mfg.CertFile)
	admin := []string{"--server", srv.URL, "--server-name", "fleet.test", "--pki", pki}
	unknown := "dev-0123456789abcdef0123456789abcdef"

	so, se, code := hpctl(t, append([]string{"fleet", "findings"}, admin...)...)
	if code != 0 || !strings.Contains(so, "RULE") {
		t.Fatalf("fleet findings: exit %d\n%s%s", code, so, se)
	}
	so, se, code = hpctl(t, append([]string{"fleet", "findings", "--json", "--rule", "fleet.probe"}, admin...)...)
	var page api.FindingsPage
	if code != 0 || json.Unmarshal([]byte(so), &page) != nil || len(page.Findings) != 0 {
		t.Fatalf("fleet findings --json: exit %d\n%s%s", code, so, se)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"events of an unknown device", []string{"fleet", "device", "events", unknown}, 1, "not_found"},
		{"lift of an unknown device", []string{"fleet", "device", "lift", unknown, "quarantine"}, 1, "not_found"},
		{"events without an ID", []string{"fleet", "device", "events", "dev-x"}, 2, "want one device ID"},
		{"lift of something else", []string{"fleet", "device", "lift", unknown, "alert"}, 2, "block_outbound or quarantine"},
		{"findings of a bad device", []string{"fleet", "findings", "--device", "x"}, 2, "dev- and 32 hex"},
		{"findings limit", []string{"fleet", "findings", "--limit", "0"}, 2, "want 1..1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			so, se, code := hpctl(t, append(tt.args, admin...)...)
			if code != tt.code || !strings.Contains(so+se, tt.want) {
				t.Fatalf("hpctl %v: exit %d\n%s%s\nwant exit %d and %q", tt.args, code, so, se, tt.code, tt.want)
			}
		})
	}
}
