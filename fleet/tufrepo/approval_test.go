package tufrepo

import (
	"crypto/sha256"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// approvalDirector is a director whose targets role wants 3 signatures:
// the online key and two admins (alice Ed25519, bob ECDSA).
func approvalDirector(t *testing.T) (d *Director, alice, bob, stranger, online *Key) {
	t.Helper()
	dir := t.TempDir()
	clock := newClock()
	rootKeys := genKeys(t, dir, "droot", 1, AlgECDSAP256)
	on := genKeys(t, dir, "online", 1, AlgECDSAP256)
	a := genKeys(t, dir, "alice", 1, AlgEd25519)
	b := genKeys(t, dir, "bob", 1, AlgECDSAP256)
	s := genKeys(t, dir, "stranger", 1, AlgEd25519)
	snap := genKeys(t, dir, "dsnap", 1, AlgECDSAP256)
	ts := genKeys(t, dir, "dts", 1, AlgECDSAP256)
	r, err := Init(filepath.Join(dir, "director"), InitParams{
		Root:      RoleKeys{Keys: rootKeys, Threshold: 1},
		Targets:   RoleKeys{Keys: []*Key{on[0], a[0], b[0]}, Threshold: 3},
		Snapshot:  RoleKeys{Keys: snap, Threshold: 1},
		Timestamp: RoleKeys{Keys: ts, Threshold: 1},
	}, WithClock(clock.Now))
	if err != nil {
		t.Fatalf("Init = %v", err)
	}
	for _, k := range []*Key{on[0], a[0], b[0]} {
		if err := r.Sign(RoleTargets, k); err != nil {
			t.Fatalf("Sign = %v", err)
		}
	}
	if _, err := r.Publish(SigningKeys{Snapshot: snap, Timestamp: ts}); err != nil {
		t.Fatalf("Publish = %v", err)
	}
	d, err = OpenDirector(r.Dir(), OnlineKeys{Targets: on, Snapshot: snap, Timestamp: ts}, WithClock(clock.Now))
	if err != nil {
		t.Fatalf("OpenDirector = %v", err)
	}
	return d, a[0], b[0], s[0], on[0]
}

func TestAdminSignatures(t *testing.T) {
	d, alice, bob, stranger, online := approvalDirector(t)
	if got := d.AdminSignaturesNeeded(); got != 2 {
		t.Fatalf("AdminSignaturesNeeded() = %d, want 2", got)
	}
	const dev = "dev-0123456789abcdef0123456789abcdef"
	const other = "dev-fedcba9876543210fedcba9876543210"
	fw := &Firmware{Name: "hardphone-2.raucb", Length: 1234, SHA256: sha256.Sum256([]byte("x")), Compatible: testCompatible, Version: "2", SecurityVersion: 3}
	a := Assignment{Firmware: fw, Config: &ConfigDoc{Version: 4, Data: []byte("[update]\n")}}
	s, err := d.StageDevice(nil, dev, a)
	if err != nil {
		t.Fatalf("StageDevice = %v", err)
	}
	so, err := d.StageDevice(nil, other, a)
	if err != nil {
		t.Fatalf("StageDevice(other) = %v", err)
	}

	// What an approver reads.
	desc, err := ParseDirectorTargets(s.Targets)
	if err != nil {
		t.Fatalf("ParseDirectorTargets = %v", err)
	}
	if desc.DeviceID != dev || desc.Version != 1 || desc.Firmware == nil || *desc.Firmware != *fw || desc.ConfigVersion != 4 ||
		desc.ConfigSHA256 != sha256.Sum256([]byte("[update]\n")) {
		t.Fatalf("ParseDirectorTargets = %+v, want device %s v1 naming the firmware and config v4", desc, dev)
	}
	if !strings.Contains(desc.String(), "hardphone-2.raucb") {
		t.Fatalf("DirectorTargets.String() = %q, want the firmware named", desc.String())
	}

	sigA, err := SignDetached(s.Targets, alice)
	if err != nil {
		t.Fatalf("SignDetached(alice) = %v", err)
	}
	sigB, err := SignDetached(s.Targets, bob)
	if err != nil {
		t.Fatalf("SignDetached(bob) = %v", err)
	}
	sigBOther, err := SignDetached(so.Targets, bob)
	if err != nil {
		t.Fatalf("SignDetached(bob, other) = %v", err)
	}
	sigStranger, err := SignDetached(s.Targets, stranger)
	if err != nil {
		t.Fatalf("SignDetached(stranger) = %v", err)
	}
	sigOnline, err := SignDetached(s.Targets, online)
	if err != nil {
		t.Fatalf("SignDetached(online) = %v", err)
	}
	flipped := Signature{KeyID: sigA.KeyID, Sig: append([]byte(nil), sigA.Sig...)}
	flipped.Sig[10] ^= 1
	for _, tt := range []struct {
		name string
		sig  Signature
		want error
	}{
		{"stranger's key", sigStranger, ErrNotMember},
		{"the online key as an approver", sigOnline, ErrNotMember},
		{"another device's metadata", Signature{KeyID: bob.ID(), Sig: sigBOther.Sig}, ErrBadSignature},
		{"alice's signature under bob's ID", Signature{KeyID: bob.ID(), Sig: sigA.Sig}, ErrBadSignature},
		{"a flipped bit", flipped, ErrBadSignature},
		{"empty", Signature{KeyID: alice.ID()}, ErrBadSignature},
		{"oversize", Signature{KeyID: alice.ID(), Sig: make([]byte, MaxSignature+1)}, ErrBadSignature},
	} {
		if _, err := d.AddTargetsSignature(s.Targets, tt.sig); !errors.Is(err, tt.want) {
			t.Errorf("AddTargetsSignature(%s) = %v, want %v", tt.name, err, tt.want)
		}
	}

	// One admin is not enough; two are.
	withA, err := d.AddTargetsSignature(s.Targets, sigA)
	if err != nil {
		t.Fatalf("AddTargetsSignature(alice) = %v", err)
	}
	signers, th, err := d.TargetsSigners(withA)
	if err != nil || len(signers) != 2 || th != 3 {
		t.Fatalf("TargetsSigners(online+alice) = %v, %d, %v; want 2 signers, threshold 3", signers, th, err)
	}
	if _, err := d.PublishStaged(nil, &StagedDevice{DeviceID: dev, Targets: withA, Config: s.Config}); err == nil {
		t.Fatalf("PublishStaged(online and one admin) succeeded")
	}
	// The same admin twice still counts once.
	again, err := d.AddTargetsSignature(withA, sigA)
	if err != nil {
		t.Fatalf("AddTargetsSignature(alice again) = %v", err)
	}
	if _, err := d.PublishStaged(nil, &StagedDevice{DeviceID: dev, Targets: again, Config: s.Config}); err == nil {
		t.Fatalf("PublishStaged(alice twice) succeeded")
	}
	both, err := d.AddTargetsSignature(withA, sigB)
	if err != nil {
		t.Fatalf("AddTargetsSignature(bob) = %v", err)
	}
	if _, err := d.PublishStaged(nil, &StagedDevice{DeviceID: dev, Targets: both, Config: s.Config}); err != nil {
		t.Fatalf("PublishStaged(online, alice, bob) = %v", err)
	}
	// Without the online key the admins are not enough either.
	adminsOnly, err := d.AddTargetsSignature(so.Targets, sigBOther)
	if err != nil {
		t.Fatalf("AddTargetsSignature = %v", err)
	}
	if _, err := d.ApproverKey(online.ID()); !errors.Is(err, ErrNotMember) {
		t.Fatalf("ApproverKey(online) = %v, want ErrNotMember", err)
	}
	if k, err := d.ApproverKey(alice.ID()); err != nil || k.ID() != alice.ID() || k.Private() {
		t.Fatalf("ApproverKey(alice) = %v, %v; want alice's public key", k, err)
	}
	if _, err := d.PublishStaged(nil, &StagedDevice{DeviceID: other, Targets: adminsOnly, Config: so.Config}); err == nil {
		t.Fatalf("PublishStaged(online and bob on the other device) succeeded")
	}
}

func TestProofOfPossession(t *testing.T) {
	dir := t.TempDir()
	for _, alg := range []string{AlgEd25519, AlgECDSAP256} {
		k := genKeys(t, dir, "pop-"+alg, 1, alg)[0]
		other := genKeys(t, dir, "pop-other-"+alg, 1, alg)[0]
		msg := ProofMessage("fleet.test", "alice", k.ID())
		sig, err := SignProof(k, msg)
		if err != nil {
			t.Fatalf("SignProof(%s) = %v", alg, err)
		}
		der, err := k.PublicDER()
		if err != nil {
			t.Fatalf("PublicDER = %v", err)
		}
		pub, err := ParsePublicDER(der)
		if err != nil || pub.ID() != k.ID() {
			t.Fatalf("ParsePublicDER = %v, %v; want key %s", pub, err, k.ID())
		}
		if err := VerifyProof(pub, msg, sig); err != nil {
			t.Fatalf("VerifyProof(%s) = %v", alg, err)
		}
		for name, m := range map[string][]byte{
			"another admin": ProofMessage("fleet.test", "mallory", k.ID()),
			"another fleet": ProofMessage("fleet.other", "alice", k.ID()),
		} {
			if err := VerifyProof(pub, m, sig); !errors.Is(err, ErrBadSignature) {
				t.Errorf("VerifyProof(%s, %s) = %v, want ErrBadSignature", alg, name, err)
			}
		}
		if err := VerifyProof(other.Public(), msg, sig); !errors.Is(err, ErrBadSignature) {
			t.Errorf("VerifyProof(%s, other key) = %v, want ErrBadSignature", alg, err)
		}
	}
}
