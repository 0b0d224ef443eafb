package boltstore

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/fleet/store"
)

// Bucket names. Each holds one record type or one index; an index value
// is the key of the record it points to.
var (
	bMeta        = []byte("meta")         // "schema" -> uint32 BE
	bAllow       = []byte("allow")        // EK -> allowRec
	bAllowSerial = []byte("allow_serial") // serial -> EK
	bChal        = []byte("chal")         // ID -> chalRec
	bChalEK      = []byte("chal_ek")      // EK || ID -> nil
	bChalExp     = []byte("chal_exp")     // expiry µs BE || ID -> nil
	bDev         = []byte("dev")          // device ID -> devRec
	bDevEK       = []byte("dev_ek")       // EK -> device ID, devices not retired
	bDevSerial   = []byte("dev_serial")   // serial -> device ID, devices not retired
	bCert        = []byte("cert")         // serial -> certRec; its sequence numbers serials
	bCertDev     = []byte("cert_dev")     // device ID || not_before µs BE || serial -> nil
	bCertRevoked = []byte("cert_revoked") // serial -> nil
	bCRL         = []byte("crl")          // its sequence numbers CRLs
	bReports     = []byte("reports")      // device ID -> bucket: seq BE -> reportRec
	bSettings    = []byte("settings")     // key -> value
	bAssign      = []byte("assign")       // kind 0x00 name -> assignRec
	bProv        = []byte("prov")         // device ID -> provRec
	bProvDue     = []byte("prov_due")     // due µs BE || device ID -> nil
	bRollout     = []byte("rollout")      // rollout ID -> rolloutRec
	bRolloutTime = []byte("rollout_time") // created µs BE || rollout ID -> nil
	bRolloutAct  = []byte("rollout_act")  // group -> rollout ID, active rollouts
	bRolloutDev  = []byte("rollout_dev")  // rollout ID || 0x00 || device ID -> rolloutDevRec
	bApprover    = []byte("approver")     // key ID -> approverRec
	bApproverAdm = []byte("approver_adm") // admin name -> key ID

	keySchema = []byte("schema")
)

// migration is one numbered step of the schema. Steps run in order, each
// at most once, inside the one write transaction that also records the new
// version: a crash leaves the file at the old version, unchanged.
type migration struct {
	version uint32
	name    string
	apply   func(*bolt.Tx) error
}

// migrations is the schema's history; append, never edit a step that has
// shipped. Later issues (director metadata, admins and audit, device
// events) add buckets in new steps.
var migrations = []migration{
	{1, "fleet store: allow-list, challenges, devices, certificates, reports, settings", func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bAllow, bAllowSerial, bChal, bChalEK, bChalExp, bDev, bDevEK,
			bDevSerial, bCert, bCertDev, bCertRevoked, bCRL, bReports, bSettings} {
			if _, err := tx.CreateBucket(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	}},
	{2, "director: sealing keys, assignments, provisioning state", func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bAssign, bProv, bProvDue} {
			if _, err := tx.CreateBucket(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	}},
	{3, "rollouts: rollouts, their devices, approval keys", func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bRollout, bRolloutTime, bRolloutAct, bRolloutDev, bApprover, bApproverAdm} {
			if _, err := tx.CreateBucket(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	}},
	{4, "security monitoring: exported journals, anomaly observations, findings, state, responses", func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bEvStream, bEvRec, bObs, bFind, bAnomState, bResp} {
			if _, err := tx.CreateBucket(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	}},
}

// SchemaVersion is the schema this binary writes: the last migration.
var SchemaVersion = migrations[len(migrations)-1].version

// migrate brings the file to SchemaVersion and returns the version it
// found (0 for a new file).
func (s *Store) migrate() (from uint32, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bMeta)
		if meta == nil {
			empty := true
			if err := tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil }); err != nil {
				return err
			}
			if !empty {
				return fmt.Errorf("%w: buckets but no schema version: not a fleet store", store.ErrInvalid)
			}
			var err error
			if meta, err = tx.CreateBucket(bMeta); err != nil {
				return err
			}
		} else {
			v := meta.Get(keySchema)
			if len(v) != 4 {
				return fmt.Errorf("%w: schema version of %d bytes, want 4", store.ErrInvalid, len(v))
			}
			from = binary.BigEndian.Uint32(v)
		}
		if from > SchemaVersion {
			return fmt.Errorf("%w: schema version %d, this binary knows up to %d", store.ErrSchemaTooNew, from, SchemaVersion)
		}
		for _, m := range migrations {
			if m.version <= from {
				continue
			}
			if err := m.apply(tx); err != nil {
				return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
			}
		}
		if from == SchemaVersion {
			return nil
		}
		var v [4]byte
		binary.BigEndian.PutUint32(v[:], SchemaVersion)
		return meta.Put(keySchema, v[:])
	})
	return from, err
}
