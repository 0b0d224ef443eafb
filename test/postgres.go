package test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// postgresReadyTimeout bounds the wait for a started server to accept a
// query; initdb has its own.
const (
	postgresReadyTimeout = 30 * time.Second
	initdbTimeout        = 2 * time.Minute
)

// postgresVersion is the Debian (bookworm) major version the harness
// prefers; another installed major is used when it is missing.
const postgresVersion = "15"

// postgresUser is the unprivileged account the server runs as when the
// tests run as root (initdb and postgres refuse root). Debian's
// postgresql-common creates it.
const postgresUser = "postgres"

// Postgres is a PostgreSQL server started by StartPostgres, private to the
// test: its data directory and unix socket live in a temporary directory,
// it listens on no TCP port, and it is stopped by PID (SIGINT, PostgreSQL's
// fast shutdown) and its directory removed when the test ends.
type Postgres struct {
	// DSN connects to the database StartPostgres created, as the
	// superuser over the unix socket (keyword/value form, with the
	// password). Any number of clients (hpfleet replicas) may use it.
	DSN string
	// SocketDir is the directory of the server's unix socket.
	SocketDir string
	// TCPAddr is "127.0.0.1:PORT" with PostgresTCP, else "".
	TCPAddr string

	runDir   string
	port     int
	password string
	proc     *process
	dbs      atomic.Int64 // databases made by NewDatabase
}

type postgresOptions struct {
	durable bool
	tcp     bool
}

// PostgresOption configures StartPostgres.
type PostgresOption func(*postgresOptions)

// PostgresDurable keeps PostgreSQL's durable defaults (fsync,
// synchronous_commit, full_page_writes), for benchmarks whose numbers must
// include the cost of a commit reaching the disk. By default the harness
// turns them off: what tests check (transactions, locks, constraints)
// does not depend on them, and the machine is shared.
func PostgresDurable() PostgresOption {
	return func(o *postgresOptions) { o.durable = true }
}

// PostgresTCP also listens on 127.0.0.1 on a free port (TCPAddr), for
// clients that cannot reach a unix socket by path, such as Kamailio's
// db_postgres, whose db_url has no way to name one. Password logins only.
func PostgresTCP() PostgresOption {
	return func(o *postgresOptions) { o.tcp = true }
}

// URL is the postgres:// URL of the database a DSN from NewDatabase (or
// DSN) names, over TCP: for PostgresTCP servers only.
func (p *Postgres) URL(t testing.TB, dsn string) string {
	t.Helper()
	if p.TCPAddr == "" {
		t.Fatalf("Postgres.URL: the server was not started with PostgresTCP")
	}
	var db string
	for _, kv := range strings.Fields(dsn) {
		if v, ok := strings.CutPrefix(kv, "dbname="); ok {
			db = v
		}
	}
	if db == "" {
		t.Fatalf("Postgres.URL: no dbname in %q", dsn)
	}
	return fmt.Sprintf("postgres://postgres:%s@%s/%s", p.password, p.TCPAddr, db)
}

