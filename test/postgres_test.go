package test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestStartPostgres starts a server, connects two clients with the one DSN
// (two hpfleet replicas), checks the server runs unprivileged and listens
// on no TCP port, and that Stop ends it.
func TestStartPostgres(t *testing.T) {
	pg := StartPostgres(t)
	ctx := context.Background()
	var conns []*pgx.Conn
	for range 2 {
		c, err := pgx.Connect(ctx, pg.DSN)
		if err != nil {
			t.Fatalf("Connect(DSN) error %v\n%s", err, pg.LogTail())
		}
		t.Cleanup(func() { c.Close(ctx) })
		conns = append(conns, c)
	}
	var pid1, pid2 int
	if err := conns[0].QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid1); err != nil {
		t.Fatalf("query: %v", err)
	}
	if err := conns[1].QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid2); err != nil {
		t.Fatalf("query: %v", err)
	}
	if pid1 == pid2 {
		t.Fatalf("two connections share backend %d", pid1)
	}
	var listen string
	if err := conns[0].QueryRow(ctx, "SHOW listen_addresses").Scan(&listen); err != nil {
		t.Fatalf("query: %v", err)
	}
	if listen != "" {
		t.Fatalf("listen_addresses = %q, want none (unix socket only)", listen)
	}
	st, err := os.Stat("/proc/" + strconv.Itoa(pg.PID()))
	if err != nil {
		t.Fatalf("stat postmaster: %v", err)
	}
	if uid := st.Sys().(*syscall.Stat_t).Uid; uid == 0 {
		t.Fatalf("postmaster runs as root")
	}
	// A wrong password is refused: the DSN's secret is what lets a
	// client in.
	cfg, err := pgx.ParseConfig(pg.DSN)
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	cfg.Password = "wrong"
	if c, err := pgx.ConnectConfig(ctx, cfg); err == nil {
		c.Close(ctx)
		t.Fatalf("Connect(wrong password) = nil error, want refusal")
	}
	dsn2 := pg.NewDatabase(t)
	if dsn2 == pg.DSN {
		t.Fatalf("NewDatabase returned the DSN of the first database")
	}
	pid := pg.PID()
	pg.Stop(t)
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("postmaster %d still there after Stop (kill 0: %v)", pid, err)
	}
}
