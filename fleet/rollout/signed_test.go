package rollout_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/audit/pgaudit"
	"github.com/hardphone/hardphone/fleet/client"
	"github.com/hardphone/hardphone/fleet/director"
	"github.com/hardphone/hardphone/fleet/rollout"
	"github.com/hardphone/hardphone/fleet/store/pgstore"
	"github.com/hardphone/hardphone/fleet/tufrepo"
)

// register registers key as name's approval key through the API.
func register(t *testing.T, c *client.Client, name string, key *tufrepo.Key) error {
	t.Helper()
	der, err := key.PublicDER()
	if err != nil {
		t.Fatalf("PublicDER: %v", err)
	}
	proof, err := tufrepo.SignProof(key, tufrepo.ProofMessage(serverName, name, key.ID()))
	if err != nil {
		t.Fatalf("SignProof: %v", err)
	}
	_, err = c.RegisterApproverKey(ctx, api.ApproverKeyRequest{PublicKey: der, Proof: proof})
	return err
}

// TestSignedApproval: the director root wants three targets signatures,
// the server's online key and two admins' own keys. On PostgreSQL, with
// two replicas advancing the rollout. Refused: a key an admin does not
// hold or did not prove, one admin's signatures alone, signatures by
// another key or over another device's or another rollout's metadata, a
// viewer. A compromised server's metadata signed by its online keys
// alone is refused by the phone itself. Two admins' signatures move the
// fleet, ring by ring, and the phones verify them.
func TestSignedApproval(t *testing.T) {
	w := newWorld(t, worldOpts{backend: "postgres", approvers: 3, threshold: 3})
	if got := w.engine.SignaturesNeeded(); got != 2 {
		t.Fatalf("SignaturesNeeded() = %d, want 2", got)
	}
	olivia := w.admin("olivia", adminauth.RoleOperator)
	alice := w.admin("alice", adminauth.RoleOperator)
	bob := w.admin("bob", adminauth.RoleOperator)
	carol := w.admin("carol", adminauth.RoleOperator)
	vera := w.admin("vera", adminauth.RoleViewer)
	var phones []*phone
	for i := 0; i < 3; i++ {
		phones = append(phones, w.newPhone("floor-9"))
	}
	other := w.newPhone("floor-10")
	// The online keys alone publish nothing, not even a first, empty
	// targets: the phones have no director metadata yet.
	if _, err := phones[0].Assigned(); err == nil {
		t.Fatalf("a phone got director metadata the online key signed alone")
	}

	// Approval keys: each admin proves the key, once.
	for _, r := range []struct {
		c    *client.Client
		name string
		key  *tufrepo.Key
	}{{alice, "alice", w.apKeys[0]}, {bob, "bob", w.apKeys[1]}, {carol, "carol", w.apKeys[2]}} {
		if err := register(t, r.c, r.name, r.key); err != nil {
			t.Fatalf("register(%s): %v", r.name, err)
		}
	}
	wantCode(t, "register(alice's key again, by bob)", register(t, bob, "bob", w.apKeys[0]), api.CodeForbidden)
	stranger := genKeys(t, w.keyDir, "stranger", 1)[0]
	wantCode(t, "register(a key the root does not list)", register(t, w.admin("dave", adminauth.RoleOperator), "dave", stranger), api.CodeForbidden)
	der, _ := w.apKeys[2].PublicDER()
	proof, _ := tufrepo.SignProof(w.apKeys[2], tufrepo.ProofMessage(serverName, "carol", w.apKeys[2].ID()))
	_, err := w.admin("erin", adminauth.RoleOperator).RegisterApproverKey(ctx, api.ApproverKeyRequest{PublicKey: der, Proof: proof})
	wantCode(t, "register(carol's proof, by erin)", err, api.CodeForbidden)

	// Nothing changes directly.
	_, err = w.admins["admin"].AssignFirmware(ctx, "group", "floor-9", "hardphone-2.0.0.raucb")
	wantCode(t, "AssignFirmware(directly)", err, api.CodeConflict)

	req := api.RolloutRequest{Kind: "firmware", Group: "floor-9", Firmware: "hardphone-2.0.0.raucb",
		Rings: []api.RolloutRing{canary(phones[0]), {Name: "all", Percent: 100}}, Deadline: "30m", ReportTimeout: "20m"}
	v, err := olivia.CreateRollout(ctx, req)
	if err != nil {
		t.Fatalf("CreateRollout: %v", err)
	}
	if v.Signatures != 2 || v.State != "pending" {
		t.Fatalf("CreateRollout = %+v, want pending, 2 signatures", v)
	}
	v10, err := olivia.CreateRollout(ctx, api.RolloutRequest{Kind: "firmware", Group: "floor-10", Firmware: "hardphone-3.0.0.raucb",
		Rings: []api.RolloutRing{{Name: "all", Percent: 100}}})
	if err != nil {
		t.Fatalf("CreateRollout(floor-10): %v", err)
	}
	_, err = alice.ApproveRollout(ctx, v.ID)
	wantCode(t, "ApproveRollout(without signatures)", err, api.CodeConflict)

	byBob := signAll(t, bob, v.ID, w.apKeys[1])
	byCarol := signAll(t, bob, v.ID, w.apKeys[2])
	otherRollout := signAll(t, bob, v10.ID, w.apKeys[1])
	_, err = vera.SignRollout(ctx, v.ID, api.SignatureUpload{KeyID: w.apKeys[1].ID(), Devices: byBob.Devices})
	wantCode(t, "SignRollout(viewer)", err, api.CodeForbidden)
	_, err = bob.SignRollout(ctx, v.ID, api.SignatureUpload{KeyID: w.apKeys[2].ID(), Devices: byCarol.Devices})
	wantCode(t, "SignRollout(bob with carol's key)", err, api.CodeForbidden)
	_, err = bob.SignRollout(ctx, v.ID, api.SignatureUpload{KeyID: w.apKeys[1].ID(), Devices: byCarol.Devices})
	wantCode(t, "SignRollout(bob's key ID, carol's signatures)", err, api.CodeForbidden)
	swapped := append([]api.DeviceSignatures(nil), byBob.Devices...)
	swapped[0].Forward, swapped[1].Forward = swapped[1].Forward, swapped[0].Forward
	_, err = bob.SignRollout(ctx, v.ID, api.SignatureUpload{KeyID: w.apKeys[1].ID(), Devices: swapped})
	wantCode(t, "SignRollout(another device's signatures)", err, api.CodeForbidden)
	mixed := append([]api.DeviceSignatures(nil), byBob.Devices...)
	mixed[0].Forward = otherRollout.Devices[0].Forward
	_, err = bob.SignRollout(ctx, v.ID, api.SignatureUpload{KeyID: w.apKeys[1].ID(), Devices: mixed})
	wantCode(t, "SignRollout(another rollout's signature)", err, api.CodeForbidden)

	// One admin's signatures are not enough.
	if v, err = alice.SignRollout(ctx, v.ID, signAll(t, alice, v.ID, w.apKeys[0])); err != nil {
		t.Fatalf("SignRollout(alice): %v", err)
	}
	w.tick()
	if v = w.show(v.ID); v.State != "pending" || len(v.Approvals) != 1 {
		t.Fatalf("after one admin's signatures = %s %v, want pending with one approval", v.State, v.Approvals)
	}
	if a, err := phones[0].Assigned(); err == nil && a.Firmware != nil {
		t.Fatalf("the canary names firmware %s on one admin's signatures", a.Firmware.Version)
	}

	// A compromised server signs metadata with its online keys: the phone
	// refuses it.
	forgeDirector(t, w, phones[0], "hardphone-3.0.0.raucb")
	if a, err := phones[0].Assigned(); err == nil || a != nil && a.Firmware != nil {
		t.Fatalf("the phone took metadata the online keys signed alone: %+v, %v", a, err)
	} else if !strings.Contains(err.Error(), "targets") {
		t.Fatalf("phone refused the forged metadata for another reason than its targets: %v", err)
	} else {
		t.Logf("the phone refused the online keys' metadata: %v", err)
	}
	phones[0].Director.Replace(nil)

	// A second admin's signatures: the rollout starts, the canary's
	// targets carry three signatures and the phone takes them.
	start := time.Now()
	if v, err = bob.SignRollout(ctx, v.ID, byBob); err != nil {
		t.Fatalf("SignRollout(bob): %v", err)
	}
	if v.State != "running" || len(v.Approvals) != 2 {
		t.Fatalf("after two admins' signatures = %s %v, want running with two approvals", v.State, v.Approvals)
	}
	if got := firmwareOf(t, phones[0]); got != "2.0.0" {
		t.Fatalf("canary names %q, want 2.0.0 (signed by two admins and the server)", got)
	}
	if _, err := phones[1].Assigned(); err == nil {
		if got := firmwareOf(t, phones[1]); got != "" {
			t.Fatalf("phone outside the canary names %q, want nothing yet", got)
		}
	}

	// A second replica advances the rollout too: one ring start each.
	replica := newReplica(t, w)
	all := map[*phone]behaviour{}
	for _, p := range phones {
		all[p] = healthy
	}
	for i := 0; ; i++ {
		if i == 12 {
			t.Fatalf("rollout %s not completed after 12 cycles: %+v", v.ID, w.show(v.ID))
		}
		var wg sync.WaitGroup
		for _, e := range []*rollout.Engine{w.engine, replica} {
			wg.Add(1)
			go func(e *rollout.Engine) {
				defer wg.Done()
				if err := e.Tick(ctx); err != nil {
					t.Errorf("Tick: %v", err)
				}
			}(e)
		}
		wg.Wait()
		if v = w.show(v.ID); v.State == "completed" || v.State == "halted" {
			break
		}
		for p, b := range all {
			if _, err := p.Assigned(); err != nil {
				continue // not published yet (its ring has not started)
			}
			p.Follow(b)
		}
	}
	t.Logf("2-ring rollout with two admins' signatures over %d phones (postgres, 2 replicas): %v from the second signature to completed", len(phones), time.Since(start))
	if v.State != "completed" {
		t.Fatalf("signed rollout = %s %+v, want completed", v.State, v.Halt)
	}
	starts := map[string]int{}
	for _, e := range v.History {
		if e.Action == "rollout.ring_start" {
			starts[e.Detail]++
		}
	}
	for d, n := range starts {
		if n != 1 {
			t.Fatalf("ring start %q recorded %d times, want once", d, n)
		}
	}
	for _, p := range phones {
		if got := firmwareOf(t, p); got != "2.0.0" {
			t.Fatalf("phone %s names %q, want 2.0.0", p.ID, got)
		}
	}
	_ = other // its group's rollout stays pending: no signatures
	if v10 = w.show(v10.ID); v10.State != "pending" {
		t.Fatalf("unsigned rollout of floor-10 = %s, want pending", v10.State)
	}
	// Every refusal is in the audit log, which verifies.
	var buf strings.Builder
	if _, err := w.admin("audrey", adminauth.RoleAuditor).ExportAudit(ctx, &buf, 1<<30); err != nil {
		t.Fatalf("ExportAudit: %v", err)
	}
	rep, err := audit.Verify(strings.NewReader(buf.String()), w.auditL.Trust())
	if err != nil || !rep.OK() {
		t.Fatalf("Verify = %v, %v", rep, err)
	}
	if n := strings.Count(buf.String(), `"access.denied"`); n < 6 {
		t.Fatalf("audit log holds %d refusals, want the 6+ above", n)
	}
}

