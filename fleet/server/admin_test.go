package server

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/crypto/policy"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/ca"
)

func TestAdmin(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		t.Run("AllowList", func(t *testing.T) { testAllowList(t, b) })
		t.Run("Inventory", func(t *testing.T) { testInventory(t, b) })
		t.Run("Auth", func(t *testing.T) { testAdminAuth(t, b) })
		t.Run("MalformedInput", func(t *testing.T) { testMalformedInput(t, b) })
	})
}

func entry(i int) api.AllowEntry {
	return api.AllowEntry{EKSHA256: ekOf(i).String(), Serial: fmt.Sprintf("HP1-%06d", i), Model: testModel, Group: "floor-1"}
}

func testAllowList(t *testing.T, b backend) {
	f := newFixture(t, b.open(t), initPKI(t))
	var entries []api.AllowEntry
	for i := range 5 {
		entries = append(entries, entry(i))
	}
	res, err := f.admin.Import(ctx, entries)
	if err != nil || res.Added != 5 {
		t.Fatalf("Import = %+v, %v, want 5 added", res, err)
	}
	entries[0].Group = "floor-2"
	res, err = f.admin.Import(ctx, entries)
	if err != nil || res.Updated != 1 || res.Unchanged != 4 {
		t.Fatalf("re-Import = %+v, %v, want 1 updated, 4 unchanged", res, err)
	}
	// Paging.
	p1, err := f.admin.AllowList(ctx, "", 3)
	if err != nil || len(p1.Entries) != 3 || p1.Next == "" {
		t.Fatalf("AllowList(limit 3) = %d entries next %q, %v", len(p1.Entries), p1.Next, err)
	}
	p2, err := f.admin.AllowList(ctx, p1.Next, 3)
	if err != nil || len(p2.Entries) != 2 || p2.Next != "" {
		t.Fatalf("AllowList(page 2) = %d entries next %q, %v", len(p2.Entries), p2.Next, err)
	}
	// Refusals change nothing.
	bad := []struct {
		name    string
		entries []api.AllowEntry
		want    api.Code
	}{
		{"serial of another TPM", []api.AllowEntry{{EKSHA256: ekOf(99).String(), Serial: entries[1].Serial, Model: testModel, Group: "g"}}, api.CodeConflict},
		{"bad hash", []api.AllowEntry{{EKSHA256: "zz", Serial: "X1", Model: testModel, Group: "g"}}, api.CodeBadRequest},
		{"bad serial", []api.AllowEntry{{EKSHA256: ekOf(98).String(), Serial: "a b", Model: testModel, Group: "g"}}, api.CodeBadRequest},
		{"empty", nil, api.CodeBadRequest},
		{"too many", make([]api.AllowEntry, api.MaxImportEntries+1), api.CodeBadRequest},
		{"one good one bad", []api.AllowEntry{entry(50), {EKSHA256: "zz"}}, api.CodeBadRequest},
	}
	for _, tt := range bad {
		_, err := f.admin.Import(ctx, tt.entries)
		wantCode(t, "Import("+tt.name+")", err, tt.want)
	}
	all, err := f.admin.AllowList(ctx, "", 0)
	if err != nil || len(all.Entries) != 5 {
		t.Fatalf("AllowList after refusals = %d entries, %v, want 5", len(all.Entries), err)
	}
}

func testInventory(t *testing.T, b backend) {
	f := newFixture(t, b.open(t), initPKI(t))
	devs := []*softDevice{f.newSoftDevice(t, 1, ca.DefaultDeviceLifetime), f.newSoftDevice(t, 2, ca.DefaultDeviceLifetime)}
	if _, err := devs[0].c.CheckIn(ctx, devs[0].key, f.report(devs[0])); err != nil {
		t.Fatalf("CheckIn error %v", err)
	}
	inv, err := f.admin.Inventory(ctx, "", 0)
	if err != nil || len(inv.Devices) != 2 {
		t.Fatalf("Inventory = %+v, %v, want 2 devices", inv, err)
	}
	var seen int
	for _, d := range inv.Devices {
		if d.ID == string(devs[0].id) {
			seen++
			if d.Firmware != "1.0.0" || d.SecurityVersion != 5 || d.LockdownOK == nil || !*d.LockdownOK || d.State != "enrolled" {
				t.Fatalf("Inventory device 0 = %+v", d)
			}
		}
	}
	if seen != 1 {
		t.Fatalf("Inventory lacks device %s", devs[0].id)
	}
	det, err := f.admin.Device(ctx, string(devs[0].id))
	if err != nil {
		t.Fatalf("Device error %v", err)
	}
	if len(det.Reports) != 1 || det.Reports[0].Report.Counters["sip_auth_failures"] != 2 || len(det.Certs) != 1 || det.Device.Serial != devs[0].serial {
		t.Fatalf("Device = %+v", det)
	}
	_, err = f.admin.Device(ctx, "dev-00000000000000000000000000000000")
	wantCode(t, "Device(unknown)", err, api.CodeNotFound)
	// Settings: only known keys, checked values.
	err = f.admin.SetSetting(ctx, api.SettingMinSecurityVersion, "seven")
	wantCode(t, "SetSetting(not a number)", err, api.CodeBadRequest)
	err = f.admin.SetSetting(ctx, "favourite_colour", "blue")
	wantCode(t, "SetSetting(unknown)", err, api.CodeNotFound)
	if err := f.admin.SetSetting(ctx, api.SettingMinSecurityVersion, "7"); err != nil {
		t.Fatalf("SetSetting error %v", err)
	}
	if v, err := f.admin.Setting(ctx, api.SettingMinSecurityVersion); err != nil || v != "7" {
		t.Fatalf("Setting = %q, %v, want 7", v, err)
	}
	m, err := f.admin.Metrics(ctx)
	if err != nil || m.Counters["checked_in"] != 1 || m.Counters["requests.admin_devices"] != 1 {
		t.Fatalf("Metrics = %+v, %v", m, err)
	}
}

