package tufrepo

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Admin approval of director targets: when the director root's targets
// threshold is higher than hpfleet's online targets keys reach, each
// device's targets is staged (StageDevice), every approving admin signs
// it with a key of their own that the root lists for targets (on the
// admin's machine: SignDetached), and the server adds each signature only
// after verifying it (AddTargetsSignature), publishing once the threshold
// is met (PublishStaged). The server never holds an admin's private key.

// ErrBadSignature is returned for a signature that does not verify with
// the key it names over the metadata it is added to.
var ErrBadSignature = errors.New("tufrepo: signature does not verify")

// MaxSignature bounds a detached signature (an ASN.1 ECDSA P-256
// signature is at most 72 bytes, Ed25519 64).
const MaxSignature = 128

// Signature is a detached signature over a metadata file's signed part.
type Signature struct {
	// KeyID is the signing key's TUF key ID.
	KeyID string `json:"keyid"`
	// Sig is the signature ("ecdsa-sha2-nistp256": ASN.1 over SHA-256 of
	// the canonical JSON; "ed25519": over the canonical JSON).
	Sig []byte `json:"sig"`
}

// SignDetached signs the signed part of a targets metadata file with k and
// returns the signature alone (what an approving admin uploads).
func SignDetached(data []byte, k *Key) (Signature, error) {
	b, err := AddSignature(data, k)
	if err != nil {
		return Signature{}, fmt.Errorf("sign detached: %w", err)
	}
	m, err := metadata.Targets().FromBytes(b)
	if err != nil {
		return Signature{}, fmt.Errorf("sign detached: %w", err)
	}
	for _, s := range m.Signatures {
		if s.KeyID == k.ID() {
			return Signature{KeyID: k.ID(), Sig: append([]byte(nil), s.Signature...)}, nil
		}
	}
	return Signature{}, fmt.Errorf("sign detached: no signature by %s", k.ID())
}

// OnlineTargetsKeys counts hpfleet's online keys that the director root
// lists for targets.
func (d *Director) OnlineTargetsKeys() int {
	n := 0
	for _, k := range d.keys.Targets {
		if isMember(d.root, RoleTargets, k) {
			n++
		}
	}
	return n
}

// AdminSignaturesNeeded is how many targets signatures beyond the online
// keys' each device's targets needs: 0 when hpfleet publishes alone.
func (d *Director) AdminSignaturesNeeded() int {
	return max(0, d.TargetsThreshold()-d.OnlineTargetsKeys())
}

// ApproverKey returns the director root's targets key with this ID when
// it is not one of hpfleet's online keys: a key an admin approves with.
func (d *Director) ApproverKey(keyID string) (*Key, error) {
	ids, _, err := roleKeys(d.root, RoleTargets)
	if err != nil || !slices.Contains(ids, keyID) {
		return nil, fmt.Errorf("key %.64q: %w", keyID, ErrNotMember)
	}
	for _, k := range d.keys.Targets {
		if k.ID() == keyID {
			return nil, fmt.Errorf("key %s is the server's online key, not an approver's: %w", keyID, ErrNotMember)
		}
	}
	tk, ok := d.root.Signed.Keys[keyID]
	if !ok {
		return nil, fmt.Errorf("key %s not in the director root: %w", keyID, ErrNotMember)
	}
	pub, err := tk.ToPublicKey()
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", keyID, err)
	}
	k, err := newKey(nil, pub)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", keyID, err)
	}
	if k.ID() != keyID {
		return nil, fmt.Errorf("key %s: its public key has ID %s", keyID, k.ID())
	}
	return k, nil
}

