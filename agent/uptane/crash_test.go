package uptane

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Environment of the child process the crash tests start from this test
// binary.
const (
	childEnv      = "HARDPHONE_UPTANE_CHILD"
	childDBEnv    = "HARDPHONE_UPTANE_CHILD_DB"
	childImgEnv   = "HARDPHONE_UPTANE_CHILD_IMAGE"
	childDirEnv   = "HARDPHONE_UPTANE_CHILD_DIRECTOR"
	childRootsEnv = "HARDPHONE_UPTANE_CHILD_ROOTS"
	childModeEnv  = "HARDPHONE_UPTANE_CHILD_MODE"
)

// blockingFetcher announces each director targets download on stdout and,
// in "block" mode, then waits for ever: the refresh has everything
// fetched and verified nothing committed when the parent kills it.
type blockingFetcher struct {
	Fetcher
	block bool
}

func (b blockingFetcher) Fetch(ctx context.Context, name string, max int64) ([]byte, error) {
	data, err := b.Fetcher.Fetch(ctx, name, max)
	if err == nil && strings.HasSuffix(name, ".targets.json") {
		fmt.Fprintln(os.Stdout, "fetched", name)
		if b.block {
			select {}
		}
	}
	return data, err
}

// childRefreshLoop opens the state file and refreshes: once in "block"
// mode (it stops inside the refresh), for ever in "loop" mode, printing
// the director targets version after each refresh that committed.
func childRefreshLoop() int {
	db, err := bolt.Open(os.Getenv(childDBEnv), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	roots := strings.Split(os.Getenv(childRootsEnv), ",")
	imgRoot, err1 := os.ReadFile(roots[0])
	dirRoot, err2 := os.ReadFile(roots[1])
	if err1 != nil || err2 != nil {
		fmt.Fprintln(os.Stderr, "child: roots:", err1, err2)
		return 2
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	imgF, _ := NewHTTPFetcher(hc, os.Getenv(childImgEnv))
	dirF, _ := NewHTTPFetcher(hc, os.Getenv(childDirEnv))
	block := os.Getenv(childModeEnv) == "block"
	c, err := New(db, devA, time.Now, RepoConfig{Root: imgRoot, Fetcher: imgF},
		RepoConfig{Root: dirRoot, Fetcher: blockingFetcher{Fetcher: dirF, block: block}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	for {
		st, err := c.Refresh(context.Background())
		if err == nil && st.Director.LastChanged {
			fmt.Fprintln(os.Stdout, "committed", st.Director.Targets)
		}
	}
}

// startChild runs childRefreshLoop against the fleet's repositories and
// returns the command and its stdout lines.
func startChild(t *testing.T, f *fleet, dbPath, mode string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childDBEnv+"="+dbPath, childModeEnv+"="+mode,
		childImgEnv+"="+f.imageURL(), childDirEnv+"="+f.directorURL(devA),
		childRootsEnv+"="+filepath.Join(f.base, "image", "public", "1.root.json")+","+filepath.Join(f.dirRepo.PublicDir(), "1.root.json"))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("pipe: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, lines
}

func kill(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill child %d: %v", cmd.Process.Pid, err)
	}
	cmd.Wait()
}

// TestKilledBetweenFetchAndCommit: a refresh killed after it fetched (and
// verified) everything but before it committed leaves the previous
// trusted set byte for byte.
func TestKilledBetweenFetchAndCommit(t *testing.T) {
	f := newFleet(t, fleetOptions{})
	f.assign(devA, "1.0")
	p := f.newPhone(devA)
	p.mustRefresh()
	before := dump(t, p.db)
	p.close()

	f.clock.Add(time.Minute)
	f.assign(devA, "2.0")
	f.refreshTimestamps()
	cmd, lines := startChild(t, f, p.dbPath, "block")
	select {
	case l := <-lines:
		if !strings.HasPrefix(l, "fetched ") {
			t.Fatalf("child said %q before fetching targets", l)
		}
	case <-time.After(time.Minute):
		t.Fatalf("child did not fetch targets within a minute")
	}
	kill(t, cmd)

	p.open()
	sameState(t, before, dump(t, p.db))
	if st := p.c.Status(); st.Director.Targets != 1 {
		t.Fatalf("director targets v%d after the crash, want v1", st.Director.Targets)
	}
	// The next refresh completes.
	if st := p.mustRefresh(); st.Director.Targets != 2 {
		t.Fatalf("director targets v%d after refresh, want v2", st.Director.Targets)
	}
}

// TestKilledAnywhere: a phone refreshing in a loop while the director
// publishes, killed at random moments (inside fetches, verification and
// bbolt's commit), always reopens with a trusted set that verifies as a
// whole and is no older than the last one it acknowledged.
func TestKilledAnywhere(t *testing.T) {
	f := newFleet(t, fleetOptions{})
	f.assign(devA, "1.0")
	p := f.newPhone(devA)
	p.mustRefresh()
	p.close()
	acked := int64(1)
	commits := 0
	for round := 0; round < 3; round++ {
		cmd, lines := startChild(t, f, p.dbPath, "loop")
		publish := 5 + rand.IntN(10)
		for i := 0; i < publish; i++ {
			f.assign(devA, []string{"1.0", "2.0"}[i%2])
			// Wait for the child to take this version, then go on.
			want := f.devices[devA].TargetsVersion
			for got := int64(0); got < want; {
				var l string
				select {
				case line, ok := <-lines:
					if !ok {
						t.Fatalf("child exited")
					}
					l = line
				case <-time.After(time.Minute):
					t.Fatalf("round %d: child did not commit director targets v%d within a minute", round, want)
				}
				if v, found := strings.CutPrefix(l, "committed "); found {
					got, _ = strconv.ParseInt(v, 10, 64)
					acked = max(acked, got)
					commits++
				}
			}
		}
		// One more version, and the kill lands somewhere in the refresh
		// that takes it.
		f.assign(devA, "2.0")
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		kill(t, cmd)
		for l := range lines {
			if v, found := strings.CutPrefix(l, "committed "); found {
				got, _ := strconv.ParseInt(v, 10, 64)
				acked = max(acked, got)
			}
		}

		db := mustOpenDB(t, p.dbPath)
		for _, repo := range []string{Image, Director} {
			s, err := readStored(db, repo)
			if err != nil || s == nil {
				t.Fatalf("round %d: %s stored = %v, %v", round, repo, s, err)
			}
			v, err := parseView(s)
			if err != nil {
				t.Fatalf("round %d: %s trusted set does not verify as a whole: %v", round, repo, err)
			}
			if repo == Director && v.targets.Signed.Version < acked {
				t.Fatalf("round %d: director targets v%d, but v%d was acknowledged", round, v.targets.Signed.Version, acked)
			}
		}
		db.Close()
	}
	if commits < 15 {
		t.Fatalf("%d commits over 3 rounds, want at least 15", commits)
	}
}
