package tufrepo

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
)

func TestKeyFiles(t *testing.T) {
	for _, alg := range []string{AlgECDSAP256, AlgEd25519} {
		t.Run(alg, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "k.pem")
			k, err := GenerateKey(path, alg)
			if err != nil {
				t.Fatalf("GenerateKey = %v", err)
			}
			if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
				t.Fatalf("key file mode %#o, want 0600", st.Mode().Perm())
			}
			if _, err := GenerateKey(path, alg); !errors.Is(err, ErrExists) {
				t.Fatalf("GenerateKey(existing) = %v, want ErrExists", err)
			}
			got, err := LoadKey(path)
			if err != nil || got.ID() != k.ID() || !got.Private() {
				t.Fatalf("LoadKey = %v, %v, want key %s", got, err, k.ID())
			}
			pub, err := LoadPublicKey(path + ".pub")
			if err != nil || pub.ID() != k.ID() || pub.Private() {
				t.Fatalf("LoadPublicKey(.pub) = %v, %v, want public key %s", pub, err, k.ID())
			}
			for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
				os.Chmod(path, mode)
				if _, err := LoadKey(path); !errors.Is(err, ErrKeyFile) {
					t.Errorf("LoadKey(mode %#o) = %v, want ErrKeyFile", mode, err)
				}
				if _, err := LoadPublicKey(path); !errors.Is(err, ErrKeyFile) {
					t.Errorf("LoadPublicKey(private, mode %#o) = %v, want ErrKeyFile", mode, err)
				}
			}
			os.Chmod(path, 0o600)
			if _, err := LoadKey(path + ".pub"); !errors.Is(err, ErrKeyFile) {
				t.Errorf("LoadKey(public file) = %v, want ErrKeyFile", err)
			}
		})
	}
}

// TestKeyRedacted: neither logs nor fmt show a private key.
func TestKeyRedacted(t *testing.T) {
	dir := t.TempDir()
	for _, alg := range []string{AlgECDSAP256, AlgEd25519} {
		k, err := GenerateKey(filepath.Join(dir, alg+".pem"), alg)
		if err != nil {
			t.Fatalf("GenerateKey = %v", err)
		}
		var secret []byte
		switch s := k.signer.(type) {
		case *ecdsa.PrivateKey:
			secret = s.D.Bytes()
		case ed25519.PrivateKey:
			secret = s.Seed()
		}
		var out bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&out, nil))
		log.Info("key", "key", k)
		log.Info("any", "v", any(k))
		fmt.Fprintf(&out, "%v %+v %#v %s", k, k, k, k)
		pemFile, _ := os.ReadFile(filepath.Join(dir, alg+".pem"))
		for _, form := range [][]byte{secret, []byte(hex.EncodeToString(secret)), pemFile[30:60]} {
			if bytes.Contains(out.Bytes(), form) {
				t.Errorf("%s: output holds the private key (%q):\n%s", alg, form, out.String())
			}
		}
		if !bytes.Contains(out.Bytes(), []byte("REDACTED")) {
			t.Errorf("%s: log does not say REDACTED:\n%s", alg, out.String())
		}
	}
}

// repoKeys are the keys of a test repository: root 2 of 3, targets 2 of 2,
// snapshot and timestamp 1 of 1.
type repoKeys struct {
	root, targets, snapshot, timestamp []*Key
}

func newRepoKeys(t *testing.T, dir string) repoKeys {
	return repoKeys{
		root:      genKeys(t, dir, "root", 3, AlgECDSAP256),
		targets:   genKeys(t, dir, "targets", 2, AlgEd25519),
		snapshot:  genKeys(t, dir, "snapshot", 1, AlgECDSAP256),
		timestamp: genKeys(t, dir, "timestamp", 1, AlgEd25519),
	}
}

func (k repoKeys) initParams(rootSigners, targetSigners int) InitParams {
	root := append(append([]*Key{}, k.root[:rootSigners]...), publics(k.root[rootSigners:])...)
	targets := append(append([]*Key{}, k.targets[:targetSigners]...), publics(k.targets[targetSigners:])...)
	return InitParams{
		Root:      RoleKeys{Keys: root, Threshold: 2},
		Targets:   RoleKeys{Keys: targets, Threshold: 2},
		Snapshot:  RoleKeys{Keys: k.snapshot, Threshold: 1},
		Timestamp: RoleKeys{Keys: k.timestamp, Threshold: 1},
	}
}