// testAdminAuth: admin endpoints take admin certificates only.
func testAdminAuth(t *testing.T, b backend) {
	f := newFixture(t, b.open(t), initPKI(t))
	d := f.newSoftDevice(t, 1, ca.DefaultDeviceLifetime)
	_, err := d.c.Inventory(ctx, "", 0)
	wantCode(t, "Inventory with a device certificate", err, api.CodeUnauthenticated)
	_, err = f.client(t, nil).Inventory(ctx, "", 0)
	wantCode(t, "Inventory without a certificate", err, api.CodeUnauthenticated)
	_, err = d.c.Revoke(ctx, string(d.id), "")
	wantCode(t, "Revoke with a device certificate", err, api.CodeUnauthenticated)
	// An admin certificate of another fleet does not get through the
	// handshake.
	other := initPKI(t)
	cert, err := tls.LoadX509KeyPair(other+"/"+ca.AdminCertFile, other+"/"+ca.AdminKeyFile)
	if err != nil {
		t.Fatalf("LoadX509KeyPair: %v", err)
	}
	_, err = f.client(t, &cert).Inventory(ctx, "", 0)
	if err == nil {
		t.Fatalf("Inventory with another fleet's admin certificate = nil error")
	}
	dev, err := f.st.GetDevice(ctx, d.id)
	if err != nil || dev.State != "enrolled" {
		t.Fatalf("device after refused admin calls: %+v, %v", dev, err)
	}
}

// testMalformedInput: malformed and oversized requests get 4xx and leave
// no challenge, device or allow-list entry behind.
func testMalformedInput(t *testing.T, b backend) {
	f := newFixture(t, b.open(t), initPKI(t))
	tc, err := policy.ClientConfig(policy.ClientTLS{Roots: f.serverRoots, ServerName: "fleet.test"})
	if err != nil {
		t.Fatalf("ClientConfig: %v", err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 30 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	good := `{"ek_type":"ecc-p256","ek_cert":"AQ==","identity_public":"AQ==","csr":"AQ=="}`
	tests := []struct {
		name, method, path, ctype, body string
		want                            int
	}{
		{"wrong content type", "POST", api.PathEnrolStart, "text/plain", good, 400},
		{"no content type", "POST", api.PathEnrolStart, "", good, 400},
		{"not JSON", "POST", api.PathEnrolStart, api.ContentType, "{", 400},
		{"unknown field", "POST", api.PathEnrolStart, api.ContentType, strings.Replace(good, "{", `{"admin":true,`, 1), 400},
		{"two values", "POST", api.PathEnrolStart, api.ContentType, good + good, 400},
		{"bad ek type", "POST", api.PathEnrolStart, api.ContentType, strings.Replace(good, "ecc-p256", "dsa", 1), 400},
		{"garbage EK certificate", "POST", api.PathEnrolStart, api.ContentType, good, 403},
		{"oversize", "POST", api.PathEnrolStart, api.ContentType, `{"csr":"` + strings.Repeat("A", api.MaxRequestBody) + `"}`, 413},
		{"finish, bad challenge", "POST", api.PathEnrolFinish, api.ContentType, `{"challenge_id":"xyz","secret":"AAAAAAAAAAAAAAAAAAAAAA=="}`, 400},
		{"finish, unknown challenge", "POST", api.PathEnrolFinish, api.ContentType, `{"challenge_id":"` + strings.Repeat("a", 32) + `","secret":"AAAAAAAAAAAAAAAAAAAAAA=="}`, 403},
		{"wrong method", "GET", api.PathEnrolStart, "", "", 404},
		{"unknown path", "GET", "/v1/nothing", "", "", 404},
		{"import without certificate", "POST", api.PathAdminAllowList, api.ContentType, `{"entries":[]}`, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(ctx, tt.method, f.url+tt.path, bytes.NewReader([]byte(tt.body)))
			if err != nil {
				t.Fatalf("NewRequest: %v", err)
			}
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", tt.method, tt.path, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("%s %s (%s) = %d %s, want %d", tt.method, tt.path, tt.name, resp.StatusCode, b, tt.want)
			}
			if !bytes.Contains(b, []byte(`"error":{"code":`)) {
				t.Fatalf("%s: body %s is not an API error", tt.name, b)
			}
		})
	}
	if n, err := f.st.PurgeChallenges(ctx, f.now().Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("PurgeChallenges after refusals = %d, %v, want 0", n, err)
	}
	if all, err := f.admin.Inventory(ctx, "", 0); err != nil || len(all.Devices) != 0 {
		t.Fatalf("Inventory after refusals = %+v, %v", all, err)
	}
	if !strings.Contains(f.logs.String(), "request refused") {
		t.Fatalf("refusals not logged:\n%s", f.logs.String())
	}
}
