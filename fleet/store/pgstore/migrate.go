package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/hardphone/hardphone/fleet/store"
)

// migrationLock is the key of the session advisory lock migrations run
// under ("hpfleet" in ASCII): replicas starting together queue on it, and
// each finds the schema as the one before it left it. A replica that dies
// holding it releases it with its session.
const migrationLock int64 = 0x6870666c656574

// bootstrap creates what records the schema version. It is not a
// migration: it must exist before the version can be read.
const bootstrap = `
CREATE SCHEMA IF NOT EXISTS hpfleet;
CREATE TABLE IF NOT EXISTS hpfleet.schema_migrations (
	version    integer PRIMARY KEY CHECK (version > 0),
	name       text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
);`

// migration is one numbered step of the schema: SQL run in a transaction
// together with the row that records it, so a step is applied entirely
// or not at all.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations is the schema's history; append, never edit a step that has
// shipped. A step must keep the previous release working (add tables and
// nullable columns; drop only in a later release), since replicas of the
// old binary keep running until they are replaced. Text columns use the
// "C" collation, so ordering and uniqueness are bytewise as in bbolt,
// whatever the database's locale.
var migrations = []migration{
	{1, "fleet store: allow-list, challenges, devices, certificates, reports, settings", `
CREATE TABLE hpfleet.allowlist (
	ek_hash     bytea PRIMARY KEY CHECK (octet_length(ek_hash) = 32),
	serial      text COLLATE "C" NOT NULL UNIQUE,
	model       text COLLATE "C" NOT NULL,
	grp         text COLLATE "C" NOT NULL,
	imported_at timestamptz NOT NULL
);

-- Removing a TPM from the allow-list ends its enrolment rounds.
CREATE TABLE hpfleet.challenges (
	id                  bytea PRIMARY KEY CHECK (octet_length(id) = 16),
	ek_hash             bytea NOT NULL REFERENCES hpfleet.allowlist (ek_hash) ON DELETE CASCADE,
	ak_name             bytea NOT NULL,
	identity_public_key bytea NOT NULL,
	secret_hash         bytea NOT NULL CHECK (octet_length(secret_hash) = 32),
	created_at          timestamptz NOT NULL,
	expires_at          timestamptz NOT NULL CHECK (expires_at > created_at)
);
CREATE INDEX challenges_ek ON hpfleet.challenges (ek_hash);
CREATE INDEX challenges_expires ON hpfleet.challenges (expires_at);

CREATE TABLE hpfleet.devices (
	id                  text COLLATE "C" PRIMARY KEY,
	serial              text COLLATE "C" NOT NULL,
	model               text COLLATE "C" NOT NULL,
	grp                 text COLLATE "C" NOT NULL,
	ek_hash             bytea NOT NULL CHECK (octet_length(ek_hash) = 32),
	identity_public_key bytea NOT NULL,
	state               text COLLATE "C" NOT NULL CHECK (state IN ('enrolled', 'revoked', 'retired')),
	enrolled_at         timestamptz NOT NULL,
	state_changed_at    timestamptz NOT NULL,
	last_seen           timestamptz NOT NULL,
	cert_serial         bytea NOT NULL,
	cert_not_after      timestamptz NOT NULL
);
-- One device per TPM, and per serial, among those not retired: two
-- replicas enrolling one TPM at once create one device.
CREATE UNIQUE INDEX devices_ek_live ON hpfleet.devices (ek_hash) WHERE state <> 'retired';
CREATE UNIQUE INDEX devices_serial_live ON hpfleet.devices (serial) WHERE state <> 'retired';

CREATE TABLE hpfleet.certs (
	serial     bytea PRIMARY KEY CHECK (octet_length(serial) = 16),
	device_id  text COLLATE "C" NOT NULL REFERENCES hpfleet.devices (id),
	not_before timestamptz NOT NULL,
	not_after  timestamptz NOT NULL CHECK (not_after > not_before),
	revoked_at timestamptz,
	reason     smallint NOT NULL DEFAULT 0,
	der        bytea
);
CREATE INDEX certs_device ON hpfleet.certs (device_id, not_before DESC, serial DESC);
CREATE INDEX certs_revoked ON hpfleet.certs (serial) WHERE revoked_at IS NOT NULL;
-- A device always points at a certificate of its own; checked at commit,
-- since CreateDevice writes both in one transaction.
ALTER TABLE hpfleet.devices ADD CONSTRAINT devices_cert FOREIGN KEY (cert_serial)
	REFERENCES hpfleet.certs (serial) DEFERRABLE INITIALLY DEFERRED;

-- Sequences are never rolled back: a number is handed out once, even by a
-- transaction that fails.
CREATE SEQUENCE hpfleet.cert_serial_seq AS bigint MINVALUE 1 NO CYCLE;
CREATE SEQUENCE hpfleet.crl_number_seq AS bigint MINVALUE 1 NO CYCLE;

CREATE TABLE hpfleet.reports (
	device_id   text COLLATE "C" NOT NULL REFERENCES hpfleet.devices (id),
	seq         bigint GENERATED ALWAYS AS IDENTITY,
	received_at timestamptz NOT NULL,
	body        jsonb NOT NULL,
	signed      bytea NOT NULL,
	PRIMARY KEY (device_id, seq)
);

CREATE TABLE hpfleet.settings (
	key        text COLLATE "C" PRIMARY KEY,
	value      text COLLATE "C" NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
);
`},
	{2, "director: sealing keys, assignments, provisioning state", `
ALTER TABLE hpfleet.devices ADD COLUMN sealing_public_key bytea;
ALTER TABLE hpfleet.challenges ADD COLUMN sealing_public_key bytea,
	ADD COLUMN sealing_secret_hash bytea CHECK (octet_length(sealing_secret_hash) = 32);

CREATE TABLE hpfleet.assignments (
	kind       text COLLATE "C" NOT NULL CHECK (kind IN ('group', 'device')),
	name       text COLLATE "C" NOT NULL,
	revision   bigint NOT NULL CHECK (revision > 0),
	config     bytea,
	firmware   jsonb,
	updated_at timestamptz NOT NULL,
	updated_by text COLLATE "C" NOT NULL,
	PRIMARY KEY (kind, name)
);

CREATE TABLE hpfleet.provision (
	device_id text COLLATE "C" PRIMARY KEY REFERENCES hpfleet.devices (id),
	rev       bigint NOT NULL CHECK (rev > 0),
	due_at    timestamptz NOT NULL,
	data      bytea NOT NULL
);
CREATE INDEX provision_due ON hpfleet.provision (due_at);
`},
	{3, "rollouts: rollouts, their devices, approval keys", `
CREATE TABLE hpfleet.rollouts (
	id         text COLLATE "C" PRIMARY KEY,
	grp        text COLLATE "C" NOT NULL,
	active     boolean NOT NULL,
	rev        bigint NOT NULL CHECK (rev > 0),
	created_at timestamptz NOT NULL,
	data       bytea NOT NULL
);
-- One active rollout per group: two replicas creating one at once store
-- one.
CREATE UNIQUE INDEX rollouts_active ON hpfleet.rollouts (grp) WHERE active;
CREATE INDEX rollouts_created ON hpfleet.rollouts (created_at DESC, id DESC);

CREATE TABLE hpfleet.rollout_devices (
	rollout_id text COLLATE "C" NOT NULL REFERENCES hpfleet.rollouts (id),
	device_id  text COLLATE "C" NOT NULL,
	rev        bigint NOT NULL CHECK (rev > 0),
	data       bytea NOT NULL,
	PRIMARY KEY (rollout_id, device_id)
);

CREATE TABLE hpfleet.approver_keys (
	key_id        text COLLATE "C" PRIMARY KEY,
	admin         text COLLATE "C" NOT NULL UNIQUE,
	public_key    bytea NOT NULL,
	registered_at timestamptz NOT NULL
);
`},
	{4, "security monitoring: exported journals, anomaly observations, findings, state, responses", `
CREATE TABLE hpfleet.event_streams (
	device_id text COLLATE "C" PRIMARY KEY REFERENCES hpfleet.devices (id),
	rev       bigint NOT NULL CHECK (rev > 0),
	data      bytea NOT NULL
);

CREATE TABLE hpfleet.event_records (
	device_id text COLLATE "C" NOT NULL REFERENCES hpfleet.devices (id),
	pos       bigint NOT NULL CHECK (pos > 0),
	chain     bytea NOT NULL CHECK (octet_length(chain) = 16),
	seq       bigint NOT NULL CHECK (seq > 0),
	type      smallint NOT NULL CHECK (type BETWEEN 1 AND 4),
	time      timestamptz NOT NULL,
	kind      text COLLATE "C" NOT NULL,
	severity  smallint NOT NULL CHECK (severity BETWEEN 0 AND 7),
	raw       bytea NOT NULL CHECK (octet_length(raw) BETWEEN 1 AND 4096),
	PRIMARY KEY (device_id, pos)
);

-- The detector's input, in the order the fleet received it; appends take
-- an advisory lock so seqs commit in order.
CREATE TABLE hpfleet.anomaly_observations (
	seq       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	device_id text COLLATE "C" NOT NULL,
	at        timestamptz NOT NULL,
	data      bytea NOT NULL CHECK (octet_length(data) BETWEEN 1 AND 4096)
);

CREATE TABLE hpfleet.anomaly_findings (
	id       bigint PRIMARY KEY CHECK (id > 0),
	time     timestamptz NOT NULL,
	rule     text COLLATE "C" NOT NULL,
	severity smallint NOT NULL CHECK (severity BETWEEN 0 AND 7),
	devices  text[] NOT NULL,
	data     bytea NOT NULL
);
CREATE INDEX anomaly_findings_devices ON hpfleet.anomaly_findings USING gin (devices);

CREATE TABLE hpfleet.anomaly_state (
	id       smallint PRIMARY KEY CHECK (id = 1),
	rev      bigint NOT NULL CHECK (rev > 0),
	cursor   bigint NOT NULL,
	saved_at timestamptz NOT NULL,
	data     bytea NOT NULL
);

CREATE TABLE hpfleet.anomaly_responses (
	device_id  text COLLATE "C" NOT NULL REFERENCES hpfleet.devices (id),
	kind       text COLLATE "C" NOT NULL CHECK (kind IN ('block_outbound', 'quarantine')),
	finding    bigint NOT NULL,
	rule       text COLLATE "C" NOT NULL,
	until      timestamptz NOT NULL,
	data       bytea,
	updated_at timestamptz NOT NULL,
	PRIMARY KEY (device_id, kind)
);
`},
}