func (k repoKeys) online() SigningKeys {
	return SigningKeys{Snapshot: k.snapshot, Timestamp: k.timestamp}
}

// clientCheck verifies a repository's public files with go-tuf from root
// v1, as a new client would.
func clientCheck(t *testing.T, dir string, now time.Time) *trustedmetadata.TrustedMetadata {
	t.Helper()
	s, err := loadPublic(dir)
	if err != nil {
		t.Fatalf("loadPublic = %v", err)
	}
	tm, err := trustedmetadata.New(s.roots[0])
	if err != nil {
		t.Fatalf("trustedmetadata.New = %v", err)
	}
	tm.RefTime = now
	for i, b := range s.roots[1:] {
		if _, err := tm.UpdateRoot(b); err != nil {
			t.Fatalf("UpdateRoot(v%d) = %v", i+2, err)
		}
	}
	if _, err := tm.UpdateTimestamp(s.tsBytes); err != nil {
		t.Fatalf("UpdateTimestamp = %v", err)
	}
	if _, err := tm.UpdateSnapshot(s.snapBytes, false); err != nil {
		t.Fatalf("UpdateSnapshot = %v", err)
	}
	if _, err := tm.UpdateTargets(s.tgtBytes); err != nil {
		t.Fatalf("UpdateTargets = %v", err)
	}
	return tm
}

func wantThreshold(t *testing.T, err error, role string, have, threshold int) {
	t.Helper()
	var te *ThresholdError
	if !errors.As(err, &te) || te.Role != role || te.Have != have || te.Threshold != threshold {
		t.Fatalf("error = %v, want ThresholdError{%s %d/%d}", err, role, have, threshold)
	}
}

// TestInitThresholds: root and targets publish only once each has its
// threshold, signatures added one holder at a time.
func TestInitThresholds(t *testing.T) {
	dir := t.TempDir()
	k := newRepoKeys(t, filepath.Join(dir))
	clock := newClock()
	r, err := Init(filepath.Join(dir, "repo"), k.initParams(1, 1), WithClock(clock.Now))
	if err != nil {
		t.Fatalf("Init = %v", err)
	}
	if _, err := Init(filepath.Join(dir, "repo"), k.initParams(1, 1)); !errors.Is(err, ErrExists) {
		t.Fatalf("Init(again) = %v, want ErrExists", err)
	}
	_, err = r.Publish(k.online())
	wantThreshold(t, err, RoleRoot, 1, 2)
	if ents, _ := os.ReadDir(r.PublicDir()); len(ents) != 1 {
		t.Fatalf("public holds %d entries after a refused publication, want only targets/", len(ents))
	}
	if err := r.Sign(RoleRoot, k.targets[0]); !errors.Is(err, ErrNotMember) {
		t.Fatalf("Sign(root, targets key) = %v, want ErrNotMember", err)
	}
	if err := r.Sign(RoleRoot, k.root[2]); err != nil {
		t.Fatalf("Sign(root) = %v", err)
	}
	_, err = r.Publish(k.online())
	wantThreshold(t, err, RoleTargets, 1, 2)
	if err := r.Sign(RoleTargets, k.targets[1]); err != nil {
		t.Fatalf("Sign(targets) = %v", err)
	}
	if _, err := r.Publish(SigningKeys{Snapshot: k.snapshot}); err == nil {
		t.Fatalf("Publish without the timestamp key succeeded")
	}
	pub, err := r.Publish(k.online())
	if err != nil || pub != (Published{1, 1, 1, 1}) {
		t.Fatalf("Publish = %v, %v, want all at v1", pub, err)
	}
	if _, err := r.Publish(k.online()); !errors.Is(err, ErrNothingStaged) {
		t.Fatalf("Publish(nothing) = %v, want ErrNothingStaged", err)
	}
	tm := clientCheck(t, r.PublicDir(), clock.Now())
	if st, ok := field(tm.Timestamp.Signed.UnrecognizedFields, FieldSignedTime); !ok || st != clock.Now().Format(time.RFC3339) {
		t.Fatalf("timestamp signed time %q, want %s", st, clock.Now().Format(time.RFC3339))
	}
	// Reopened, the repository keeps its lifetimes and refreshes the
	// timestamp alone.
	r2, err := Open(r.Dir(), WithClock(clock.Now))
	if err != nil || r2.Lifetimes() != DefaultLifetimes() {
		t.Fatalf("Open = %v, lifetimes %v", err, r2.Lifetimes())
	}
	clock.Add(time.Hour)
	if v, err := r2.Timestamp(SigningKeys{Timestamp: k.snapshot}); err == nil {
		t.Fatalf("Timestamp(snapshot key) = %v, want refused", v)
	}
	if v, err := r2.Timestamp(SigningKeys{Timestamp: k.timestamp}); err != nil || v != (Published{Timestamp: 2}) {
		t.Fatalf("Timestamp = %v, %v, want timestamp v2", v, err)
	}
	clientCheck(t, r.PublicDir(), clock.Now())
	// Six days on, the snapshot is renewed with the timestamp.
	clock.Add(6 * 24 * time.Hour)
	if v, err := r2.Timestamp(k.online()); err != nil || v != (Published{Snapshot: 2, Timestamp: 3}) {
		t.Fatalf("Timestamp(with snapshot key) = %v, %v, want snapshot v2, timestamp v3", v, err)
	}
	clientCheck(t, r.PublicDir(), clock.Now())
	clock.Add(8 * 24 * time.Hour)
	if _, err := r2.Timestamp(SigningKeys{Timestamp: k.timestamp}); err == nil {
		t.Fatalf("Timestamp over an expired snapshot succeeded")
	}
}

