package storetest

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/store"
)

// sealingKey is a DER SubjectPublicKeyInfo of a fresh P-256 key.
func sealingKey(t testing.TB) []byte {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	der, err := x509.MarshalPKIXPublicKey(k.PublicKey())
	if err != nil {
		t.Fatalf("MarshalPKIXPublicKey: %v", err)
	}
	return der
}

func testSealingKeys(t *testing.T, b Backend) {
	s := open(t, b)
	// A device enrolled with a sealing key keeps it.
	allow(t, s, 1, 2)
	d, c := newDevice(t, s, 1, t0)
	d.SealingPublicKey = sealingKey(t)
	noErr(t, "CreateDevice(with sealing key)", s.CreateDevice(ctx, d, c))
	got, err := s.GetDevice(ctx, d.ID)
	noErr(t, "GetDevice", err)
	equal(t, "GetDevice(with sealing key)", got, stored(d, c))

	// One without gets one at re-enrolment.
	d2, c2 := newDevice(t, s, 2, t0)
	noErr(t, "CreateDevice", s.CreateDevice(ctx, d2, c2))
	got, err = s.GetDevice(ctx, d2.ID)
	noErr(t, "GetDevice", err)
	if got.SealingPublicKey != nil {
		t.Fatalf("GetDevice(no sealing key).SealingPublicKey = %x, want nil", got.SealingPublicKey)
	}
	k2 := sealingKey(t)
	noErr(t, "SetSealingKey", s.SetSealingKey(ctx, d2.ID, k2))
	got, err = s.GetDevice(ctx, d2.ID)
	noErr(t, "GetDevice", err)
	equal(t, "GetDevice(after SetSealingKey).SealingPublicKey", got.SealingPublicKey, k2)

	before := snap(t, s)
	wantErr(t, "SetSealingKey(garbage)", s.SetSealingKey(ctx, d2.ID, []byte("not DER")), store.ErrInvalid)
	wantErr(t, "SetSealingKey(none)", s.SetSealingKey(ctx, d2.ID, nil), store.ErrInvalid)
	wantErr(t, "SetSealingKey(no device)", s.SetSealingKey(ctx, store.NewDeviceID(), k2), store.ErrNotFound)
	unchanged(t, s, before, "refused sealing keys")
	noErr(t, "SetDeviceState(retired)", s.SetDeviceState(ctx, d2.ID, store.StateRetired, store.ReasonCessationOfOperation, at(time.Hour)))
	wantErr(t, "SetSealingKey(retired)", s.SetSealingKey(ctx, d2.ID, sealingKey(t)), store.ErrState)

	// Challenges carry the sealing key and its secret hash, or neither.
	allow(t, s, 3)
	ch := challenge(t, 3, t0)
	ch.SealingPublicKey, ch.SealingSecretHash = sealingKey(t), sha256.Sum256([]byte("sealing secret"))
	noErr(t, "PutChallenge(with sealing key)", s.PutChallenge(ctx, ch))
	back, err := s.ConsumeChallenge(ctx, ch.ID, t0)
	noErr(t, "ConsumeChallenge", err)
	equal(t, "ConsumeChallenge(with sealing key)", back, storedChallenge(ch))
	half := challenge(t, 3, t0)
	half.SealingPublicKey = sealingKey(t)
	wantErr(t, "PutChallenge(sealing key without hash)", s.PutChallenge(ctx, half), store.ErrInvalid)
	half = challenge(t, 3, t0)
	half.SealingSecretHash = sha256.Sum256([]byte("x"))
	wantErr(t, "PutChallenge(hash without sealing key)", s.PutChallenge(ctx, half), store.ErrInvalid)
}

