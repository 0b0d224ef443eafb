package director_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/hardphone/hardphone/agent/uptane"
	"github.com/hardphone/hardphone/crypto/credstore"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/test"
)

// groupDoc is the group's defaults: everything but the SIP user.
func groupDoc(w *world, extra string) []byte {
	return []byte(fmt.Sprintf(`[media]
rtp_port_min = 20000
rtp_port_max = 20099
%s
[[account]]
name = "line1"
registrar = "%s"
domain = "%s"
password_cred = "sip/line1"
`, extra, w.kam.Addr(), sipDomain))
}

func deviceDoc(user string) []byte {
	return []byte(fmt.Sprintf("[[account]]\nname = \"line1\"\nuser = %q\n", user))
}

// applied is what a phone made of its director's document.
type applied struct {
	version uint64
	doc     []byte
	sealed  string
}

// apply refreshes, resolves and applies the configuration document the way
// the phone does: the sealed password straight into the credential store.
func (p *phone) apply(t *testing.T) applied {
	t.Helper()
	if _, err := p.up.Refresh(ctx); err != nil {
		t.Fatalf("phone %s: Refresh: %v", p.id, err)
	}
	a, err := p.up.Resolve(p.id)
	if err != nil {
		t.Fatalf("phone %s: Resolve: %v", p.id, err)
	}
	if a.Config == nil {
		t.Fatalf("phone %s: the director names no configuration document", p.id)
	}
	doc, err := p.up.FetchConfig(ctx, a.Config)
	if err != nil {
		t.Fatalf("phone %s: FetchConfig: %v", p.id, err)
	}
	var f struct {
		Account []struct {
			PasswordCred   string `toml:"password_cred"`
			PasswordSealed string `toml:"password_sealed"`
		} `toml:"account"`
	}
	if _, err := toml.Decode(string(doc), &f); err != nil {
		t.Fatalf("phone %s: document: %v\n%s", p.id, err, doc)
	}
	if len(f.Account) != 1 || f.Account[0].PasswordSealed == "" {
		t.Fatalf("phone %s: document has no sealed password:\n%s", p.id, doc)
	}
	acc := f.Account[0]
	if err := p.cs.OpenSealed(acc.PasswordSealed, p.id, a.Config.Version, acc.PasswordCred); err != nil {
		t.Fatalf("phone %s: OpenSealed: %v", p.id, err)
	}
	return applied{version: a.Config.Version, doc: doc, sealed: acc.PasswordSealed}
}

func (p *phone) password(t *testing.T) string {
	t.Helper()
	pw, err := p.cs.Get("sip/line1")
	if err != nil {
		t.Fatalf("credential store: %v", err)
	}
	return string(pw)
}

// checkIn sends a signed report with the provisioning state.
func (p *phone) checkIn(t *testing.T, serial string, prov *api.Provisioning) {
	t.Helper()
	sg, err := p.cs.Signer()
	if err != nil {
		t.Fatalf("Signer: %v", err)
	}
	id, err := p.cs.Identity()
	if err != nil {
		t.Fatalf("Identity: %v", err)
	}
	r := api.Report{DeviceID: p.id, SentAt: time.Now(), Model: "hp-desk-1", Serial: serial,
		Firmware: api.Firmware{Version: "1.0.0", SecurityVersion: 3}, Boot: api.Boot{Slot: "A", AttemptsLeft: 3, MarkedGood: true},
		CertNotAfter: id.Leaf.NotAfter, Lockdown: api.Lockdown{OK: true}, Provisioning: prov}
	if _, err := p.fc.CheckIn(ctx, sg, r); err != nil {
		t.Fatalf("CheckIn: %v", err)
	}
}

func register(t *testing.T, w *world, user, pw string) int {
	t.Helper()
	return test.DialSIPUA(t, "UDP", w.kam.PlainAddr(), user, sipDomain).Register(t, pw)
}

func wantCode(t *testing.T, what string, err error, code api.Code) {
	t.Helper()
	if !api.IsCode(err, code) {
		t.Fatalf("%s = %v, want code %s", what, err, code)
	}
}

// TestDirector walks the fleet side of issue 12 with real parts: hpfleet
// (bbolt and PostgreSQL) with its director, the image repository on
// nginx, Kamailio authenticating from PostgreSQL, phones with their own
// swtpm enrolled through fleet/client and following the director with
// agent/uptane.
func TestDirector(t *testing.T) {
	if testing.Short() {
		t.Skip("short: real servers end to end; make test runs it")
	}
	for _, backend := range []string{"bbolt", "postgres"} {
		t.Run(backend, func(t *testing.T) { testDirector(t, backend) })
	}
}

