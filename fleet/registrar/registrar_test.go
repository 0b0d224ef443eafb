package registrar

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/test"
)

var ctx = context.Background()

// registrar is Kamailio authenticating from a PostgreSQL subscriber table
// that Subscribers writes.
type registrar struct {
	k    *test.Kamailio
	subs *Subscribers
	rpc  *RPC
}

func startRegistrar(t *testing.T, alg string) *registrar {
	t.Helper()
	pg := test.StartPostgres(t, test.PostgresTCP())
	dsn := pg.NewDatabase(t)
	test.KamailioAuthSchema(t, dsn)
	subs, err := OpenSubscribers(ctx, dsn, WithAlgorithm(alg))
	if err != nil {
		t.Fatalf("OpenSubscribers: %v", err)
	}
	t.Cleanup(subs.Close)
	k := test.StartKamailio(t, test.KamailioPostgresAuth(pg.URL(t, dsn)), test.KamailioPlainPort(0),
		test.KamailioDigestAlgorithm(alg), test.KamailioRequireClientCert(false), test.KamailioRPC())
	rpc, err := NewRPC(k.RPCURL())
	if err != nil {
		t.Fatalf("NewRPC: %v", err)
	}
	return &registrar{k: k, subs: subs, rpc: rpc}
}

// TestPasswordAuthenticates: a password the fleet generated and wrote as
// stored hashes authenticates a REGISTER; another does not. Both digest
// algorithms, SHA-256 being the one hpfleet defaults to.
func TestPasswordAuthenticates(t *testing.T) {
	for _, alg := range []string{AlgSHA256, AlgMD5} {
		t.Run(alg, func(t *testing.T) {
			r := startRegistrar(t, alg)
			const user, domain, pw = "1001", "example.test", "Xq3-generated-by-hpfleet-7Rw"
			h, err := ComputeHashes(alg, user, domain, []byte(pw))
			if err != nil {
				t.Fatalf("ComputeHashes: %v", err)
			}
			if err := r.subs.Set(ctx, user, domain, h, false); err != nil {
				t.Fatalf("Set: %v", err)
			}
			if got := test.DialSIPUA(t, "UDP", r.k.PlainAddr(), user, domain).Register(t, pw); got != 200 {
				t.Fatalf("REGISTER with the generated password = %d, want 200\n%s", got, r.k.SIPDump())
			}
			if got := test.DialSIPUA(t, "UDP", r.k.PlainAddr(), user, domain).Register(t, "wrong"); got != 401 {
				t.Fatalf("REGISTER with a wrong password = %d, want 401", got)
			}
		})
	}
}

// TestRotationOverlap: after a rotation both passwords authenticate until
// DropPrevious (the phone confirmed the new one); then only the new one.
// A second rotation before the drop keeps the then-current one, never an
// older one.
func TestRotationOverlap(t *testing.T) {
	r := startRegistrar(t, AlgSHA256)
	const user, domain = "1002", "example.test"
	set := func(pw string, keep bool) {
		t.Helper()
		h, err := ComputeHashes(AlgSHA256, user, domain, []byte(pw))
		if err != nil {
			t.Fatalf("ComputeHashes: %v", err)
		}
		if err := r.subs.Set(ctx, user, domain, h, keep); err != nil {
			t.Fatalf("Set: %v", err)
		}
	}
	reg := func(pw string) int {
		t.Helper()
		return test.DialSIPUA(t, "UDP", r.k.PlainAddr(), user, domain).Register(t, pw)
	}
	set("old-password", false)
	set("new-password", true)
	set("new-password", true) // a retried Set changes nothing
	for _, pw := range []string{"old-password", "new-password"} {
		if got := reg(pw); got != 200 {
			t.Fatalf("REGISTER with %s during the overlap = %d, want 200", pw, got)
		}
	}
	if err := r.subs.DropPrevious(ctx, user, domain); err != nil {
		t.Fatalf("DropPrevious: %v", err)
	}
	if got := reg("old-password"); got != 401 {
		t.Fatalf("REGISTER with the old password after the drop = %d, want 401", got)
	}
	if got := reg("new-password"); got != 200 {
		t.Fatalf("REGISTER with the new password after the drop = %d, want 200", got)
	}
	// A fresh account (no overlap asked for) leaves no previous entry.
	set("third-password", false)
	if got := reg("new-password"); got != 401 {
		t.Fatalf("REGISTER with a replaced password = %d, want 401", got)
	}
	if err := r.subs.Remove(ctx, user, domain); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if got := reg("third-password"); got != 401 {
		t.Fatalf("REGISTER after Remove = %d, want 401", got)
	}
	if err := r.subs.Set(ctx, "bad user", domain, Hashes{}, false); !errors.Is(err, ErrName) {
		t.Fatalf("Set(bad user) = %v, want ErrName", err)
	}
}

// TestCheckSync: the registrar sends NOTIFY Event: check-sync to a phone
// registered over TLS, on the phone's own connection.
func TestCheckSync(t *testing.T) {
	r := startRegistrar(t, AlgSHA256)
	const user, domain, pw = "1003", "example.test", "check-sync-password"
	h, _ := ComputeHashes(AlgSHA256, user, domain, []byte(pw))
	if err := r.subs.Set(ctx, user, domain, h, false); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if _, err := r.rpc.CheckSync(ctx, user, domain); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("CheckSync(not registered) = %v, want ErrNotRegistered", err)
	}
	phone := test.DialSIPUA(t, "TLS", r.k.Addr(), user, domain)
	if got := phone.Register(t, pw); got != 200 {
		t.Fatalf("REGISTER over TLS = %d, want 200\n%s", got, r.k.SIPDump())
	}
	n, err := r.rpc.CheckSync(ctx, user, domain)
	if err != nil || n != 1 {
		t.Fatalf("CheckSync = %d, %v; want 1 sent\n%s", n, err, r.k.SIPDump())
	}
	m := phone.Read(t, 5*time.Second)
	if !strings.HasPrefix(m.First, "NOTIFY ") || m.Header["event"] != "check-sync" {
		t.Fatalf("phone received %q (Event %q), want NOTIFY with Event: check-sync\n%s", m.First, m.Header["event"], m.Raw)
	}
	if !strings.Contains(m.Header["to"], "sip:"+user+"@"+domain) {
		t.Fatalf("NOTIFY To %q, want the account", m.Header["to"])
	}
	phone.Answer(t, m)
}