// SchemaVersion is the schema this binary writes: the last migration.
var SchemaVersion = migrations[len(migrations)-1].version

// migrate brings the database to SchemaVersion under the advisory lock and
// returns the version it found.
func (s *Store) migrate(ctx context.Context) (from int, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLock); err != nil {
		return 0, fmt.Errorf("migrate: take lock: %w", err)
	}
	defer func() {
		// A failed unlock (the connection broke) releases the lock with
		// the session; the connection is not reused then.
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrationLock); uerr != nil {
			conn.Conn().Close(context.WithoutCancel(ctx))
			if err == nil {
				err = fmt.Errorf("migrate: release lock: %w", uerr)
			}
		}
	}()
	// Simple protocol: the bootstrap is several statements.
	if _, err := conn.Exec(ctx, bootstrap, pgx.QueryExecModeSimpleProtocol); err != nil {
		return 0, fmt.Errorf("migrate: bootstrap: %w", err)
	}
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM hpfleet.schema_migrations").Scan(&from); err != nil {
		return 0, fmt.Errorf("migrate: read version: %w", err)
	}
	if from > SchemaVersion {
		return from, fmt.Errorf("%w: schema version %d, this binary knows up to %d", store.ErrSchemaTooNew, from, SchemaVersion)
	}
	for _, m := range migrations {
		if m.version <= from {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql, pgx.QueryExecModeSimpleProtocol); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO hpfleet.schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
		if err != nil {
			return from, fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
		s.log.Info("schema migrated", "version", m.version, "name", m.name)
	}
	return from, nil
}