func testAssignments(t *testing.T, b Backend) {
	s := open(t, b)
	d, _ := enrol(t, s, 1, t0)
	group := store.Scope{Kind: store.ScopeGroup, Name: "floor-1"}
	_, err := s.GetAssignment(ctx, group)
	wantErr(t, "GetAssignment(none)", err, store.ErrNotFound)

	fw := &store.FirmwareTarget{Name: "hardphone-1.2.raucb", Length: 12345, SHA256: sha256.Sum256([]byte("bundle")),
		Compatible: "hp-desk-1", Version: "1.2", SecurityVersion: 3}
	a := store.Assignment{Scope: group, Config: []byte("[media]\nrtp_port_min = 20000\n"), UpdatedAt: t0, UpdatedBy: "CN=admin"}
	got, err := s.PutAssignment(ctx, a, 0)
	noErr(t, "PutAssignment(first)", err)
	if got.Revision != 1 {
		t.Fatalf("PutAssignment(first).Revision = %d, want 1", got.Revision)
	}
	_, err = s.PutAssignment(ctx, a, 0)
	wantErr(t, "PutAssignment(first again)", err, store.ErrState)
	a.Firmware = fw
	a.UpdatedAt = at(time.Minute)
	got, err = s.PutAssignment(ctx, a, 1)
	noErr(t, "PutAssignment(second)", err)
	want := a
	want.Revision, want.UpdatedAt = 2, norm(a.UpdatedAt)
	equal(t, "PutAssignment(second)", got, want)
	back, err := s.GetAssignment(ctx, group)
	noErr(t, "GetAssignment", err)
	equal(t, "GetAssignment", back, want)
	_, err = s.PutAssignment(ctx, a, 1)
	wantErr(t, "PutAssignment(stale revision)", err, store.ErrState)
	back, _ = s.GetAssignment(ctx, group)
	equal(t, "GetAssignment after a stale write", back, want)

	// Device scopes need the device.
	dev := store.Assignment{Scope: store.Scope{Kind: store.ScopeDevice, Name: string(d.ID)}, Config: []byte("x = 1\n"), UpdatedAt: t0}
	_, err = s.PutAssignment(ctx, dev, 0)
	noErr(t, "PutAssignment(device)", err)
	dev.Scope.Name = string(store.NewDeviceID())
	_, err = s.PutAssignment(ctx, dev, 0)
	wantErr(t, "PutAssignment(unknown device)", err, store.ErrNotFound)

	mod := func(f func(*store.Assignment)) store.Assignment {
		x := store.Assignment{Scope: store.Scope{Kind: store.ScopeGroup, Name: "floor-2"}, Config: []byte("a = 1\n"), UpdatedAt: t0}
		f(&x)
		return x
	}
	for _, tt := range []struct {
		name string
		a    store.Assignment
	}{
		{"bad kind", mod(func(a *store.Assignment) { a.Scope.Kind = "site" })},
		{"bad group", mod(func(a *store.Assignment) { a.Scope.Name = "floor 2" })},
		{"bad device", mod(func(a *store.Assignment) { a.Scope = store.Scope{Kind: store.ScopeDevice, Name: "dev-1"} })},
		{"empty config", mod(func(a *store.Assignment) { a.Config = []byte{} })},
		{"oversize config", mod(func(a *store.Assignment) { a.Config = make([]byte, store.MaxConfigDoc+1) })},
		{"firmware without hash", mod(func(a *store.Assignment) { a.Firmware = &store.FirmwareTarget{Name: "x", Length: 1} })},
		{"firmware name", mod(func(a *store.Assignment) {
			a.Firmware = &store.FirmwareTarget{Name: strings.Repeat("n", store.MaxTargetNameLen+1), Length: 1, SHA256: fw.SHA256}
		})},
		{"zero time", mod(func(a *store.Assignment) { a.UpdatedAt = time.Time{} })},
	} {
		_, err := s.PutAssignment(ctx, tt.a, 0)
		wantErr(t, "PutAssignment("+tt.name+")", err, store.ErrInvalid)
		if _, err := s.GetAssignment(ctx, store.Scope{Kind: store.ScopeGroup, Name: "floor-2"}); err == nil {
			t.Fatalf("PutAssignment(%s) wrote an assignment", tt.name)
		}
	}

	noErr(t, "DeleteAssignment", s.DeleteAssignment(ctx, group))
	wantErr(t, "DeleteAssignment(again)", s.DeleteAssignment(ctx, group), store.ErrNotFound)
	_, err = s.GetAssignment(ctx, group)
	wantErr(t, "GetAssignment(deleted)", err, store.ErrNotFound)
	// After a delete the next write is a first one again.
	got, err = s.PutAssignment(ctx, a, 0)
	noErr(t, "PutAssignment(after delete)", err)
	if got.Revision != 1 {
		t.Fatalf("PutAssignment(after delete).Revision = %d, want 1", got.Revision)
	}
}

