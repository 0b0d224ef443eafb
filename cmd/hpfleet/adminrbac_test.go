package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/adminauth/authtest"
	"github.com/hardphone/hardphone/fleet/adminauth/boltauth"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/client"
	"github.com/hardphone/hardphone/test"
)

// rbacWorld is hpfleet (the binary) with an audit key and admins of each
// role with sessions made before it started.
type rbacWorld struct {
	*consoleWorld
	fleet  *test.HPFleet
	admins map[string]admin
}

// newRBACWorld starts hpfleet with extra added to its flags.
func newRBACWorld(t *testing.T, extra ...string) *rbacWorld {
	w := newConsoleWorld(t, true)
	if err := os.MkdirAll(w.data, 0o700); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	as, err := boltauth.Open(filepath.Join(w.data, "adminauth"))
	if err != nil {
		t.Fatalf("boltauth.Open: %v", err)
	}
	auth, err := adminauth.New(as)
	if err != nil {
		t.Fatalf("adminauth.New: %v", err)
	}
	admins := map[string]admin{}
	for name, r := range map[string]adminauth.Role{"sam": adminauth.RoleSecurityAdmin, "olivia": adminauth.RoleOperator,
		"vera": adminauth.RoleViewer, "audrey": adminauth.RoleAuditor} {
		admins[name] = makeAdmin(t, w.dir, auth, w.adminCA, name, r)
	}
	as.Close()
	return &rbacWorld{consoleWorld: w, fleet: w.start(t, extra...), admins: admins}
}

// client is a fleet client with a's certificate, and its session unless
// session is "" ("-": a's own).
func (w *rbacWorld) client(t *testing.T, a admin, session string) *client.Client {
	t.Helper()
	cert, err := tlsPair(a)
	if err != nil {
		t.Fatalf("certificate: %v", err)
	}
	c, err := client.New(client.Config{URL: w.fleet.URL, ServerName: fleetName, Roots: w.roots, Certificate: cert})
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	if session == "" {
		return c
	}
	if session == "-" {
		session = a.session
	}
	b, err := os.ReadFile(session)
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	sc, err := c.WithSession(strings.TrimSpace(string(b)), sessionUA)
	if err != nil {
		t.Fatalf("WithSession: %v", err)
	}
	return sc
}