// TestAddBundleAndRotate covers a target's life and root rotation.
func TestAddBundleAndRotate(t *testing.T) {
	dir := t.TempDir()
	k := newRepoKeys(t, dir)
	clock := newClock()
	r, err := Init(filepath.Join(dir, "repo"), k.initParams(2, 2), WithClock(clock.Now))
	if err != nil {
		t.Fatalf("Init = %v", err)
	}
	if _, err := r.Publish(k.online()); err != nil {
		t.Fatalf("Publish = %v", err)
	}
	pki := testPKI(t)

	// A bundle from a signer the keyring does not trust: nothing staged,
	// nothing left in targets/.
	foreign := makeBundle(t, dir, "6.6.6", 1, pki.ForeignLeaf)
	if _, err := r.AddBundle(foreign, "", keyring(t), k.targets); err == nil {
		t.Fatalf("AddBundle(foreign signer) succeeded")
	}
	if ents, _ := os.ReadDir(filepath.Join(r.PublicDir(), "targets")); len(ents) != 0 {
		t.Fatalf("targets/ holds %d files after a refused bundle", len(ents))
	}
	if _, err := os.Stat(filepath.Join(r.Dir(), "staged", "targets.json")); !os.IsNotExist(err) {
		t.Fatalf("targets staged after a refused bundle: %v", err)
	}

	path := makeBundle(t, dir, "2026.1.0", 7, pki.Leaf)
	fw, err := r.AddBundle(path, "", keyring(t), k.targets[:1])
	if err != nil {
		t.Fatalf("AddBundle = %v", err)
	}
	want, _ := os.ReadFile(path)
	if fw.Length != int64(len(want)) || fw.SHA256 != sha256.Sum256(want) || fw.Compatible != testCompatible || fw.Version != "2026.1.0" || fw.SecurityVersion != 7 {
		t.Fatalf("AddBundle = %+v, want the bundle's length, hash and manifest", fw)
	}
	_, err = r.Publish(k.online())
	wantThreshold(t, err, RoleTargets, 1, 2)
	if err := r.Sign(RoleTargets, k.targets[1]); err != nil {
		t.Fatalf("Sign = %v", err)
	}
	if pub, err := r.Publish(k.online()); err != nil || pub != (Published{0, 2, 2, 2}) {
		t.Fatalf("Publish = %v, %v, want targets, snapshot, timestamp v2", pub, err)
	}
	served, err := os.ReadFile(filepath.Join(r.PublicDir(), filepath.FromSlash(fw.Path())))
	if err != nil || !bytes.Equal(served, want) {
		t.Fatalf("served bundle at %s: %v (equal %v)", fw.Path(), err, bytes.Equal(served, want))
	}
	ts, err := r.Targets()
	if err != nil || ts[fw.Name] != fw {
		t.Fatalf("Targets = %v, %v, want %+v", ts, err, fw)
	}
	clientCheck(t, r.PublicDir(), clock.Now())

	// Rotate: new root keys (2 of 2) and a new timestamp key. Signed by
	// the new keys alone it does not pass under root v1.
	newRoot := genKeys(t, dir, "newroot", 2, AlgEd25519)
	newTS := genKeys(t, dir, "newts", 1, AlgECDSAP256)
	rot := Rotation{Root: &RoleKeys{Keys: newRoot, Threshold: 2}, Timestamp: &RoleKeys{Keys: newTS, Threshold: 1}}
	if err := r.RotateRoot(rot, newRoot); err != nil {
		t.Fatalf("RotateRoot = %v", err)
	}
	_, err = r.Publish(SigningKeys{Timestamp: newTS})
	wantThreshold(t, err, RoleRoot, 0, 2)
	if err := r.Sign(RoleRoot, k.root[0]); err != nil {
		t.Fatalf("Sign(root, old key) = %v", err)
	}
	_, err = r.Publish(SigningKeys{Timestamp: newTS})
	wantThreshold(t, err, RoleRoot, 1, 2)
	if err := r.Sign(RoleRoot, k.root[1]); err != nil {
		t.Fatalf("Sign(root, old key) = %v", err)
	}
	// The old timestamp key no longer signs for timestamp.
	if _, err := r.Publish(SigningKeys{Timestamp: k.timestamp}); err == nil {
		t.Fatalf("Publish with the rotated-out timestamp key succeeded")
	}
	pub, err := r.Publish(SigningKeys{Timestamp: newTS})
	if err != nil || pub != (Published{Root: 2, Timestamp: 3}) {
		t.Fatalf("Publish(rotation) = %v, %v, want root v2 and timestamp v3", pub, err)
	}
	tm := clientCheck(t, r.PublicDir(), clock.Now())
	if tm.Root.Signed.Version != 2 {
		t.Fatalf("client root v%d, want v2", tm.Root.Signed.Version)
	}
	for _, id := range tm.Root.Signed.Roles[RoleRoot].KeyIDs {
		if id == k.root[0].ID() {
			t.Fatalf("old root key still a root key")
		}
	}
	// Removing the target stages a targets without it.
	if err := r.RemoveTarget(fw.Name, k.targets); err != nil {
		t.Fatalf("RemoveTarget = %v", err)
	}
	if pub, err := r.Publish(SigningKeys{Snapshot: k.snapshot, Timestamp: newTS}); err != nil || pub.Targets != 3 {
		t.Fatalf("Publish(remove) = %v, %v", pub, err)
	}
	if ts, _ := r.Targets(); len(ts) != 0 {
		t.Fatalf("Targets after removal = %v", ts)
	}
}

