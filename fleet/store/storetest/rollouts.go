package storetest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/store"
)

// RunRollouts runs the conformance suite of store.RolloutStore against b
// (whose stores must implement it) as subtests of t.
func RunRollouts(t *testing.T, b Backend) {
	if b.Open == nil || b.Reopen == nil {
		t.Fatalf("storetest.RunRollouts: Backend needs Open and Reopen")
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"Rollouts", testRollouts},
		{"RolloutRefusals", testRolloutRefusals},
		{"RolloutList", testRolloutList},
		{"RolloutDevices", testRolloutDevices},
		{"ApproverKeys", testApproverKeys},
		{"ConcurrentRolloutWrites", testConcurrentRolloutWrites},
		{"ConcurrentRolloutCreate", testConcurrentRolloutCreate},
		{"RolloutPersistence", testRolloutPersistence},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, b) })
	}
}

func rolloutStore(t *testing.T, s store.Store) store.RolloutStore {
	t.Helper()
	rs, ok := s.(store.RolloutStore)
	if !ok {
		t.Fatalf("%T does not implement store.RolloutStore", s)
	}
	return rs
}

func rdevs(id store.RolloutID, devs ...store.DeviceID) []store.RolloutDevice {
	var out []store.RolloutDevice
	for _, d := range devs {
		out = append(out, store.RolloutDevice{Rollout: id, Device: d, Data: []byte("plan of " + d)})
	}
	return out
}

func testRollouts(t *testing.T, b Backend) {
	s := open(t, b)
	rs := rolloutStore(t, s)
	d1, _ := enrol(t, s, 1, t0)
	d2, _ := enrol(t, s, 2, t0)
	r := store.Rollout{ID: store.NewRolloutID(), Group: "floor-1", Active: true, CreatedAt: at(time.Minute), Data: []byte("plan v1")}
	got, err := rs.CreateRollout(ctx, r, rdevs(r.ID, d1.ID, d2.ID))
	noErr(t, "CreateRollout", err)
	want := r
	want.Rev, want.CreatedAt = 1, norm(r.CreatedAt)
	equal(t, "CreateRollout", got, want)
	got, err = rs.GetRollout(ctx, r.ID)
	noErr(t, "GetRollout", err)
	equal(t, "GetRollout", got, want)
	act, err := rs.ActiveRolloutOf(ctx, "floor-1")
	noErr(t, "ActiveRolloutOf", err)
	equal(t, "ActiveRolloutOf", act, want)
	all, err := rs.ListActiveRollouts(ctx)
	noErr(t, "ListActiveRollouts", err)
	equal(t, "ListActiveRollouts", all, []store.Rollout{want})

	// Compare-and-swap.
	r.Data = []byte("plan v2")
	got, err = rs.PutRollout(ctx, r, 1)
	noErr(t, "PutRollout", err)
	if got.Rev != 2 || string(got.Data) != "plan v2" {
		t.Fatalf("PutRollout = rev %d data %q, want rev 2 and plan v2", got.Rev, got.Data)
	}
	_, err = rs.PutRollout(ctx, r, 1)
	wantErr(t, "PutRollout(stale)", err, store.ErrState)

	// A second active rollout of the group is refused; an inactive one is
	// fine.
	r2 := store.Rollout{ID: store.NewRolloutID(), Group: "floor-1", Active: true, CreatedAt: at(2 * time.Minute), Data: []byte("x")}
	_, err = rs.CreateRollout(ctx, r2, nil)
	wantErr(t, "CreateRollout(second active)", err, store.ErrExists)
	if _, err := rs.GetRollout(ctx, r2.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetRollout(refused) error %v, want ErrNotFound", err)
	}
	// It ends: the group is free, and it never becomes active again.
	r.Active = false
	_, err = rs.PutRollout(ctx, r, 2)
	noErr(t, "PutRollout(end)", err)
	_, err = rs.ActiveRolloutOf(ctx, "floor-1")
	wantErr(t, "ActiveRolloutOf(ended)", err, store.ErrNotFound)
	r.Active = true
	_, err = rs.PutRollout(ctx, r, 3)
	wantErr(t, "PutRollout(active again)", err, store.ErrState)
	_, err = rs.CreateRollout(ctx, r2, nil)
	noErr(t, "CreateRollout(after the first ended)", err)
	// The group and creation time stay what they were.
	r2.Group, r2.CreatedAt = "floor-2", at(time.Hour)
	got, err = rs.PutRollout(ctx, r2, 1)
	noErr(t, "PutRollout(other group)", err)
	if got.Group != "floor-1" || !got.CreatedAt.Equal(norm(at(2*time.Minute))) {
		t.Fatalf("PutRollout(other group) = group %s created %v, want floor-1 and the first time", got.Group, got.CreatedAt)
	}
	_, err = rs.GetRollout(ctx, store.NewRolloutID())
	wantErr(t, "GetRollout(unknown)", err, store.ErrNotFound)
	_, err = rs.PutRollout(ctx, store.Rollout{ID: store.NewRolloutID(), Group: "g", CreatedAt: t0, Data: []byte("x")}, 1)
	wantErr(t, "PutRollout(unknown)", err, store.ErrNotFound)
}