// trail exports the audit log as the auditor and returns its entries.
func (w *rbacWorld) trail(t *testing.T) []audit.Entry {
	t.Helper()
	var buf bytes.Buffer
	if _, err := w.client(t, w.admins["audrey"], "-").ExportAudit(context.Background(), &buf, 64<<20); err != nil {
		t.Fatalf("ExportAudit: %v", err)
	}
	var out []audit.Entry
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l struct {
			Type  string       `json:"type"`
			Entry *audit.Entry `json:"entry"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("export line %q: %v", sc.Bytes(), err)
		}
		if l.Type == "entry" && l.Entry != nil {
			out = append(out, *l.Entry)
		}
	}
	return out
}

// TestAdminRBACBinary: hpfleet with an audit key guards every admin
// endpoint with a session and one permission of the table: a viewer can
// read the inventory but not revoke or set a config, an operator cannot
// import the allow-list, a certificate without a session or with another
// admin's session gets nothing; a security admin imports and sets the
// minimum security version. Each state-changing call, allowed or
// refused, is in the audit trail with the admin, endpoint, target and
// outcome.
func TestAdminRBACBinary(t *testing.T) {
	w := newRBACWorld(t)
	ctx := context.Background()
	a := w.admins
	entry := []api.AllowEntry{{EKSHA256: strings.Repeat("ab", 32), Serial: "SN-RBAC-1", Model: "hp-1", Group: "floor-1"}}

	refusals := []struct {
		name string
		call func() error
		code api.Code
	}{
		{"viewer revokes", func() error {
			_, err := w.client(t, a["vera"], "-").Revoke(ctx, "dev-"+strings.Repeat("1", 32), "")
			return err
		}, api.CodeForbidden},
		{"viewer sets a config", func() error {
			_, err := w.client(t, a["vera"], "-").SetConfig(ctx, "group", "floor-1", []byte("[sip]\n"))
			return err
		}, api.CodeForbidden},
		{"operator imports", func() error { _, err := w.client(t, a["olivia"], "-").Import(ctx, entry); return err }, api.CodeForbidden},
		{"operator sets the floor", func() error {
			return w.client(t, a["olivia"], "-").SetSetting(ctx, api.SettingMinSecurityVersion, "3")
		}, api.CodeForbidden},
		{"certificate without a session imports", func() error { _, err := w.client(t, a["sam"], "").Import(ctx, entry); return err },
			api.CodeUnauthenticated},
		{"certificate without a session lists devices", func() error {
			_, err := w.client(t, a["sam"], "").Inventory(ctx, "", 10)
			return err
		}, api.CodeUnauthenticated},
		{"another admin's certificate with sam's session", func() error {
			_, err := w.client(t, a["olivia"], a["sam"].session).Import(ctx, entry)
			return err
		}, api.CodeUnauthenticated},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !api.IsCode(err, tt.code) {
				t.Fatalf("%s = %v, want %s", tt.name, err, tt.code)
			}
		})
	}
	if _, err := w.client(t, a["vera"], "-").Inventory(ctx, "", 10); err != nil {
		t.Fatalf("Inventory(viewer) = %v, want allowed (inventory.read)", err)
	}
	res, err := w.client(t, a["sam"], "-").Import(ctx, entry)
	if err != nil || res.Added != 1 {
		t.Fatalf("Import(security admin) = %+v, %v; want 1 added", res, err)
	}
	if err := w.client(t, a["sam"], "-").SetSetting(ctx, api.SettingMinSecurityVersion, "3"); err != nil {
		t.Fatalf("SetSetting(security admin) = %v", err)
	}
	// Allowed, but refused by the handler (no such device): recorded as
	// a failure after its intent.
	if _, err := w.client(t, a["sam"], "-").Revoke(ctx, "dev-"+strings.Repeat("0", 32), ""); !api.IsCode(err, api.CodeNotFound) {
		t.Fatalf("Revoke(unknown device) = %v, want not_found", err)
	}

	got := map[string]int{}
	for _, e := range w.trail(t) {
		if e.Actor.Kind != audit.ActorAdmin {
			continue
		}
		k := fmt.Sprintf("%s %s %s %s %s", e.Actor.ID, e.Action, e.Target, e.Outcome, e.Details["attempted"])
		got[k]++
		if e.Details["endpoint"] == "" && e.Action != audit.ActionAuditExport {
			t.Errorf("entry %v has no endpoint", e)
		}
	}
	for _, want := range []string{
		"vera access.denied device dev-11111111111111111111111111111111 denied device.revoke",
		"vera access.denied group floor-1 denied config.change",
		"olivia access.denied allow-list denied device.admit",
		"olivia access.denied setting min_security_version denied setting.change",
		"sam access.denied allow-list denied device.admit", // certificate, no session
		"olivia access.denied allow-list denied device.admit",
		"sam device.admit allow-list pending ",
		"sam device.admit allow-list success ",
		"sam setting.change setting min_security_version pending ",
		"sam setting.change setting min_security_version success ",
		"sam device.revoke device dev-00000000000000000000000000000000 pending ",
		"sam device.revoke device dev-00000000000000000000000000000000 failure ",
	} {
		if got[want] == 0 {
			t.Errorf("audit trail has no %q; it has %v", want, got)
		}
	}
	if n := got["olivia access.denied allow-list denied device.admit"]; n != 2 {
		t.Errorf("olivia's refused imports recorded %d times, want 2 (her session, and her certificate with sam's session)", n)
	}
	// Reads are not recorded: vera's are her two refusals only.
	vera := 0
	for k, n := range got {
		if strings.HasPrefix(k, "vera ") {
			vera += n
		}
	}
	if vera != 2 {
		t.Errorf("vera has %d entries, want 2 (her refusals; her inventory read is not recorded): %v", vera, got)
	}
}

// TestRoleWindowBinary: hpfleet's --role-window limits a role to its
// weekly hours: with the operators' window on another day, an operator's
// session is refused every permission (reads too) and the refusal says
// why, while the viewers, whose window is always open, and the security
// admins, who have none, act; a refused change is in the audit trail
// (refused reads are not recorded, as everywhere). A bad
// window keeps the server from starting.
func TestRoleWindowBinary(t *testing.T) {
	now := time.Now().UTC()
	other := now.AddDate(0, 0, 3).Weekday().String()[:3]
	w := newRBACWorld(t, "--role-window", "operator="+other+" 00:00-24:00 UTC",
		"--role-window", "viewer=Sun-Sat 00:00-24:00 UTC")
	ctx := context.Background()
	a := w.admins
	_, err := w.client(t, a["olivia"], "-").Inventory(ctx, "", 10)
	if !api.IsCode(err, api.CodeForbidden) || !strings.Contains(err.Error(), "time window") {
		t.Fatalf("Inventory(operator outside her window %s) = %v, want forbidden naming the time windows", other, err)
	}
	if _, err := w.client(t, a["olivia"], "-").Rollouts(ctx, "", 10); !api.IsCode(err, api.CodeForbidden) {
		t.Fatalf("Rollouts(operator outside her window) = %v, want forbidden", err)
	}
	_, err = w.client(t, a["olivia"], "-").CreateRollout(ctx, api.RolloutRequest{Kind: "firmware", Group: "floor-1",
		Firmware: "hardphone-2.raucb", Rings: []api.RolloutRing{{Name: "all", Percent: 100}}})
	if !api.IsCode(err, api.CodeForbidden) {
		t.Fatalf("CreateRollout(operator outside her window) = %v, want forbidden", err)
	}
	if _, err := w.client(t, a["vera"], "-").Inventory(ctx, "", 10); err != nil {
		t.Fatalf("Inventory(viewer inside her window) = %v", err)
	}
	if _, err := w.client(t, a["sam"], "-").Inventory(ctx, "", 10); err != nil {
		t.Fatalf("Inventory(security admin, no window) = %v", err)
	}
	denied := 0
	for _, e := range w.trail(t) {
		if e.Actor.ID == "olivia" && e.Action == audit.ActionAccessDenied {
			denied++
		}
	}
	if denied == 0 {
		t.Errorf("the audit trail has no refusal of olivia outside her window")
	}

	for _, bad := range []string{"root=Mon 00:00-01:00 UTC", "operator=Mon 02:00", "operator", "viewer=Mon 01:00-02:00 Mars/Olympus"} {
		_, se, code := hpfleet("serve", "--data", filepath.Join(t.TempDir(), "d"), "--ca-dir", w.pki, "--manufacturer-ca", w.mfg,
			"--listen", "127.0.0.1:0", "--role-window", bad)
		if code != 2 || !strings.Contains(se, "--role-window") {
			t.Errorf("hpfleet serve --role-window %q: exit %d %s, want 2 naming the flag", bad, code, se)
		}
	}
}

// TestLoginEnrolBinary: a new admin's first `hpctl fleet login` enrols
// TOTP from the command line: hpctl shows the secret and its otpauth URI,
// takes a code made from it, and writes a session that the admin
// endpoints accept; a wrong confirmation code writes nothing.
func TestLoginEnrolBinary(t *testing.T) {
	w := newConsoleWorld(t, true)
	pw := w.bootstrap(t, "alice")
	f := w.start(t)
	_, hpctl := binaries(t)
	certFile, keyFile := w.certificateFiles(t, "alice")
	pwFile, session := filepath.Join(w.dir, "alice.pw"), filepath.Join(w.dir, "alice.session")
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// login runs hpctl fleet login; answer gets the secret shown and
	// returns the line to type.
	login := func(answer func(secret string) string) (string, error) {
		cmd := exec.Command(hpctl, "fleet", "login", "--server", f.URL, "--server-name", fleetName,
			"--server-ca", filepath.Join(w.pki, ca.ServerCACertFile), "--cert", certFile, "--key", keyFile,
			"--session", session, "--password-file", pwFile)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var errBuf bytes.Buffer
		cmd.Stderr = &errBuf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		r := bufio.NewReader(io.TeeReader(stdout, &out))
		for {
			line, err := r.ReadString('\n')
			if s, ok := strings.CutPrefix(strings.TrimSpace(line), "secret: "); ok {
				_, _ = io.WriteString(stdin, answer(s)+"\n") // hpctl exiting early shows in its status
				break
			}
			if err != nil {
				break
			}
		}
		stdin.Close()
		_, _ = io.Copy(io.Discard, r) // the rest goes to out through the tee
		err = cmd.Wait()
		return out.String() + errBuf.String(), err
	}
	out, err := login(func(string) string { return "000000" })
	if err == nil || !strings.Contains(out, "not confirmed") || !strings.Contains(out, "otpauth://totp/") {
		t.Fatalf("hpctl fleet login (enrol, wrong code) = %v\n%s\nwant the secret and URI shown, then refused", err, out)
	}
	if _, err := os.Stat(session); err == nil {
		t.Fatalf("a refused enrolment wrote %s", session)
	}
	var secret string
	out, err = login(func(s string) string {
		secret = s
		return authtest.Code(t, adminauth.TOTPSecret(s), time.Now())
	})
	if err != nil || !strings.Contains(out, "TOTP enrolled for alice") || !strings.Contains(out, "logged in as alice") {
		t.Fatalf("hpctl fleet login (enrol) = %v\n%s", err, out)
	}
	if secret == "" {
		t.Fatalf("no secret shown:\n%s", out)
	}
	// The session passes the admin endpoints' check (alice is a security
	// admin: inventory.read).
	args := []string{"fleet", "inventory", "--server", f.URL, "--server-name", fleetName,
		"--server-ca", filepath.Join(w.pki, ca.ServerCACertFile), "--cert", certFile, "--key", keyFile}
	if out, err := exec.Command(hpctl, append(args, "--session", session)...).CombinedOutput(); err != nil {
		t.Fatalf("hpctl fleet inventory with the enrolled session: %v\n%s", err, out)
	}
	if out, err := exec.Command(hpctl, args...).CombinedOutput(); err == nil {
		t.Fatalf("hpctl fleet inventory without a session succeeded:\n%s", out)
	}
}