func testProvisions(t *testing.T, b Backend) {
	s := open(t, b)
	var ids []store.DeviceID
	for i := 1; i <= 3; i++ {
		d, _ := enrol(t, s, i, t0)
		ids = append(ids, d.ID)
	}
	_, err := s.GetProvision(ctx, ids[0])
	wantErr(t, "GetProvision(none)", err, store.ErrNotFound)
	_, err = s.PutProvision(ctx, store.Provision{DeviceID: store.NewDeviceID(), DueAt: t0, Data: []byte("x")}, 0)
	wantErr(t, "PutProvision(unknown device)", err, store.ErrNotFound)

	// Due: ids[2] at +1m, ids[0] at +2m, ids[1] at +3m.
	dues := map[store.DeviceID]time.Duration{ids[2]: time.Minute, ids[0]: 2 * time.Minute, ids[1]: 3 * time.Minute}
	for _, id := range ids {
		p, err := s.PutProvision(ctx, store.Provision{DeviceID: id, DueAt: at(dues[id]), Data: []byte("state of " + id)}, 0)
		noErr(t, "PutProvision(first)", err)
		if p.Rev != 1 {
			t.Fatalf("PutProvision(first).Rev = %d, want 1", p.Rev)
		}
	}
	due, err := s.ListProvisionDue(ctx, at(2*time.Minute), store.MaxPageSize)
	noErr(t, "ListProvisionDue", err)
	equal(t, "ListProvisionDue(+2m)", due, []store.DeviceID{ids[2], ids[0]})
	due, err = s.ListProvisionDue(ctx, at(time.Hour), 2)
	noErr(t, "ListProvisionDue", err)
	equal(t, "ListProvisionDue(limit 2)", due, []store.DeviceID{ids[2], ids[0]})
	due, err = s.ListProvisionDue(ctx, at(0), 10)
	noErr(t, "ListProvisionDue", err)
	if len(due) != 0 {
		t.Fatalf("ListProvisionDue(before all) = %v, want none", due)
	}

	// A write moves the device in the due order and is compare-and-swap.
	p, err := s.PutProvision(ctx, store.Provision{DeviceID: ids[2], DueAt: at(time.Hour), Data: []byte("v2")}, 1)
	noErr(t, "PutProvision(second)", err)
	if p.Rev != 2 {
		t.Fatalf("PutProvision(second).Rev = %d, want 2", p.Rev)
	}
	_, err = s.PutProvision(ctx, store.Provision{DeviceID: ids[2], DueAt: at(0), Data: []byte("lost")}, 1)
	wantErr(t, "PutProvision(stale)", err, store.ErrState)
	_, err = s.PutProvision(ctx, store.Provision{DeviceID: ids[2], DueAt: at(0), Data: []byte("lost")}, 0)
	wantErr(t, "PutProvision(first again)", err, store.ErrState)
	got, err := s.GetProvision(ctx, ids[2])
	noErr(t, "GetProvision", err)
	equal(t, "GetProvision", got, store.Provision{DeviceID: ids[2], Rev: 2, DueAt: norm(at(time.Hour)), Data: []byte("v2")})
	due, err = s.ListProvisionDue(ctx, at(3*time.Minute), 10)
	noErr(t, "ListProvisionDue", err)
	equal(t, "ListProvisionDue(after a move)", due, []store.DeviceID{ids[0], ids[1]})

	for _, tt := range []struct {
		name string
		p    store.Provision
	}{
		{"no data", store.Provision{DeviceID: ids[0], DueAt: t0}},
		{"oversize", store.Provision{DeviceID: ids[0], DueAt: t0, Data: make([]byte, store.MaxProvisionData+1)}},
		{"bad device", store.Provision{DeviceID: "dev-x", DueAt: t0, Data: []byte("x")}},
		{"zero due", store.Provision{DeviceID: ids[0], Data: []byte("x")}},
	} {
		_, err := s.PutProvision(ctx, tt.p, 1)
		wantErr(t, "PutProvision("+tt.name+")", err, store.ErrInvalid)
	}
	got, _ = s.GetProvision(ctx, ids[0])
	if got.Rev != 1 || string(got.Data) != "state of "+string(ids[0]) {
		t.Fatalf("GetProvision after refusals = %+v, want revision 1 unchanged", got)
	}
	_, err = s.ListProvisionDue(ctx, t0, 0)
	wantErr(t, "ListProvisionDue(limit 0)", err, store.ErrInvalid)
}

// testConcurrentProvision: replicas racing to write one device's state
// from the same revision: exactly one wins.
func testConcurrentProvision(t *testing.T, b Backend) {
	s := open(t, b)
	d, _ := enrol(t, s, 1, t0)
	_, err := s.PutProvision(ctx, store.Provision{DeviceID: d.ID, DueAt: t0, Data: []byte("v1")}, 0)
	noErr(t, "PutProvision", err)
	const n = 8
	stores := replicas(t, b, s, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, lost := 0, 0
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := stores[i].PutProvision(ctx, store.Provision{DeviceID: d.ID, DueAt: t0, Data: fmt.Appendf(nil, "writer %d", i)}, 1)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, store.ErrState):
				lost++
			default:
				t.Errorf("PutProvision(writer %d) error %v", i, err)
			}
		}(i)
	}
	wg.Wait()
	if won != 1 || lost != n-1 {
		t.Fatalf("%d writers from revision 1: %d won, %d refused; want 1 and %d", n, won, lost, n-1)
	}
	got, err := s.GetProvision(ctx, d.ID)
	noErr(t, "GetProvision", err)
	if got.Rev != 2 || !strings.HasPrefix(string(got.Data), "writer ") {
		t.Fatalf("GetProvision after the race = %+v, want revision 2 by one writer", got)
	}
}