func testRolloutRefusals(t *testing.T, b Backend) {
	s := open(t, b)
	rs := rolloutStore(t, s)
	d1, _ := enrol(t, s, 1, t0)
	id := store.NewRolloutID()
	for _, tt := range []struct {
		name string
		r    store.Rollout
		devs []store.RolloutDevice
	}{
		{"bad ID", store.Rollout{ID: "ro-x", Group: "g", CreatedAt: t0, Data: []byte("x")}, nil},
		{"bad group", store.Rollout{ID: id, Group: "a b", CreatedAt: t0, Data: []byte("x")}, nil},
		{"no data", store.Rollout{ID: id, Group: "g", CreatedAt: t0}, nil},
		{"oversize", store.Rollout{ID: id, Group: "g", CreatedAt: t0, Data: make([]byte, store.MaxRolloutData+1)}, nil},
		{"zero time", store.Rollout{ID: id, Group: "g", Data: []byte("x")}, nil},
		{"device twice", store.Rollout{ID: id, Group: "g", CreatedAt: t0, Data: []byte("x")}, rdevs(id, d1.ID, d1.ID)},
		{"other rollout's device", store.Rollout{ID: id, Group: "g", CreatedAt: t0, Data: []byte("x")}, rdevs(store.NewRolloutID(), d1.ID)},
		{"device without data", store.Rollout{ID: id, Group: "g", CreatedAt: t0, Data: []byte("x")},
			[]store.RolloutDevice{{Rollout: id, Device: d1.ID}}},
	} {
		_, err := rs.CreateRollout(ctx, tt.r, tt.devs)
		wantErr(t, "CreateRollout("+tt.name+")", err, store.ErrInvalid)
	}
	if _, err := rs.GetRollout(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetRollout after refusals error %v, want ErrNotFound", err)
	}
	pg, err := rs.ListRollouts(ctx, store.PageRequest{Limit: 10})
	noErr(t, "ListRollouts", err)
	if len(pg.Items) != 0 {
		t.Fatalf("ListRollouts after refusals = %d rollouts, want none", len(pg.Items))
	}
	_, err = rs.ListRollouts(ctx, store.PageRequest{Limit: 0})
	wantErr(t, "ListRollouts(limit 0)", err, store.ErrInvalid)
	_, err = rs.ListRollouts(ctx, store.PageRequest{Limit: 1, After: "nope"})
	wantErr(t, "ListRollouts(bad cursor)", err, store.ErrInvalid)
}

