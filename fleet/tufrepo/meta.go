package tufrepo

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Fields this package adds to the signed part of metadata. The TUF
// specification (§4, "Metadata format") lets signed objects carry fields it
// does not define, and go-tuf keeps them in the signed bytes, so they are
// covered by the role's signatures like any other field.
const (
	// FieldSignedTime is the time a timestamp was signed (RFC 3339, UTC,
	// whole seconds): the signed time a phone's clock may never fall
	// behind.
	FieldSignedTime = "x-hardphone-time"
	// FieldDevice names the device a director timestamp, snapshot or
	// targets is for.
	FieldDevice = "x-hardphone-device"
)

// Custom fields of targets, in each target's "custom" object.
const (
	// CustomKind is "firmware" or "config" in director targets; image
	// repository targets are firmware and need not say so.
	CustomKind            = "kind"
	CustomCompatible      = "compatible"
	CustomVersion         = "version"
	CustomSecurityVersion = "security_version"

	KindFirmware = "firmware"
	KindConfig   = "config"
)

// Role names.
const (
	RoleRoot      = metadata.ROOT
	RoleTargets   = metadata.TARGETS
	RoleSnapshot  = metadata.SNAPSHOT
	RoleTimestamp = metadata.TIMESTAMP
)

// maxMetadata bounds a metadata file this package reads back.
const maxMetadata = 16 << 20

// expiry is now+d in UTC whole seconds, the form TUF metadata carries.
func expiry(now time.Time, d time.Duration) time.Time {
	return now.Add(d).UTC().Truncate(time.Second)
}

// signWith adds a signature by each private key to m, replacing an older
// signature by the same key (metadata may carry one per key ID).
func signWith[T metadata.Roles](m *metadata.Metadata[T], keys []*Key) error {
	for _, k := range keys {
		if !k.Private() {
			continue
		}
		m.Signatures = slices.DeleteFunc(m.Signatures, func(s metadata.Signature) bool { return s.KeyID == k.ID() })
		if _, err := m.Sign(tufSigner{k}); err != nil {
			return fmt.Errorf("sign with %s: %w", k.ID(), err)
		}
	}
	return nil
}

// roleKeys returns the key IDs and threshold root gives role.
func roleKeys(root *metadata.Metadata[metadata.RootType], role string) ([]string, int, error) {
	r, ok := root.Signed.Roles[role]
	if !ok || r == nil {
		return nil, 0, fmt.Errorf("root v%d has no role %s", root.Signed.Version, role)
	}
	return r.KeyIDs, r.Threshold, nil
}

// isMember reports whether root lists k for role.
func isMember(root *metadata.Metadata[metadata.RootType], role string, k *Key) bool {
	ids, _, err := roleKeys(root, role)
	return err == nil && slices.Contains(ids, k.ID())
}

// checkThreshold verifies with go-tuf that m has a threshold of valid
// signatures for role under root; if not, it counts them for the error.
func checkThreshold[T metadata.Roles](root *metadata.Metadata[metadata.RootType], role string, m *metadata.Metadata[T]) error {
	err := root.VerifyDelegate(role, m)
	if err == nil {
		return nil
	}
	if !errors.Is(err, &metadata.ErrUnsignedMetadata{}) {
		return fmt.Errorf("verify %s under root v%d: %w", role, root.Signed.Version, err)
	}
	ids, threshold, _ := roleKeys(root, role)
	return &ThresholdError{Role: role, Have: countValid(root.Signed.Keys, ids, m), Threshold: threshold,
		Under: fmt.Sprintf("root v%d", root.Signed.Version)}
}

// countValid counts the keys among ids with a valid signature over m's
// signed part, for error messages; checkThreshold's verdict is go-tuf's.
func countValid[T metadata.Roles](keys map[string]*metadata.Key, ids []string, m *metadata.Metadata[T]) int {
	payload, err := cjson.EncodeCanonical(m.Signed)
	if err != nil {
		return 0
	}
	n := 0
	for _, id := range ids {
		k, ok := keys[id]
		if !ok {
			continue
		}
		pub, err := k.ToPublicKey()
		if err != nil {
			continue
		}
		for _, s := range m.Signatures {
			if s.KeyID != id {
				continue
			}
			switch p := pub.(type) {
			case *ecdsa.PublicKey:
				d := sha256.Sum256(payload)
				if ecdsa.VerifyASN1(p, d[:], s.Signature) {
					n++
				}
			case ed25519.PublicKey:
				if ed25519.Verify(p, payload, s.Signature) {
					n++
				}
			}
		}
	}
	return n
}

// typeOf returns the "_type" of a metadata file's signed part.
func typeOf(data []byte) (string, error) {
	var m struct {
		Signed struct {
			Type string `json:"_type"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return "", fmt.Errorf("metadata: %w", err)
	}
	switch m.Signed.Type {
	case RoleRoot, RoleTargets, RoleSnapshot, RoleTimestamp:
		return m.Signed.Type, nil
	}
	return "", fmt.Errorf("metadata type %q: %w", m.Signed.Type, errRole)
}

// AddSignature adds k's signature to a metadata file (any role), replacing
// an older one by the same key, and returns the new bytes. It does not
// check that k belongs to the role: the repository or director that
// publishes the file counts only the role's keys (Repo.Sign and
// Director.SignStaged check membership first).
func AddSignature(data []byte, k *Key) ([]byte, error) {
	if !k.Private() {
		return nil, fmt.Errorf("add signature: %s: %w", k, ErrKeyFile)
	}
	typ, err := typeOf(data)
	if err != nil {
		return nil, fmt.Errorf("add signature: %w", err)
	}
	switch typ {
	case RoleRoot:
		return addSig(metadata.Root(), data, k)
	case RoleTargets:
		return addSig(metadata.Targets(), data, k)
	case RoleSnapshot:
		return addSig(metadata.Snapshot(), data, k)
	default:
		return addSig(metadata.Timestamp(), data, k)
	}
}

func addSig[T metadata.Roles](m *metadata.Metadata[T], data []byte, k *Key) ([]byte, error) {
	m, err := m.FromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("add signature: %w", err)
	}
	if err := signWith(m, []*Key{k}); err != nil {
		return nil, fmt.Errorf("add signature: %w", err)
	}
	return encode(m)
}

// encode is the one serialisation of metadata this package writes:
// compact JSON (phones pay for every byte).
func encode[T metadata.Roles](m *metadata.Metadata[T]) ([]byte, error) {
	b, err := m.ToBytes(false)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", m.Signed, err)
	}
	return b, nil
}

// metaFile describes a metadata file for a snapshot or timestamp: version,
// length and SHA-256, so the client bounds and checks the download.
func metaFile(version int64, data []byte) *metadata.MetaFiles {
	sum := sha256.Sum256(data)
	return &metadata.MetaFiles{Version: version, Length: int64(len(data)), Hashes: metadata.Hashes{"sha256": sum[:]}}
}

// setField sets an unrecognised (hardphone) field of a signed part.
func setField(fields *map[string]any, name, value string) {
	if *fields == nil {
		*fields = map[string]any{}
	}
	(*fields)[name] = value
}

// field reads a string field set by setField.
func field(fields map[string]any, name string) (string, bool) {
	v, ok := fields[name].(string)
	return v, ok
}