// StartPostgres runs initdb in a temporary directory, starts postgres on
// it (as the unprivileged user postgres when the test runs as root), waits
// until a client can log in and run a query, and creates a database for
// DSN. It skips the test when PostgreSQL is not installed, or fails it
// under CI=true.
func StartPostgres(t testing.TB, opts ...PostgresOption) *Postgres {
	t.Helper()
	var o postgresOptions
	for _, opt := range opts {
		opt(&o)
	}
	binDir := postgresBinDir(t)
	cred := postgresCredential(t)

	// A unix socket path must fit in sun_path (108 bytes); t.TempDir()
	// paths carry the test name and may not. Its parents must also be
	// searchable by the server's user, which t.TempDir()'s are not.
	runDir, err := os.MkdirTemp("", "pg-")
	if err != nil {
		t.Fatalf("StartPostgres: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(runDir) })
	p := &Postgres{runDir: runDir, SocketDir: filepath.Join(runDir, "sock"), port: 5432,
		password: randomHex(t, 16)}
	pwFile := filepath.Join(runDir, "pwfile")
	if err := os.Mkdir(p.SocketDir, 0o700); err != nil {
		t.Fatalf("StartPostgres: %v", err)
	}
	if err := os.WriteFile(pwFile, []byte(p.password+"\n"), 0o600); err != nil {
		t.Fatalf("StartPostgres: %v", err)
	}
	if cred != nil {
		for _, path := range []string{runDir, p.SocketDir, pwFile} {
			if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
				t.Fatalf("StartPostgres: give %s to %s: %v", path, postgresUser, err)
			}
		}
	}

	dataDir := filepath.Join(runDir, "data")
	// Password logins (SCRAM) even on the socket, as a fleet's database
	// would want: the DSN is exercised with its secret.
	ictx, cancel := context.WithTimeout(context.Background(), initdbTimeout)
	defer cancel()
	initdb := exec.CommandContext(ictx, filepath.Join(binDir, "initdb"), "-D", dataDir, "-U", "postgres",
		"--pwfile", pwFile, "--auth-local=scram-sha-256", "--auth-host=scram-sha-256",
		"-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Dir = runDir
	initdb.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "HOME=" + runDir}
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	initdb.WaitDelay = time.Second
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("StartPostgres: initdb: %v\n%s", err, out)
	}
	if err := os.Remove(pwFile); err != nil {
		t.Fatalf("StartPostgres: %v", err)
	}

	listen := ""
	if o.tcp {
		p.port = freePort(t, "127.0.0.1", 1)
		listen = "127.0.0.1"
		p.TCPAddr = "127.0.0.1:" + strconv.Itoa(p.port)
	}
	args := []string{"-D", dataDir, "-k", p.SocketDir, "-p", strconv.Itoa(p.port),
		"-c", "listen_addresses=" + listen, "-c", "unix_socket_permissions=0700"}
	if !o.durable {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	p.proc = startProcessAs(t, cred, filepath.Join(runDir, "postgres.log"), runDir,
		filepath.Join(binDir, "postgres"), args...)
	// SIGINT is the fast shutdown: clients are disconnected and their
	// transactions rolled back, where SIGTERM would wait for them.
	p.proc.stopSignal = syscall.SIGINT
	p.DSN = p.dsn("postgres")
	if err := p.proc.waitFor(postgresReadyTimeout, p.probe); err != nil {
		t.Fatalf("postgres not ready: %v\n%s", err, p.LogTail())
	}
	p.DSN = p.NewDatabase(t)
	return p
}

// dsn is the connection string for database db.
func (p *Postgres) dsn(db string) string {
	return fmt.Sprintf("host=%s port=%d user=postgres password=%s dbname=%s sslmode=disable connect_timeout=5",
		p.SocketDir, p.port, p.password, db)
}

// probe logs in and runs a query: only then does the server serve clients
// (during start-up it accepts connections to refuse them).
func (p *Postgres) probe() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.dsn("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return err
	}
	if one != 1 {
		return permanentError{fmt.Errorf("SELECT 1 returned %d", one)}
	}
	return nil
}

// NewDatabase creates a fresh, empty database on the server and returns
// its DSN. Tests that each want an empty database share one server this
// way.
func (p *Postgres) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("hpfleet_%d", p.dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.dsn("postgres"))
	if err != nil {
		t.Fatalf("NewDatabase: connect: %v", err)
	}
	defer conn.Close(ctx)
	// name is ours (a counter), no quoting needed.
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("NewDatabase: create %s: %v", name, err)
	}
	return p.dsn(name)
}

// PID is the postmaster's process ID.
func (p *Postgres) PID() int { return p.proc.pid() }

// LogTail returns the end of the server's log, for failure messages.
func (p *Postgres) LogTail() string { return p.proc.logTail(3000) }

// Stop stops the server now rather than at cleanup.
func (p *Postgres) Stop(t testing.TB) { p.proc.stop(t) }

// postgresBinDir finds Debian's PostgreSQL binaries, preferring
// postgresVersion.
func postgresBinDir(t testing.TB) string {
	t.Helper()
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres") // the pattern is valid
	if len(found) == 0 {
		missing(t, "PostgreSQL server not installed (/usr/lib/postgresql/*/bin/postgres; Debian package postgresql)")
	}
	sort.Slice(found, func(i, j int) bool { return pgMajor(found[i]) > pgMajor(found[j]) })
	bin := found[0]
	for _, f := range found {
		if pgMajor(f) == mustAtoi(postgresVersion) {
			bin = f
		}
	}
	dir := filepath.Dir(bin)
	if _, err := os.Stat(filepath.Join(dir, "initdb")); err != nil {
		missing(t, "PostgreSQL initdb not installed next to %s: %v", bin, err)
	}
	return dir
}

// pgMajor is the major version in /usr/lib/postgresql/N/bin/postgres.
func pgMajor(path string) int {
	parts := strings.Split(path, string(filepath.Separator))
	if len(parts) < 4 {
		return 0
	}
	n, _ := strconv.Atoi(parts[len(parts)-3]) // not a number sorts last
	return n
}

func mustAtoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err) // a constant
	}
	return n
}

// postgresCredential is the user to run the server as: nil (ourselves)
// unless we are root, then the postgres account.
func postgresCredential(t testing.TB) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup(postgresUser)
	if err != nil {
		missing(t, "running as root and no user %q to run PostgreSQL as: %v", postgresUser, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil || uid == 0 {
		t.Fatalf("StartPostgres: user %s has uid %q gid %q", postgresUser, u.Uid, u.Gid)
	}
	// Groups empty: root's supplementary groups are dropped.
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	// crypto/rand.Read never returns an error.
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