func testRolloutList(t *testing.T, b Backend) {
	s := open(t, b)
	rs := rolloutStore(t, s)
	var ids []store.RolloutID
	for i := 0; i < 5; i++ {
		r := store.Rollout{ID: store.NewRolloutID(), Group: fmt.Sprintf("g%d", i), Active: i%2 == 0, CreatedAt: at(time.Duration(i) * time.Minute),
			Data: []byte("x")}
		_, err := rs.CreateRollout(ctx, r, nil)
		noErr(t, "CreateRollout", err)
		ids = append(ids, r.ID)
	}
	var got []store.RolloutID
	p := store.PageRequest{Limit: 2}
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatalf("ListRollouts does not end")
		}
		pg, err := rs.ListRollouts(ctx, p)
		noErr(t, "ListRollouts", err)
		for _, r := range pg.Items {
			got = append(got, r.ID)
		}
		if pg.Next == "" {
			break
		}
		p.After = pg.Next
	}
	equal(t, "ListRollouts (newest first)", got, []store.RolloutID{ids[4], ids[3], ids[2], ids[1], ids[0]})
	act, err := rs.ListActiveRollouts(ctx)
	noErr(t, "ListActiveRollouts", err)
	if len(act) != 3 {
		t.Fatalf("ListActiveRollouts = %d, want 3", len(act))
	}
}

func testRolloutDevices(t *testing.T, b Backend) {
	s := open(t, b)
	rs := rolloutStore(t, s)
	var devs []store.DeviceID
	for i := 1; i <= 5; i++ {
		d, _ := enrol(t, s, i, t0)
		devs = append(devs, d.ID)
	}
	r := store.Rollout{ID: store.NewRolloutID(), Group: "g", Active: true, CreatedAt: t0, Data: []byte("x")}
	_, err := rs.CreateRollout(ctx, r, rdevs(r.ID, devs...))
	noErr(t, "CreateRollout", err)
	d, err := rs.GetRolloutDevice(ctx, r.ID, devs[2])
	noErr(t, "GetRolloutDevice", err)
	equal(t, "GetRolloutDevice", d, store.RolloutDevice{Rollout: r.ID, Device: devs[2], Rev: 1, Data: []byte("plan of " + devs[2])})
	d.Data = []byte("released")
	got, err := rs.PutRolloutDevice(ctx, d, 1)
	noErr(t, "PutRolloutDevice", err)
	if got.Rev != 2 {
		t.Fatalf("PutRolloutDevice.Rev = %d, want 2", got.Rev)
	}
	_, err = rs.PutRolloutDevice(ctx, d, 1)
	wantErr(t, "PutRolloutDevice(stale)", err, store.ErrState)
	_, err = rs.PutRolloutDevice(ctx, store.RolloutDevice{Rollout: r.ID, Device: store.NewDeviceID(), Data: []byte("x")}, 1)
	wantErr(t, "PutRolloutDevice(not in the rollout)", err, store.ErrNotFound)
	_, err = rs.PutRolloutDevice(ctx, store.RolloutDevice{Rollout: r.ID, Device: devs[0], Data: make([]byte, store.MaxRolloutDeviceData+1)}, 1)
	wantErr(t, "PutRolloutDevice(oversize)", err, store.ErrInvalid)
	_, err = rs.GetRolloutDevice(ctx, r.ID, store.NewDeviceID())
	wantErr(t, "GetRolloutDevice(unknown)", err, store.ErrNotFound)

	var listed []store.DeviceID
	p := store.PageRequest{Limit: 2}
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatalf("ListRolloutDevices does not end")
		}
		pg, err := rs.ListRolloutDevices(ctx, r.ID, p)
		noErr(t, "ListRolloutDevices", err)
		for _, d := range pg.Items {
			listed = append(listed, d.Device)
			if d.Device == devs[2] && string(d.Data) != "released" {
				t.Fatalf("ListRolloutDevices(%s).Data = %q, want released", d.Device, d.Data)
			}
		}
		if pg.Next == "" {
			break
		}
		p.After = pg.Next
	}
	want := append([]store.DeviceID(nil), devs...)
	sortIDs(want)
	equal(t, "ListRolloutDevices", listed, want)
	_, err = rs.ListRolloutDevices(ctx, store.NewRolloutID(), store.PageRequest{Limit: 1})
	wantErr(t, "ListRolloutDevices(unknown rollout)", err, store.ErrNotFound)
}