func TestDirector(t *testing.T) {
	dir := t.TempDir()
	clock := newClock()
	rootKeys := genKeys(t, dir, "droot", 1, AlgECDSAP256)
	online := genKeys(t, dir, "online", 1, AlgECDSAP256)
	admin := genKeys(t, dir, "admin", 1, AlgEd25519)
	stranger := genKeys(t, dir, "stranger", 1, AlgEd25519)
	snap := genKeys(t, dir, "dsnap", 1, AlgECDSAP256)
	ts := genKeys(t, dir, "dts", 1, AlgECDSAP256)
	r, err := Init(filepath.Join(dir, "director"), InitParams{
		Root:      RoleKeys{Keys: rootKeys, Threshold: 1},
		Targets:   RoleKeys{Keys: append(append([]*Key{}, online...), admin...), Threshold: 2},
		Snapshot:  RoleKeys{Keys: snap, Threshold: 1},
		Timestamp: RoleKeys{Keys: ts, Threshold: 1},
	}, WithClock(clock.Now))
	if err != nil {
		t.Fatalf("Init = %v", err)
	}
	if err := r.Sign(RoleTargets, admin[0]); err != nil {
		t.Fatalf("Sign = %v", err)
	}
	if err := r.Sign(RoleTargets, online[0]); err != nil {
		t.Fatalf("Sign = %v", err)
	}
	if _, err := r.Publish(SigningKeys{Snapshot: snap, Timestamp: ts}); err != nil {
		t.Fatalf("Publish = %v", err)
	}
	if _, err := OpenDirector(r.Dir(), OnlineKeys{Targets: online, Snapshot: snap, Timestamp: stranger}, WithClock(clock.Now)); !errors.Is(err, ErrNotMember) {
		t.Fatalf("OpenDirector(stranger timestamp key) = %v, want ErrNotMember", err)
	}
	d, err := OpenDirector(r.Dir(), OnlineKeys{Targets: online, Snapshot: snap, Timestamp: ts}, WithClock(clock.Now))
	if err != nil {
		t.Fatalf("OpenDirector = %v", err)
	}
	const dev = "dev-0123456789abcdef0123456789abcdef"
	fw := &Firmware{Name: "hardphone-1.raucb", Length: 1234, SHA256: sha256.Sum256([]byte("x")), Compatible: testCompatible, Version: "1", SecurityVersion: 3}
	a := Assignment{Firmware: fw, Config: &ConfigDoc{Version: 1, Data: []byte("[update]\n")}}
	_, err = d.Publish(nil, dev, a)
	wantThreshold(t, err, RoleTargets, 1, 2)
	s, err := d.StageDevice(nil, dev, a)
	if err != nil {
		t.Fatalf("StageDevice = %v", err)
	}
	if err := d.SignStaged(s, stranger[0]); !errors.Is(err, ErrNotMember) {
		t.Fatalf("SignStaged(stranger) = %v, want ErrNotMember", err)
	}
	if _, err := d.PublishStaged(nil, s); err == nil {
		t.Fatalf("PublishStaged(one signature) succeeded")
	}
	if err := d.SignStaged(s, admin[0]); err != nil {
		t.Fatalf("SignStaged(admin) = %v", err)
	}
	tampered := *s
	tampered.Config = []byte("[update]\nx=1\n")
	if _, err := d.PublishStaged(nil, &tampered); err == nil {
		t.Fatalf("PublishStaged(other config) succeeded")
	}
	dr, err := d.PublishStaged(nil, s)
	if err != nil {
		t.Fatalf("PublishStaged = %v", err)
	}
	www := filepath.Join(dir, "www")
	if err := WriteDeviceRepo(www, d, dr); err != nil {
		t.Fatalf("WriteDeviceRepo = %v", err)
	}
	back, err := ReadDeviceRepo(www, dev)
	if err != nil || !bytes.Equal(back.Timestamp, dr.Timestamp) || !bytes.Equal(back.Config, dr.Config) || back.TargetsVersion != 1 {
		t.Fatalf("ReadDeviceRepo = %+v, %v, want what was written", back, err)
	}
	tm := clientCheck(t, filepath.Join(www, dev), clock.Now())
	if got, _ := field(tm.Targets[RoleTargets].Signed.UnrecognizedFields, FieldDevice); got != dev {
		t.Fatalf("director targets names %q, want %s", got, dev)
	}
	clock.Add(time.Hour)
	next, err := d.RefreshTimestamp(back)
	if err != nil || next.TimestampVersion != 2 || next.TargetsVersion != 1 {
		t.Fatalf("RefreshTimestamp = %+v, %v", next, err)
	}
	var tsm metadata.Metadata[metadata.TimestampType]
	if _, err := tsm.FromBytes(next.Timestamp); err != nil {
		t.Fatalf("timestamp: %v", err)
	}
	if st, _ := field(tsm.Signed.UnrecognizedFields, FieldSignedTime); st != clock.Now().Format(time.RFC3339) {
		t.Fatalf("refreshed signed time %q, want %s", st, clock.Now().Format(time.RFC3339))
	}
	if _, err := d.StageDevice(back, "dev-other", a); err == nil {
		t.Fatalf("StageDevice(another device's previous repository) succeeded")
	}
}
