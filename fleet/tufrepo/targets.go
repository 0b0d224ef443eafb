package tufrepo

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/hardphone/hardphone/update/bundle"
)

// Firmware is a bundle as the image repository's targets lists it: name,
// length, SHA-256 and the custom fields read from its verified manifest.
type Firmware struct {
	// Name is the target name (CheckTargetName).
	Name   string
	Length int64
	SHA256 [32]byte
	// Compatible, Version and SecurityVersion come from the bundle's
	// signed manifest ([update] compatible and version, [meta.hardphone]
	// security-version, 0 when absent).
	Compatible      string
	Version         string
	SecurityVersion uint64
}

// Path is where the bundle is served, relative to the repository's base
// URL (consistent snapshots: named by its hash).
func (f Firmware) Path() string { return consistentTargetPath(f.Name, hex.EncodeToString(f.SHA256[:])) }

// firmwareCustom is a firmware target's "custom" object.
type firmwareCustom struct {
	Kind            string `json:"kind,omitempty"`
	Compatible      string `json:"compatible"`
	Version         string `json:"version"`
	SecurityVersion uint64 `json:"security_version"`
}

// configCustom is a director config target's "custom" object.
type configCustom struct {
	Kind    string `json:"kind"`
	Version uint64 `json:"version"`
}

func (f Firmware) targetFile(kind string) (*metadata.TargetFiles, error) {
	c, err := json.Marshal(firmwareCustom{Kind: kind, Compatible: f.Compatible, Version: f.Version, SecurityVersion: f.SecurityVersion})
	if err != nil {
		return nil, err
	}
	raw := json.RawMessage(c)
	return &metadata.TargetFiles{Length: f.Length, Hashes: metadata.Hashes{"sha256": append([]byte(nil), f.SHA256[:]...)}, Custom: &raw}, nil
}

// firmwareOf reads a firmware target back.
func firmwareOf(name string, tf *metadata.TargetFiles) (Firmware, error) {
	f := Firmware{Name: name, Length: tf.Length}
	h := tf.Hashes["sha256"]
	if len(h) != sha256.Size {
		return f, fmt.Errorf("target %s: no sha256", name)
	}
	copy(f.SHA256[:], h)
	if tf.Custom == nil {
		return f, fmt.Errorf("target %s: no custom fields", name)
	}
	var c firmwareCustom
	if err := json.Unmarshal(*tf.Custom, &c); err != nil {
		return f, fmt.Errorf("target %s: custom: %w", name, err)
	}
	if c.Kind != "" && c.Kind != KindFirmware {
		return f, fmt.Errorf("target %s: kind %q, want %s", name, c.Kind, KindFirmware)
	}
	f.Compatible, f.Version, f.SecurityVersion = c.Compatible, c.Version, c.SecurityVersion
	return f, nil
}

// AddBundle copies the RAUC bundle at path into the repository's targets
// (DIR/public/targets/<sha256>.<name>) and stages targets listing it,
// signed by the given targets keys. Its length and SHA-256 are those of
// the copy, and the copy is what update/bundle verifies against kr (the
// vendor's keyring, as the phones have it), so the metadata describes
// exactly the bytes that passed. name is the target name; "" means the
// file's base name.
func (r *Repo) AddBundle(path, name string, kr *bundle.Keyring, signers []*Key, opts ...bundle.Option) (Firmware, error) {
	if name == "" {
		name = filepath.Base(path)
	}
	if err := CheckTargetName(name); err != nil {
		return Firmware{}, fmt.Errorf("add bundle: %w", err)
	}
	cur, err := r.load()
	if err != nil {
		return Firmware{}, fmt.Errorf("add bundle: %w", err)
	}
	stg, err := r.loadStaged()
	if err != nil {
		return Firmware{}, fmt.Errorf("add bundle: %w", err)
	}
	dst := filepath.Join(r.public(), "targets")
	tmp, sum, n, err := copyHashed(path, dst)
	if err != nil {
		return Firmware{}, fmt.Errorf("add bundle: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			os.Remove(tmp)
		}
	}()
	b, err := bundle.OpenFile(tmp, kr, append([]bundle.Option{bundle.WithPlainInPlace()}, opts...)...)
	if err != nil {
		return Firmware{}, fmt.Errorf("add bundle %s: %w", path, err)
	}
	m := b.Manifest
	b.Close()
	fw := Firmware{Name: name, Length: n, SHA256: sum, Compatible: m.Compatible, Version: m.Version, SecurityVersion: m.SecurityVersion}
	final := filepath.Join(r.public(), filepath.FromSlash(fw.Path()))
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return Firmware{}, fmt.Errorf("add bundle: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return Firmware{}, fmt.Errorf("add bundle: %w", err)
	}
	keep = true
	if err := syncDir(filepath.Dir(final)); err != nil {
		return Firmware{}, fmt.Errorf("add bundle: %w", err)
	}
	tf, err := fw.targetFile("")
	if err != nil {
		return Firmware{}, fmt.Errorf("add bundle: %w", err)
	}
	t := r.editTargets(cur, stg)
	t.Signed.Targets[name] = tf
	if err := r.stageTargets(cur, stg, t, signers); err != nil {
		return Firmware{}, fmt.Errorf("add bundle: %w", err)
	}
	return fw, nil
}