// newReplica is a second hpfleet replica's director and rollout engine
// over their own PostgreSQL connections, sharing the audit log's tables.
func newReplica(t *testing.T, w *world) *rollout.Engine {
	t.Helper()
	st, err := pgstore.Open(ctx, w.pgDSN)
	if err != nil {
		t.Fatalf("pgstore.Open(replica): %v", err)
	}
	t.Cleanup(func() { st.Close() })
	img, err := director.NewImageRepo(w.imgURL, w.imgRoot, &http.Client{Timeout: 30 * time.Second}, slog.New(slog.DiscardHandler), w.clock.Now)
	if err != nil {
		t.Fatalf("NewImageRepo: %v", err)
	}
	d, err := director.New(director.Config{Store: st, Director: w.tdir, Image: img}, director.WithClock(w.clock.Now), director.WithRotation(0))
	if err != nil {
		t.Fatalf("director.New(replica): %v", err)
	}
	aus, err := pgaudit.New(ctx, st.Pool())
	if err != nil {
		t.Fatalf("pgaudit.New(replica): %v", err)
	}
	l, err := audit.New(aus, w.auditK)
	if err != nil {
		t.Fatalf("audit.New(replica): %v", err)
	}
	e, err := rollout.New(rollout.Config{Store: st, Director: d, Audit: l}, rollout.WithClock(w.clock.Now))
	if err != nil {
		t.Fatalf("rollout.New(replica): %v", err)
	}
	d.SetOverrides(e)
	return e
}