func testDirector(t *testing.T, backend string) {
	w := newWorld(t, backend)
	a, b := w.newPhone("HP1-000001"), w.newPhone("HP1-000002")
	inv, err := w.admin.Inventory(ctx, "", 0)
	if err != nil || len(inv.Devices) != 2 || !inv.Devices[0].SealingKey || !inv.Devices[1].SealingKey {
		t.Fatalf("inventory = %+v, %v; want two devices with sealing keys", inv, err)
	}
	// Enrolment published each phone's director metadata: signed time
	// before any assignment.
	if _, err := a.up.Refresh(ctx); err != nil {
		t.Fatalf("first Refresh: %v", err)
	}
	if st, ok := a.up.SignedTime(); !ok || time.Since(st) > time.Minute {
		t.Fatalf("SignedTime = %v, %v; want the director's signed time", st, ok)
	}

	t.Run("refused documents", func(t *testing.T) {
		_, err := w.admin.SetConfig(ctx, api.ScopeGroup, group, []byte("srtp_off = true\n"))
		wantCode(t, "SetConfig(unknown key)", err, api.CodeBadRequest)
		if !strings.Contains(err.Error(), "unknown key") {
			t.Fatalf("refusal %v does not say why", err)
		}
		_, err = w.admin.SetConfig(ctx, api.ScopeDevice, a.id, []byte("[[account]]\nname = \"line1\"\nuser = \"1001\"\n"))
		wantCode(t, "SetConfig(device override without the group's half)", err, api.CodeBadRequest)
		_, err = w.admin.SetConfig(ctx, api.ScopeGroup, group, []byte("[media\n"))
		wantCode(t, "SetConfig(not TOML)", err, api.CodeBadRequest)
		if _, err := w.admin.Config(ctx, api.ScopeGroup, group); !api.IsCode(err, api.CodeNotFound) {
			t.Fatalf("a refused document was stored: %v", err)
		}
	})

	// The group's defaults (incomplete: no user yet), then each device's
	// user.
	ch, err := w.admin.SetConfig(ctx, api.ScopeGroup, group, groupDoc(w, ""))
	if err != nil {
		t.Fatalf("SetConfig(group): %v", err)
	}
	if len(ch.Failed) != 2 || !strings.Contains(ch.Failed[0], "not ready") {
		t.Fatalf("SetConfig(group).Failed = %q, want both devices not ready (no user)", ch.Failed)
	}
	for _, x := range []struct {
		p    *phone
		user string
	}{{a, "1001"}, {b, "1002"}} {
		ch, err := w.admin.SetConfig(ctx, api.ScopeDevice, x.p.id, deviceDoc(x.user))
		if err != nil || len(ch.Published) != 1 || ch.Published[0].ConfigVersion != 1 {
			t.Fatalf("SetConfig(device %s) = %+v, %v; want config version 1 published", x.p.id, ch, err)
		}
	}
	v1 := a.apply(t)
	pw1 := a.password(t)
	if got := register(t, w, "1001", pw1); got != 200 {
		t.Fatalf("REGISTER with the password the fleet sealed to the phone = %d, want 200", got)
	}
	b.apply(t)
	if got := register(t, w, "1001", b.password(t)); got != 401 {
		t.Fatalf("phone B's password for phone A's account = %d, want 401", got)
	}

	t.Run("config set is a new director version", func(t *testing.T) {
		before := a.up.Status().Director.Targets
		if _, err := w.admin.SetConfig(ctx, api.ScopeGroup, group, groupDoc(w, "inactivity_timeout = \"30s\"\n")); err != nil {
			t.Fatalf("SetConfig: %v", err)
		}
		v2 := a.apply(t)
		st := a.up.Status()
		if v2.version != v1.version+1 || st.Director.Targets <= before || !bytes.Contains(v2.doc, []byte(`inactivity_timeout = "30s"`)) {
			t.Fatalf("after a config set: version %d (was %d), director targets v%d (was v%d); want both newer with the change\n%s",
				v2.version, v1.version, st.Director.Targets, before, v2.doc)
		}
		// The password did not change: the same sealed value.
		if v2.sealed != v1.sealed || a.password(t) != pw1 {
			t.Fatalf("a config change re-sealed or changed the password")
		}
	})

	t.Run("unchanged poll is a 304", func(t *testing.T) {
		m0 := metric(t, w, "director_not_modified")
		st, err := a.up.Refresh(ctx)
		if err != nil || st.Director.LastChanged {
			t.Fatalf("unchanged Refresh = %+v, %v; want no change", st.Director, err)
		}
		if m1 := metric(t, w, "director_not_modified"); m1 != m0+1 {
			t.Fatalf("director_not_modified %d -> %d, want one 304", m0, m1)
		}
	})

	t.Run("another device's repository", func(t *testing.T) {
		u, _ := a.fc.DirectorURL(a.id)
		resp, err := b.fc.HTTPClient().Get(u + "timestamp.json")
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("phone B reading phone A's director = %d %s, want 403", resp.StatusCode, body)
		}
	})

	t.Run("tampered, replayed and expired metadata", func(t *testing.T) {
		good := a.up.Status().Director
		oldTS := fetchRaw(t, a, "timestamp.json")
		if _, err := w.admin.SetConfig(ctx, api.ScopeGroup, group, groupDoc(w, "inactivity_timeout = \"40s\"\n")); err != nil {
			t.Fatalf("SetConfig: %v", err)
		}
		a.dirF.mu.Lock()
		a.dirF.tamper = func(name string, b []byte) []byte {
			if strings.HasSuffix(name, ".targets.json") {
				b = bytes.Replace(b, []byte(`"version":`), []byte(`"version":1`), 1)
			}
			return b
		}
		a.dirF.mu.Unlock()
		if _, err := a.up.Refresh(ctx); err == nil {
			t.Fatalf("Refresh accepted tampered targets")
		}
		if st := a.up.Status().Director; st.Targets != good.Targets {
			t.Fatalf("tampered targets changed the trusted set: v%d, was v%d", st.Targets, good.Targets)
		}
		a.dirF.mu.Lock()
		a.dirF.tamper = nil
		a.dirF.mu.Unlock()
		cur := a.apply(t)
		now := a.up.Status().Director
		// Yesterday's timestamp, replayed.
		a.dirF.mu.Lock()
		a.dirF.replace = map[string][]byte{"timestamp.json": oldTS}
		a.dirF.mu.Unlock()
		if _, err := a.up.Refresh(ctx); err == nil {
			t.Fatalf("Refresh accepted a replayed timestamp")
		}
		if st := a.up.Status().Director; st.Timestamp != now.Timestamp || st.Targets != now.Targets {
			t.Fatalf("a replayed timestamp changed the trusted set")
		}
		a.dirF.mu.Lock()
		a.dirF.replace = nil
		a.dirF.mu.Unlock()
		// The server stops re-signing (a freeze, seen from the phone whose
		// clock ran two days on): stale, refused, last good kept.
		a.clock.Add(48 * time.Hour)
		_, err := a.up.Refresh(ctx)
		st := a.up.Status()
		if err == nil || !st.Director.Stale {
			t.Fatalf("after 48 h without a new timestamp: Refresh %v, stale %v; want refused and stale", err, st.Director.Stale)
		}
		if _, err := a.up.Resolve(a.id); !errors.Is(err, uptane.ErrStale) {
			t.Fatalf("Resolve of expired metadata = %v, want ErrStale", err)
		}
		a.checkIn(t, "HP1-000001", &api.Provisioning{ConfigVersion: cur.version, Stale: true, StaleRole: st.Director.ExpiredRole})
		inv, err := w.admin.Inventory(ctx, "", 0)
		if err != nil {
			t.Fatalf("Inventory: %v", err)
		}
		for _, d := range inv.Devices {
			if d.ID == a.id && (!d.Stale || d.StaleRole == "") {
				t.Fatalf("inventory %+v does not show phone A stale", d)
			}
		}
		a.clock.Add(-48 * time.Hour)
		a.apply(t)
	})

	t.Run("firmware assignment", func(t *testing.T) {
		_, err := w.admin.AssignFirmware(ctx, api.ScopeGroup, group, "not-in-the-image-repo.raucb")
		wantCode(t, "AssignFirmware(unlisted)", err, api.CodeNotListed)
		ch, err := w.admin.AssignFirmware(ctx, api.ScopeGroup, group, "hardphone-2.0.0.raucb")
		if err != nil || ch.Firmware == nil || ch.Firmware.Version != "2.0.0" || len(ch.Published) != 2 {
			t.Fatalf("AssignFirmware = %+v, %v; want 2.0.0 published to both phones", ch, err)
		}
		if _, err := a.up.Refresh(ctx); err != nil {
			t.Fatalf("Refresh: %v", err)
		}
		as, err := a.up.Resolve(a.id)
		if err != nil || as.Firmware == nil || as.Firmware.Name != "hardphone-2.0.0.raucb" || as.Firmware.SecurityVersion != 4 {
			t.Fatalf("Resolve = %+v, %v; want the assigned bundle, checked against the image repository", as, err)
		}
		// The vendor withdraws the bundle: the director still names it,
		// the image repository no longer lists it: mix-and-match refused.
		w.removeBundle("hardphone-2.0.0.raucb")
		if _, err := a.up.Refresh(ctx); err != nil {
			t.Fatalf("Refresh: %v", err)
		}
		if as, err := a.up.Resolve(a.id); err == nil && as.Firmware != nil {
			t.Fatalf("Resolve after the image repository dropped the bundle = %+v, want a refusal", as.Firmware)
		}
		w.addBundle("hardphone-2.0.0.raucb")
	})

	t.Run("sealed to another TPM", func(t *testing.T) {
		cur := a.apply(t)
		err := b.cs.OpenSealed(cur.sealed, a.id, cur.version, "sip/line1")
		if !errors.Is(err, credstore.ErrSealed) {
			t.Fatalf("phone B opening phone A's sealed password = %v, want ErrSealed", err)
		}
		if b.password(t) == a.password(t) {
			t.Fatalf("phone B holds phone A's password")
		}
	})

	t.Run("rotation keeps the old password until the phone confirms", func(t *testing.T) {
		old := a.password(t)
		st, err := w.admin.Rotate(ctx, a.id)
		if err != nil || len(st.Accounts) != 1 || !st.Accounts[0].PreviousValid || st.Accounts[0].Generation != 2 {
			t.Fatalf("Rotate = %+v, %v; want generation 2 with the previous password still valid", st, err)
		}
		if got := register(t, w, "1001", old); got != 200 {
			t.Fatalf("REGISTER with the old password before the phone has the new one = %d, want 200", got)
		}
		cur := a.apply(t)
		nw := a.password(t)
		if nw == old {
			t.Fatalf("the rotation left the phone's password as it was")
		}
		for _, pw := range []string{old, nw} {
			if got := register(t, w, "1001", pw); got != 200 {
				t.Fatalf("REGISTER during the overlap = %d, want 200", got)
			}
		}
		a.checkIn(t, "HP1-000001", &api.Provisioning{ConfigVersion: cur.version})
		st, err = w.admin.Provision(ctx, a.id)
		if err != nil || st.Accounts[0].PreviousValid || st.ReportedConfigVersion != cur.version {
			t.Fatalf("Provision after the confirming check-in = %+v, %v; want the previous password dropped", st, err)
		}
		if got := register(t, w, "1001", old); got != 401 {
			t.Fatalf("REGISTER with the old password after the phone confirmed = %d, want 401", got)
		}
		if got := register(t, w, "1001", nw); got != 200 {
			t.Fatalf("REGISTER with the new password = %d, want 200", got)
		}
	})

	t.Run("check-sync", func(t *testing.T) {
		ua := test.DialSIPUA(t, "TLS", w.kam.Addr(), "1001", sipDomain)
		if got := ua.Register(t, a.password(t)); got != 200 {
			t.Fatalf("REGISTER over TLS = %d, want 200", got)
		}
		if _, err := w.admin.SetConfig(ctx, api.ScopeGroup, group, groupDoc(w, "inactivity_timeout = \"50s\"\n")); err != nil {
			t.Fatalf("SetConfig: %v", err)
		}
		m := ua.Read(t, 10*time.Second)
		if !strings.HasPrefix(m.First, "NOTIFY ") || m.Header["event"] != "check-sync" {
			t.Fatalf("after a change the phone got %q (Event %q), want NOTIFY check-sync\n%s", m.First, m.Header["event"], m.Raw)
		}
		ua.Answer(t, m)
	})
}

// fetchRaw fetches a director file as the phone's fetcher does.
func fetchRaw(t *testing.T, p *phone, name string) []byte {
	t.Helper()
	b, err := p.dirF.inner.Fetch(ctx, name, 1<<20)
	if err != nil {
		t.Fatalf("fetch %s: %v", name, err)
	}
	return b
}

// metric reads one of hpfleet's counters.
func metric(t *testing.T, w *world, name string) uint64 {
	t.Helper()
	m, err := w.admin.Metrics(ctx)
	if err != nil {
		t.Fatalf("Metrics: %v", err)
	}
	return m.Counters[name]
}