// AddTargetsSignature adds an approver's detached signature to a staged
// device targets: the key must be a targets key of the director root that
// is not an online key (ApproverKey), and the signature must verify, by
// go-tuf's own check, over exactly these targets' signed part
// (ErrBadSignature otherwise: a signature over another rollout's or
// another device's metadata, or by another key). A signature by the same
// key replaces the earlier one.
func (d *Director) AddTargetsSignature(targets []byte, sig Signature) ([]byte, error) {
	if len(sig.Sig) == 0 || len(sig.Sig) > MaxSignature {
		return nil, fmt.Errorf("add targets signature: %d bytes: %w", len(sig.Sig), ErrBadSignature)
	}
	if _, err := d.ApproverKey(sig.KeyID); err != nil {
		return nil, fmt.Errorf("add targets signature: %w", err)
	}
	m, err := metadata.Targets().FromBytes(targets)
	if err != nil {
		return nil, fmt.Errorf("add targets signature: %w", err)
	}
	// go-tuf verifies: a root with only this key for targets, threshold
	// 1, and the metadata with only this signature.
	one := metadata.Root(time.Now().Add(time.Hour))
	one.Signed.Keys = map[string]*metadata.Key{sig.KeyID: d.root.Signed.Keys[sig.KeyID]}
	one.Signed.Roles[RoleTargets] = &metadata.Role{KeyIDs: []string{sig.KeyID}, Threshold: 1}
	probe := *m
	probe.Signatures = []metadata.Signature{{KeyID: sig.KeyID, Signature: sig.Sig}}
	if err := one.VerifyDelegate(RoleTargets, &probe); err != nil {
		return nil, fmt.Errorf("add targets signature by %s: %w", sig.KeyID, ErrBadSignature)
	}
	m.Signatures = slices.DeleteFunc(m.Signatures, func(s metadata.Signature) bool { return s.KeyID == sig.KeyID })
	m.Signatures = append(m.Signatures, metadata.Signature{KeyID: sig.KeyID, Signature: append([]byte(nil), sig.Sig...)})
	return encode(m)
}

// TargetsSigners lists the key IDs of the director root's targets keys
// whose signatures on targets verify (online keys included), and the
// threshold.
func (d *Director) TargetsSigners(targets []byte) ([]string, int, error) {
	m, err := metadata.Targets().FromBytes(targets)
	if err != nil {
		return nil, 0, fmt.Errorf("targets signers: %w", err)
	}
	ids, th, err := roleKeys(d.root, RoleTargets)
	if err != nil {
		return nil, 0, fmt.Errorf("targets signers: %w", err)
	}
	var out []string
	for _, id := range ids {
		probe := *m
		probe.Signatures = slices.DeleteFunc(slices.Clone(m.Signatures), func(s metadata.Signature) bool { return s.KeyID != id })
		if len(probe.Signatures) > 0 && countValid(d.root.Signed.Keys, []string{id}, &probe) == 1 {
			out = append(out, id)
		}
	}
	return out, th, nil
}

// DirectorTargets is what one device's director targets says, for an
// approver to read before signing.
type DirectorTargets struct {
	DeviceID string
	Version  int64
	Expires  time.Time
	// Firmware is the named bundle, nil for none.
	Firmware *Firmware
	// ConfigVersion, ConfigLength and ConfigSHA256 describe the
	// configuration document, ConfigLength 0 for none.
	ConfigVersion uint64
	ConfigLength  int64
	ConfigSHA256  [32]byte
}

