package credstore

import (
	"fmt"
	"os"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Environment of the child process TestKilledMidPut starts from this test
// binary.
const (
	childEnv     = "HARDPHONE_CREDSTORE_CHILD"
	childDBEnv   = "HARDPHONE_CREDSTORE_CHILD_DB"
	childSpecEnv = "HARDPHONE_CREDSTORE_CHILD_SPEC"
	childFromEnv = "HARDPHONE_CREDSTORE_CHILD_FROM"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(childPutLoop())
	}
	os.Exit(m.Run())
}

// crashValue is the value the child stores under crash/<i>: big enough that
// a Put spends real time writing pages.
func crashValue(i int) []byte {
	v := make([]byte, 3000)
	for j := range v {
		v[j] = byte(i + j)
	}
	return append(v, fmt.Sprintf("#%d", i)...)
}

// childPutLoop opens the store and Puts crash/<i> for ever, printing i
// after each Put returns (that is, after bbolt committed and synced it),
// until it is killed.
func childPutLoop() int {
	db, err := bolt.Open(os.Getenv(childDBEnv), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	p, err := openProtector(os.Getenv(childSpecEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	s, err := Open(db, p)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	var from int
	fmt.Sscan(os.Getenv(childFromEnv), &from)
	for i := from; ; i++ {
		if err := s.Put(fmt.Sprintf("crash/%d", i), crashValue(i)); err != nil {
			fmt.Fprintln(os.Stderr, "child: put:", err)
			return 3
		}
		fmt.Fprintln(os.Stdout, i)
	}
}