// forgeDirector serves the phone a director repository a compromised
// server makes: targets naming target, signed with the online targets key
// alone, and a snapshot and timestamp with the online keys.
func forgeDirector(t *testing.T, w *world, p *phone, target string) {
	t.Helper()
	load := func(name string) signature.Signer {
		b, err := os.ReadFile(filepath.Join(w.keyDir, name))
		if err != nil {
			t.Fatalf("read key: %v", err)
		}
		blk, _ := pem.Decode(b)
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			t.Fatalf("parse key: %v", err)
		}
		s, err := signature.LoadECDSASigner(k.(*ecdsa.PrivateKey), crypto.SHA256)
		if err != nil {
			t.Fatalf("signer: %v", err)
		}
		return s
	}
	imgs, err := w.image.Targets()
	if err != nil {
		t.Fatalf("image Targets: %v", err)
	}
	f := imgs[target]
	exp := w.clock.Now().Add(24 * time.Hour)
	dev := map[string]any{tufrepo.FieldDevice: p.ID}
	tg := metadata.Targets(exp)
	tg.Signed.Version = 1
	tg.Signed.UnrecognizedFields = dev
	custom, _ := json.Marshal(map[string]any{"kind": "firmware", "compatible": f.Compatible, "version": f.Version, "security_version": f.SecurityVersion})
	raw := json.RawMessage(custom)
	tg.Signed.Targets[target] = &metadata.TargetFiles{Length: f.Length, Hashes: metadata.Hashes{"sha256": f.SHA256[:]}, Custom: &raw}
	if _, err := tg.Sign(load("dir-targets-0.pem")); err != nil {
		t.Fatalf("sign targets: %v", err)
	}
	tb, _ := tg.ToBytes(false)
	sn := metadata.Snapshot(exp)
	sn.Signed.UnrecognizedFields = dev
	sn.Signed.Meta = map[string]*metadata.MetaFiles{"targets.json": {Version: 1}}
	if _, err := sn.Sign(load("dir-snap-0.pem")); err != nil {
		t.Fatalf("sign snapshot: %v", err)
	}
	sb, _ := sn.ToBytes(false)
	ts := metadata.Timestamp(exp)
	ts.Signed.UnrecognizedFields = map[string]any{tufrepo.FieldDevice: p.ID, tufrepo.FieldSignedTime: w.clock.Now().UTC().Format(time.RFC3339)}
	ts.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": {Version: 1}}
	if _, err := ts.Sign(load("dir-ts-0.pem")); err != nil {
		t.Fatalf("sign timestamp: %v", err)
	}
	tsb, _ := ts.ToBytes(false)
	p.Director.Replace(map[string][]byte{"timestamp.json": tsb, "1.snapshot.json": sb, "1.targets.json": tb})
}
