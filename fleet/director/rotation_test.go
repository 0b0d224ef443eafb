package director_test

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/jackc/pgx/v5"

	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/director"
	"github.com/hardphone/hardphone/fleet/registrar"
	"github.com/hardphone/hardphone/fleet/sealed"
	"github.com/hardphone/hardphone/fleet/store"
	"github.com/hardphone/hardphone/fleet/store/boltstore"
	"github.com/hardphone/hardphone/test"
)

// TestScheduledRotation: passwords rotate on schedule, the previous one
// stays at the registrar until the phone confirms, and no rotation starts
// before that; every sealed value opens with the device's key only.
func TestScheduledRotation(t *testing.T) {
	pg := test.StartPostgres(t)
	regDSN := pg.NewDatabase(t)
	test.KamailioAuthSchema(t, regDSN)
	subs, err := registrar.OpenSubscribers(ctx, regDSN)
	if err != nil {
		t.Fatalf("OpenSubscribers: %v", err)
	}
	t.Cleanup(subs.Close)
	c := &clock{t: time.Now().UTC().Truncate(time.Second)}
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatalf("boltstore.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := director.New(director.Config{Store: st, Director: directorRepo(t, c.Now), Registrar: subs, Domains: []string{sipDomain}},
		director.WithClock(c.Now), director.WithRotation(time.Hour))
	if err != nil {
		t.Fatalf("director.New: %v", err)
	}
	// A device with a software sealing key standing in for its TPM's.
	key, _ := ecdh.P256().GenerateKey(rand.Reader)
	spki, _ := x509.MarshalPKIXPublicKey(key.PublicKey())
	id := enrolDirect(t, st, 1, c.Now())[0]
	if err := st.SetSealingKey(ctx, id, spki); err != nil {
		t.Fatalf("SetSealingKey: %v", err)
	}
	doc := []byte(fmt.Sprintf(`[[account]]
name = "line1"
user = "1001"
registrar = "127.0.0.1:5061"
domain = %q
password_cred = "sip/line1"
`, sipDomain))
	if _, err := svc.SetConfig(ctx, store.Scope{Kind: store.ScopeDevice, Name: string(id)}, doc, "test"); err != nil {
		t.Fatalf("SetConfig: %v", err)
	}
	rows := func() (cur, prev int) {
		t.Helper()
		conn, err := pgx.Connect(ctx, regDSN)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer conn.Close(ctx)
		conn.QueryRow(ctx, "SELECT count(*) FROM subscriber WHERE username = '1001'").Scan(&cur)
		conn.QueryRow(ctx, "SELECT count(*) FROM subscriber_prev WHERE username = '1001'").Scan(&prev)
		return cur, prev
	}
	status := func() api.AccountStatus {
		t.Helper()
		s, err := svc.Status(ctx, id)
		if err != nil || len(s.Accounts) != 1 {
			t.Fatalf("Status = %+v, %v", s, err)
		}
		return s.Accounts[0]
	}
	// The phone's view: the sealed password of the published document.
	opens := func() string {
		t.Helper()
		s, err := svc.Status(ctx, id)
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		var f struct {
			Account []struct {
				PasswordSealed string `toml:"password_sealed"`
			} `toml:"account"`
		}
		if _, err := toml.Decode(s.Config, &f); err != nil || len(f.Account) != 1 {
			t.Fatalf("published document: %v\n%s", err, s.Config)
		}
		b, err := sealed.Parse(f.Account[0].PasswordSealed)
		if err != nil {
			t.Fatalf("sealed.Parse: %v", err)
		}
		pw, err := sealed.Open(key, f.Account[0].PasswordSealed, sealed.Context{DeviceID: string(id), Version: b.Version, Name: "sip/line1"})
		if err != nil {
			t.Fatalf("the device's key does not open its sealed password: %v", err)
		}
		other, _ := ecdh.P256().GenerateKey(rand.Reader)
		if _, err := sealed.Open(other, f.Account[0].PasswordSealed, sealed.Context{DeviceID: string(id), Version: b.Version, Name: "sip/line1"}); err == nil {
			t.Fatalf("another key opened the sealed password")
		}
		return string(pw)
	}
	a := status()
	pw1 := opens()
	if cur, prev := rows(); a.Generation != 1 || a.PreviousValid || cur != 1 || prev != 0 {
		t.Fatalf("first password: %+v, subscriber rows %d/%d; want generation 1, one row, no previous", a, cur, prev)
	}
	c.Add(61 * time.Minute)
	if _, err := svc.RunOnce(ctx); err != nil {
		t.Fatalf("RunOnce: %v", err)
	}
	a = status()
	pw2 := opens()
	if cur, prev := rows(); a.Generation != 2 || !a.PreviousValid || cur != 1 || prev != 1 || pw2 == pw1 {
		t.Fatalf("after an hour: %+v, rows %d/%d; want generation 2 with the previous password kept", a, cur, prev)
	}
	// Unconfirmed: no further rotation, however long.
	c.Add(5 * time.Hour)
	if _, err := svc.RunOnce(ctx); err != nil {
		t.Fatalf("RunOnce: %v", err)
	}
	if a = status(); a.Generation != 2 {
		t.Fatalf("a rotation started before the phone confirmed the last: generation %d", a.Generation)
	}
	// A report of an older document confirms nothing.
	if err := svc.Reported(ctx, id, &api.Provisioning{ConfigVersion: a.SealedVersion - 1}); err != nil {
		t.Fatalf("Reported: %v", err)
	}
	if _, prev := rows(); prev != 1 || !status().PreviousValid {
		t.Fatalf("a report of an older document dropped the previous password")
	}
	if err := svc.Reported(ctx, id, &api.Provisioning{ConfigVersion: a.SealedVersion}); err != nil {
		t.Fatalf("Reported: %v", err)
	}
	if _, prev := rows(); prev != 0 || status().PreviousValid {
		t.Fatalf("the phone's confirmation did not drop the previous password")
	}
	c.Add(61 * time.Minute)
	if _, err := svc.RunOnce(ctx); err != nil {
		t.Fatalf("RunOnce: %v", err)
	}
	if a = status(); a.Generation != 3 || opens() == pw2 {
		t.Fatalf("after the confirmation and another hour: generation %d, want 3 with a new password", a.Generation)
	}
	// Retired: its accounts leave the registrar.
	if err := st.SetDeviceState(ctx, id, store.StateRetired, store.ReasonCessationOfOperation, c.Now()); err != nil {
		t.Fatalf("SetDeviceState: %v", err)
	}
	if err := svc.Retired(ctx, id); err != nil {
		t.Fatalf("Retired: %v", err)
	}
	if cur, prev := rows(); cur != 0 || prev != 0 {
		t.Fatalf("retired device's subscriber rows %d/%d, want none", cur, prev)
	}
}
