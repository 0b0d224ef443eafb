package pgstore

import (
	"crypto/rand"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hardphone/hardphone/fleet/store/storetest"
	"github.com/hardphone/hardphone/test"
)

// The references are bare pgx on plain tables doing the same writes and
// reads of the same sizes, one autocommitted statement each (INSERT, then
// SELECT the latest; INSERT, then DELETE ... RETURNING): the floor our
// validation, encoding, locks, constraints and history trim sit on. The
// server is durable (fsync, synchronous_commit), like bbolt's commits.

var (
	benchPGOnce sync.Once
	benchPG     *test.Postgres
)

// benchServer starts one durable server for all benchmarks of the binary;
// it is stopped when the first benchmark that asked for it ends, so
// benchmarks needing it run under one parent (see BenchmarkPostgres).
func benchServer(b *testing.B) *test.Postgres {
	benchPGOnce.Do(func() { benchPG = test.StartPostgres(b, test.PostgresDurable()) })
	return benchPG
}

func benchStore(b *testing.B, pg *test.Postgres) *Store {
	s, err := Open(ctx, pg.NewDatabase(b))
	if err != nil {
		b.Fatalf("Open error %v", err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// benchReplicas opens two stores on one database: two hpfleet replicas.
func benchReplicas(b *testing.B, pg *test.Postgres) (*Store, *Store) {
	dsn := pg.NewDatabase(b)
	var out [2]*Store
	for i := range out {
		s, err := Open(ctx, dsn)
		if err != nil {
			b.Fatalf("Open error %v", err)
		}
		b.Cleanup(func() { s.Close() })
		out[i] = s
	}
	return out[0], out[1]
}

func benchPool(b *testing.B, pg *test.Postgres, ddl string) *pgxpool.Pool {
	p, err := pgxpool.New(ctx, pg.NewDatabase(b))
	if err != nil {
		b.Fatalf("pgxpool.New error %v", err)
	}
	b.Cleanup(p.Close)
	if _, err := p.Exec(ctx, ddl); err != nil {
		b.Fatalf("%s: %v", ddl, err)
	}
	return p
}

// BenchmarkPostgres holds every PostgreSQL benchmark, so one server serves
// them all and stops at the end.
func BenchmarkPostgres(b *testing.B) {
	pg := benchServer(b)
	b.Run("CheckIn", func(b *testing.B) {
		b.Run("ours", func(b *testing.B) { storetest.BenchCheckIn(b, benchStore(b, pg)) })
		b.Run("ours-parallel-2-replicas", func(b *testing.B) {
			r1, r2 := benchReplicas(b, pg)
			storetest.BenchCheckInParallel(b, r1, r2)
		})
		b.Run("reference", func(b *testing.B) {
			p := benchPool(b, pg, `CREATE TABLE ref (device_id text, seq bigint GENERATED ALWAYS AS IDENTITY,
				body bytea, PRIMARY KEY (device_id, seq))`)
			body := storetest.SampleReport()
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Exec(ctx, `INSERT INTO ref (device_id, body) VALUES ('d', $1)`, body); err != nil {
					b.Fatalf("insert: %v", err)
				}
				var got []byte
				if err := p.QueryRow(ctx, `SELECT body FROM ref WHERE device_id = 'd' ORDER BY seq DESC LIMIT 1`).Scan(&got); err != nil || len(got) != len(body) {
					b.Fatalf("select: %d bytes, %v", len(got), err)
				}
			}
			storetest.ReportOps(b)
		})
	})
	b.Run("Challenge", func(b *testing.B) {
		b.Run("ours", func(b *testing.B) { storetest.BenchChallenge(b, benchStore(b, pg)) })
		b.Run("ours-parallel-2-replicas", func(b *testing.B) {
			r1, r2 := benchReplicas(b, pg)
			storetest.BenchChallengeParallel(b, r1, r2)
		})
		b.Run("reference", func(b *testing.B) {
			p := benchPool(b, pg, `CREATE TABLE ref (id bytea PRIMARY KEY, body bytea)`)
			body := make([]byte, 200) // a challenge record's size
			b.ReportAllocs()
			for b.Loop() {
				var id [16]byte
				// crypto/rand.Read never returns an error.
				_, _ = rand.Read(id[:])
				if _, err := p.Exec(ctx, `INSERT INTO ref (id, body) VALUES ($1, $2)`, id[:], body); err != nil {
					b.Fatalf("insert: %v", err)
				}
				var got []byte
				if err := p.QueryRow(ctx, `DELETE FROM ref WHERE id = $1 RETURNING body`, id[:]).Scan(&got); err != nil {
					b.Fatalf("delete: %v", err)
				}
			}
			storetest.ReportOps(b)
		})
	})
}