func sortIDs(ids []store.DeviceID) {
	for i := 1; i < len(ids); i++ {
		for j := i; j > 0 && ids[j] < ids[j-1]; j-- {
			ids[j], ids[j-1] = ids[j-1], ids[j]
		}
	}
}

func testApproverKeys(t *testing.T, b Backend) {
	s := open(t, b)
	rs := rolloutStore(t, s)
	k1 := store.ApproverKey{KeyID: strings.Repeat("a", 64), Admin: "alice", PublicKey: pubKey(t), RegisteredAt: t0}
	noErr(t, "PutApproverKey", rs.PutApproverKey(ctx, k1))
	got, err := rs.GetApproverKey(ctx, k1.KeyID)
	noErr(t, "GetApproverKey", err)
	want := k1
	want.RegisteredAt = norm(t0)
	equal(t, "GetApproverKey", got, want)
	wantErr(t, "PutApproverKey(same key)", rs.PutApproverKey(ctx, store.ApproverKey{KeyID: k1.KeyID, Admin: "bob", PublicKey: pubKey(t), RegisteredAt: t0}), store.ErrExists)
	wantErr(t, "PutApproverKey(second key of alice)", rs.PutApproverKey(ctx, store.ApproverKey{KeyID: strings.Repeat("b", 64), Admin: "alice", PublicKey: pubKey(t), RegisteredAt: t0}), store.ErrExists)
	k2 := store.ApproverKey{KeyID: strings.Repeat("c", 64), Admin: "bob", PublicKey: pubKey(t), RegisteredAt: t0}
	noErr(t, "PutApproverKey(bob)", rs.PutApproverKey(ctx, k2))
	list, err := rs.ListApproverKeys(ctx)
	noErr(t, "ListApproverKeys", err)
	if len(list) != 2 || list[0].KeyID != k1.KeyID || list[1].KeyID != k2.KeyID {
		t.Fatalf("ListApproverKeys = %v, want alice's and bob's in key order", list)
	}
	for _, tt := range []struct {
		name string
		k    store.ApproverKey
	}{
		{"short ID", store.ApproverKey{KeyID: "abc", Admin: "x", PublicKey: []byte{1}, RegisteredAt: t0}},
		{"upper-case ID", store.ApproverKey{KeyID: strings.Repeat("A", 64), Admin: "x", PublicKey: []byte{1}, RegisteredAt: t0}},
		{"no admin", store.ApproverKey{KeyID: strings.Repeat("d", 64), PublicKey: []byte{1}, RegisteredAt: t0}},
		{"no key", store.ApproverKey{KeyID: strings.Repeat("d", 64), Admin: "x", RegisteredAt: t0}},
		{"big key", store.ApproverKey{KeyID: strings.Repeat("d", 64), Admin: "x", PublicKey: make([]byte, store.MaxApproverKey+1), RegisteredAt: t0}},
	} {
		wantErr(t, "PutApproverKey("+tt.name+")", rs.PutApproverKey(ctx, tt.k), store.ErrInvalid)
	}
	noErr(t, "DeleteApproverKey", rs.DeleteApproverKey(ctx, k1.KeyID))
	wantErr(t, "DeleteApproverKey(again)", rs.DeleteApproverKey(ctx, k1.KeyID), store.ErrNotFound)
	_, err = rs.GetApproverKey(ctx, k1.KeyID)
	wantErr(t, "GetApproverKey(deleted)", err, store.ErrNotFound)
	// Alice may register a new key now.
	noErr(t, "PutApproverKey(alice again)", rs.PutApproverKey(ctx, store.ApproverKey{KeyID: strings.Repeat("e", 64), Admin: "alice", PublicKey: pubKey(t), RegisteredAt: t0}))
}

