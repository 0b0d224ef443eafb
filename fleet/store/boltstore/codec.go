package boltstore

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hardphone/hardphone/fleet/store"
)

// The records as bbolt holds them: JSON with fixed field names, so a
// renamed Go field never changes the file format. Keys (EK hashes, IDs,
// serials) are the bucket keys and are not repeated inside.

type allowRec struct {
	Serial     string    `json:"serial"`
	Model      string    `json:"model"`
	Group      string    `json:"group"`
	ImportedAt time.Time `json:"imported_at"`
}

func encAllow(e store.AllowEntry) ([]byte, error) {
	return json.Marshal(allowRec{e.Serial, e.Model, e.Group, e.ImportedAt})
}

func decAllow(ek, v []byte) (store.AllowEntry, error) {
	var r allowRec
	if err := json.Unmarshal(v, &r); err != nil {
		return store.AllowEntry{}, fmt.Errorf("decode allow-list entry %x: %w", ek, err)
	}
	e := store.AllowEntry{Serial: r.Serial, Model: r.Model, Group: r.Group, ImportedAt: r.ImportedAt.UTC()}
	copy(e.EK[:], ek)
	return e, nil
}

type chalRec struct {
	EK                []byte    `json:"ek"`
	AKName            []byte    `json:"ak_name"`
	IdentityPublicKey []byte    `json:"identity_public_key"`
	SecretHash        []byte    `json:"secret_hash"`
	CreatedAt         time.Time `json:"created_at"`
	ExpiresAt         time.Time `json:"expires_at"`
	// Schema 2.
	SealingPublicKey  []byte `json:"sealing_public_key,omitempty"`
	SealingSecretHash []byte `json:"sealing_secret_hash,omitempty"`
}

func encChal(c store.Challenge) ([]byte, error) {
	r := chalRec{c.EK[:], c.AKName, c.IdentityPublicKey, c.SecretHash[:], c.CreatedAt, c.ExpiresAt, c.SealingPublicKey, nil}
	if c.SealingPublicKey != nil {
		r.SealingSecretHash = c.SealingSecretHash[:]
	}
	return json.Marshal(r)
}

func decChal(id, v []byte) (store.Challenge, error) {
	var r chalRec
	if err := json.Unmarshal(v, &r); err != nil {
		return store.Challenge{}, fmt.Errorf("decode challenge %x: %w", id, err)
	}
	if len(r.EK) != 32 || len(r.SecretHash) != 32 {
		return store.Challenge{}, fmt.Errorf("decode challenge %x: EK hash %d bytes, secret hash %d bytes, want 32", id, len(r.EK), len(r.SecretHash))
	}
	c := store.Challenge{AKName: r.AKName, IdentityPublicKey: r.IdentityPublicKey,
		CreatedAt: r.CreatedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC()}
	copy(c.ID[:], id)
	copy(c.EK[:], r.EK)
	copy(c.SecretHash[:], r.SecretHash)
	if r.SealingPublicKey != nil {
		if len(r.SealingSecretHash) != 32 {
			return store.Challenge{}, fmt.Errorf("decode challenge %x: sealing secret hash %d bytes, want 32", id, len(r.SealingSecretHash))
		}
		c.SealingPublicKey = r.SealingPublicKey
		copy(c.SealingSecretHash[:], r.SealingSecretHash)
	}
	return c, nil
}

type devRec struct {
	Serial            string    `json:"serial"`
	Model             string    `json:"model"`
	Group             string    `json:"group"`
	EK                []byte    `json:"ek"`
	IdentityPublicKey []byte    `json:"identity_public_key"`
	State             string    `json:"state"`
	EnrolledAt        time.Time `json:"enrolled_at"`
	StateChangedAt    time.Time `json:"state_changed_at"`
	LastSeen          time.Time `json:"last_seen"`
	CertSerial        []byte    `json:"cert_serial"`
	CertNotAfter      time.Time `json:"cert_not_after"`
	// Schema 2.
	SealingPublicKey []byte `json:"sealing_public_key,omitempty"`
}

func encDev(d store.Device) ([]byte, error) {
	return json.Marshal(devRec{d.Serial, d.Model, d.Group, d.EK[:], d.IdentityPublicKey, string(d.State),
		d.EnrolledAt, d.StateChangedAt, d.LastSeen, d.CurrentCertSerial[:], d.CertNotAfter, d.SealingPublicKey})
}

func decDev(id, v []byte) (store.Device, error) {
	var r devRec
	if err := json.Unmarshal(v, &r); err != nil {
		return store.Device{}, fmt.Errorf("decode device %s: %w", id, err)
	}
	if len(r.EK) != 32 || len(r.CertSerial) != 16 {
		return store.Device{}, fmt.Errorf("decode device %s: EK hash %d bytes, want 32; serial %d bytes, want 16", id, len(r.EK), len(r.CertSerial))
	}
	d := store.Device{ID: store.DeviceID(id), Serial: r.Serial, Model: r.Model, Group: r.Group,
		IdentityPublicKey: r.IdentityPublicKey, State: store.DeviceState(r.State),
		EnrolledAt: r.EnrolledAt.UTC(), StateChangedAt: r.StateChangedAt.UTC(), LastSeen: r.LastSeen.UTC(),
		CertNotAfter: r.CertNotAfter.UTC(), SealingPublicKey: r.SealingPublicKey}
	copy(d.EK[:], r.EK)
	copy(d.CurrentCertSerial[:], r.CertSerial)
	return d, nil
}

type certRec struct {
	DeviceID  string     `json:"device_id"`
	NotBefore time.Time  `json:"not_before"`
	NotAfter  time.Time  `json:"not_after"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	Reason    uint8      `json:"reason"`
	DER       []byte     `json:"der,omitempty"`
}

func encCert(c store.Cert) ([]byte, error) {
	return json.Marshal(certRec{string(c.DeviceID), c.NotBefore, c.NotAfter, c.RevokedAt, uint8(c.Reason), c.DER})
}

func decCert(serial, v []byte) (store.Cert, error) {
	var r certRec
	if err := json.Unmarshal(v, &r); err != nil {
		return store.Cert{}, fmt.Errorf("decode certificate %x: %w", serial, err)
	}
	c := store.Cert{DeviceID: store.DeviceID(r.DeviceID), NotBefore: r.NotBefore.UTC(), NotAfter: r.NotAfter.UTC(),
		Reason: store.RevocationReason(r.Reason), DER: r.DER}
	if r.RevokedAt != nil {
		t := r.RevokedAt.UTC()
		c.RevokedAt = &t
	}
	copy(c.Serial[:], serial)
	return c, nil
}

// reportRec is a store.Report with its signed bytes, which the JSON of
// store.Report leaves out.
type reportRec struct {
	store.Report
	Signed []byte `json:"signed"`
}

func encReport(r store.Report) ([]byte, error) {
	return json.Marshal(reportRec{r, r.Signed})
}

func decReport(v []byte) (store.Report, error) {
	var r reportRec
	if err := json.Unmarshal(v, &r); err != nil {
		return store.Report{}, fmt.Errorf("decode report: %w", err)
	}
	rep := r.Report
	rep.Signed = r.Signed
	rep.ReceivedAt = rep.ReceivedAt.UTC()
	rep.CertNotAfter = rep.CertNotAfter.UTC()
	return rep, nil
}

// micros is a time as big-endian microseconds since 1970, an index key
// that sorts by time (store times are after 2000, so positive).
func micros(t time.Time) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t.UnixMicro()))
	return b[:]
}

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

// cat concatenates key parts into a new slice.
func cat(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