// copyHashed copies src into a new private file in dir, hashing it.
func copyHashed(src, dir string) (tmp string, sum [32]byte, n int64, err error) {
	in, err := os.Open(src)
	if err != nil {
		return "", sum, 0, err
	}
	defer in.Close()
	out, err := os.CreateTemp(dir, ".tmp-bundle-")
	if err != nil {
		return "", sum, 0, err
	}
	h := sha256.New()
	n, err = io.Copy(io.MultiWriter(out, h), in)
	if err == nil {
		err = out.Chmod(0o644)
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out.Name())
		return "", sum, 0, err
	}
	copy(sum[:], h.Sum(nil))
	return out.Name(), sum, n, nil
}

// RemoveTarget stages targets without name, signed by the given keys. The
// file stays in DIR/public/targets for clients still fetching it.
func (r *Repo) RemoveTarget(name string, signers []*Key) error {
	cur, err := r.load()
	if err != nil {
		return fmt.Errorf("remove target: %w", err)
	}
	stg, err := r.loadStaged()
	if err != nil {
		return fmt.Errorf("remove target: %w", err)
	}
	t := r.editTargets(cur, stg)
	if _, ok := t.Signed.Targets[name]; !ok {
		return fmt.Errorf("remove target %q: not listed", name)
	}
	delete(t.Signed.Targets, name)
	return r.stageTargets(cur, stg, t, signers)
}

// Targets returns the published firmware targets by name.
func (r *Repo) Targets() (map[string]Firmware, error) {
	cur, err := r.load()
	if err != nil {
		return nil, fmt.Errorf("targets: %w", err)
	}
	if cur.targets == nil {
		return nil, errors.New("targets: nothing published yet")
	}
	return firmwareTargets(cur.targets)
}

// ParseImageTargets reads the firmware targets of an image repository's
// targets metadata (a V.targets.json). It does not verify signatures: the
// director copies what it names, and phones check it against the image
// repository themselves.
func ParseImageTargets(data []byte) (map[string]Firmware, error) {
	t, err := metadata.Targets().FromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("image targets: %w", err)
	}
	return firmwareTargets(t)
}

func firmwareTargets(t *metadata.Metadata[metadata.TargetsType]) (map[string]Firmware, error) {
	out := make(map[string]Firmware, len(t.Signed.Targets))
	for name, tf := range t.Signed.Targets {
		f, err := firmwareOf(name, tf)
		if err != nil {
			return nil, err
		}
		out[name] = f
	}
	return out, nil
}

// RootChain returns every published root version's bytes, version 1
// first: what a client pins (the first, or any later one) and follows.
func (r *Repo) RootChain() ([][]byte, error) {
	cur, err := r.load()
	if err != nil {
		return nil, fmt.Errorf("root chain: %w", err)
	}
	if len(cur.roots) == 0 {
		return nil, errors.New("root chain: no root published yet")
	}
	return cur.roots, nil
}

// RoleStatus is one role's published version, expiry and staged state.
type RoleStatus struct {
	Role      string
	Version   int64 // 0: not published
	Expires   string
	Keys      int
	Threshold int
	// Staged is true when a new version waits; Signatures counts its
	// valid signatures (under the root it will be published with).
	Staged     bool
	Signatures int
}

// Status describes the repository for `hpctl repo info`.
func (r *Repo) Status() ([]RoleStatus, error) {
	cur, err := r.load()
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	stg, err := r.loadStaged()
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	root := signingRoot(cur, stg)
	var out []RoleStatus
	add := func(role string, version int64, expires string) RoleStatus {
		rs := RoleStatus{Role: role, Version: version, Expires: expires}
		if root != nil {
			ids, th, _ := roleKeys(root, role)
			rs.Keys, rs.Threshold = len(ids), th
		}
		return rs
	}
	rs := add(RoleRoot, int64(len(cur.roots)), "")
	if cur.root != nil {
		rs.Expires = cur.root.Signed.Expires.Format("2006-01-02T15:04:05Z")
	}
	if stg.root != nil {
		ids, _, _ := roleKeys(stg.root, RoleRoot)
		rs.Staged, rs.Signatures = true, countValid(stg.root.Signed.Keys, ids, stg.root)
	}
	out = append(out, rs)
	rs = add(RoleTargets, 0, "")
	if cur.targets != nil {
		rs.Version, rs.Expires = cur.targets.Signed.Version, cur.targets.Signed.Expires.Format("2006-01-02T15:04:05Z")
	}
	if stg.targets != nil && root != nil {
		ids, _, _ := roleKeys(root, RoleTargets)
		rs.Staged, rs.Signatures = true, countValid(root.Signed.Keys, ids, stg.targets)
	}
	out = append(out, rs)
	rs = add(RoleSnapshot, 0, "")
	if cur.snapshot != nil {
		rs.Version, rs.Expires = cur.snapshot.Signed.Version, cur.snapshot.Signed.Expires.Format("2006-01-02T15:04:05Z")
	}
	out = append(out, rs)
	rs = add(RoleTimestamp, 0, "")
	if cur.timestamp != nil {
		rs.Version, rs.Expires = cur.timestamp.Signed.Version, cur.timestamp.Signed.Expires.Format("2006-01-02T15:04:05Z")
	}
	out = append(out, rs)
	return out, nil
}