// testConcurrentRolloutWrites: replicas advancing one rollout from the same
// revision: exactly one wins (the others start again from what it wrote).
func testConcurrentRolloutWrites(t *testing.T, b Backend) {
	s := open(t, b)
	rs := rolloutStore(t, s)
	r := store.Rollout{ID: store.NewRolloutID(), Group: "g", Active: true, CreatedAt: t0, Data: []byte("v1")}
	_, err := rs.CreateRollout(ctx, r, nil)
	noErr(t, "CreateRollout", err)
	const n = 8
	stores := replicas(t, b, s, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, lost := 0, 0
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			w := r
			w.Data = fmt.Appendf(nil, "writer %d", i)
			_, err := rolloutStore(t, stores[i]).PutRollout(ctx, w, 1)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, store.ErrState):
				lost++
			default:
				t.Errorf("PutRollout(writer %d) error %v", i, err)
			}
		}(i)
	}
	wg.Wait()
	if won != 1 || lost != n-1 {
		t.Fatalf("%d writers from revision 1: %d won, %d refused; want 1 and %d", n, won, lost, n-1)
	}
}

// testConcurrentRolloutCreate: replicas creating an active rollout of one
// group at once: exactly one is stored.
func testConcurrentRolloutCreate(t *testing.T, b Backend) {
	s := open(t, b)
	const n = 8
	stores := replicas(t, b, s, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, lost := 0, 0
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := store.Rollout{ID: store.NewRolloutID(), Group: "g", Active: true, CreatedAt: t0, Data: []byte("x")}
			_, err := rolloutStore(t, stores[i]).CreateRollout(ctx, r, nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, store.ErrExists):
				lost++
			default:
				t.Errorf("CreateRollout(writer %d) error %v", i, err)
			}
		}(i)
	}
	wg.Wait()
	if won != 1 || lost != n-1 {
		t.Fatalf("%d replicas creating an active rollout of one group: %d stored, %d refused; want 1 and %d", n, won, lost, n-1)
	}
}

func testRolloutPersistence(t *testing.T, b Backend) {
	s := b.Open(t)
	rs := rolloutStore(t, s)
	d1, _ := enrol(t, s, 1, t0)
	r := store.Rollout{ID: store.NewRolloutID(), Group: "g", Active: true, CreatedAt: t0, Data: []byte("x")}
	_, err := rs.CreateRollout(ctx, r, rdevs(r.ID, d1.ID))
	noErr(t, "CreateRollout", err)
	k := store.ApproverKey{KeyID: strings.Repeat("a", 64), Admin: "alice", PublicKey: pubKey(t), RegisteredAt: t0}
	noErr(t, "PutApproverKey", rs.PutApproverKey(ctx, k))
	s = b.Reopen(t, s)
	t.Cleanup(func() { s.Close() })
	rs = rolloutStore(t, s)
	got, err := rs.ActiveRolloutOf(ctx, "g")
	noErr(t, "ActiveRolloutOf(after reopen)", err)
	if got.ID != r.ID || got.Rev != 1 {
		t.Fatalf("ActiveRolloutOf(after reopen) = %s rev %d, want %s rev 1", got.ID, got.Rev, r.ID)
	}
	if _, err := rs.GetRolloutDevice(ctx, r.ID, d1.ID); err != nil {
		t.Fatalf("GetRolloutDevice(after reopen) error %v", err)
	}
	if _, err := rs.GetApproverKey(ctx, k.KeyID); err != nil {
		t.Fatalf("GetApproverKey(after reopen) error %v", err)
	}
}