// ParseDirectorTargets reads a device's director targets: its device,
// version and expiry, the firmware and configuration document it names.
// Anything else in it (another target, an unknown kind) is an error: an
// approver signs only what this shows.
func ParseDirectorTargets(data []byte) (DirectorTargets, error) {
	var out DirectorTargets
	m, err := metadata.Targets().FromBytes(data)
	if err != nil {
		return out, fmt.Errorf("director targets: %w", err)
	}
	dev, ok := field(m.Signed.UnrecognizedFields, FieldDevice)
	if !ok || CheckDeviceID(dev) != nil {
		return out, fmt.Errorf("director targets: no device named")
	}
	if m.Signed.Delegations != nil {
		return out, fmt.Errorf("director targets of %s: delegations", dev)
	}
	out.DeviceID, out.Version, out.Expires = dev, m.Signed.Version, m.Signed.Expires
	for name, tf := range m.Signed.Targets {
		var kind struct {
			Kind string `json:"kind"`
		}
		if tf.Custom != nil {
			if err := json.Unmarshal(*tf.Custom, &kind); err != nil {
				return out, fmt.Errorf("director targets of %s: target %.64q: %w", dev, name, err)
			}
		}
		sum := tf.Hashes["sha256"]
		if len(sum) != sha256.Size {
			return out, fmt.Errorf("director targets of %s: target %.64q has no SHA-256", dev, name)
		}
		switch {
		case name == ConfigTargetName && kind.Kind == KindConfig:
			var c configCustom
			if err := json.Unmarshal(*tf.Custom, &c); err != nil {
				return out, fmt.Errorf("director targets of %s: config: %w", dev, err)
			}
			out.ConfigVersion, out.ConfigLength = c.Version, tf.Length
			copy(out.ConfigSHA256[:], sum)
		case name != ConfigTargetName && kind.Kind == KindFirmware && out.Firmware == nil:
			f, err := firmwareOf(name, tf)
			if err != nil {
				return out, fmt.Errorf("director targets of %s: %w", dev, err)
			}
			out.Firmware = &f
		default:
			return out, fmt.Errorf("director targets of %s: unexpected target %.64q of kind %.16q", dev, name, kind.Kind)
		}
	}
	return out, nil
}

// String is one line per fact, for a person to read.
func (t DirectorTargets) String() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "device %s targets v%d, expires %s\n", t.DeviceID, t.Version, t.Expires.UTC().Format(time.RFC3339))
	if f := t.Firmware; f != nil {
		fmt.Fprintf(&b, "  firmware %s version %s security %d, %d bytes, sha256 %s\n", f.Name, f.Version, f.SecurityVersion, f.Length, hex.EncodeToString(f.SHA256[:]))
	} else {
		b.WriteString("  firmware: none\n")
	}
	if t.ConfigLength > 0 {
		fmt.Fprintf(&b, "  config v%d, %d bytes, sha256 %s\n", t.ConfigVersion, t.ConfigLength, hex.EncodeToString(t.ConfigSHA256[:]))
	} else {
		b.WriteString("  config: none\n")
	}
	return b.String()
}

// proofDomain separates proof-of-possession messages from everything else
// the keys sign (TUF metadata is canonical JSON and never starts with a
// NUL byte).
const proofDomain = "\x00hardphone-approver-key-v1\x00"

// ProofMessage is what an admin signs to register an approval key: the
// server's name for the fleet, the admin's login name and the key ID.
func ProofMessage(fleet, admin, keyID string) []byte {
	return []byte(proofDomain + fleet + "\x00" + admin + "\x00" + keyID)
}

// SignProof signs a proof-of-possession message with k.
func SignProof(k *Key, msg []byte) ([]byte, error) {
	if !k.Private() {
		return nil, fmt.Errorf("sign proof: %s: %w", k, ErrKeyFile)
	}
	if _, ok := k.pub.(ed25519.PublicKey); ok {
		return k.signer.Sign(rand.Reader, msg, crypto.Hash(0))
	}
	d := sha256.Sum256(msg)
	return k.signer.Sign(rand.Reader, d[:], crypto.SHA256)
}

// VerifyProof checks a proof-of-possession signature with k's public key.
func VerifyProof(k *Key, msg, sig []byte) error {
	ok := false
	switch p := k.pub.(type) {
	case ed25519.PublicKey:
		ok = ed25519.Verify(p, msg, sig)
	case *ecdsa.PublicKey:
		d := sha256.Sum256(msg)
		ok = ecdsa.VerifyASN1(p, d[:], sig)
	}
	if !ok {
		return fmt.Errorf("proof by %s: %w", k.ID(), ErrBadSignature)
	}
	return nil
}

// PublicDER returns the key's public half as PKIX DER.
func (k *Key) PublicDER() ([]byte, error) { return x509.MarshalPKIXPublicKey(k.pub) }

// ParsePublicDER makes a public key from PKIX DER (ECDSA P-256 or Ed25519).
func ParsePublicDER(der []byte) (*Key, error) {
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("public key: %v: %w", err, ErrKeyFile)
	}
	return newKey(nil, pub)
}
