package credstore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// goldenValues are the credentials of the store every tamper case starts
// from.
var goldenValues = map[string]string{
	"sip/alice":          "alice-correct-horse-1",
	"sip/bob":            "bob-battery-staple-22",
	"sip/carol":          "carol-tr0ub4dor-333",
	"provisioning/token": "tok-4444-provisioning",
}

func golden(t *testing.T, k kind) (*env, *Protector) {
	t.Helper()
	e := k.env(t)
	p := k.prot(e, t)
	s := e.open(t, p)
	for n, v := range goldenValues {
		mustPut(t, s, n, v)
	}
	enrol(t, s, "phone-golden")
	s.Close()
	e.closeDB(t)
	return e, p
}

func bucket(t *testing.T, tx *bolt.Tx, name []byte) *bolt.Bucket {
	t.Helper()
	b, err := nested(tx, name)
	if err != nil {
		t.Fatalf("bucket %s: %v", name, err)
	}
	return b
}

// flip returns b with one bit flipped at i; a negative i counts from the
// end, and i wraps for records shorter than it (the software KEK record).
func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	if i < 0 {
		i += len(c)
	}
	c[i%len(c)] ^= 0x20
	return c
}

func flipIn(bkt []byte, key string, i int) func(*testing.T, *bolt.Tx) {
	return func(t *testing.T, tx *bolt.Tx) {
		b := bucket(t, tx, bkt)
		if err := b.Put([]byte(key), flip(b.Get([]byte(key)), i)); err != nil {
			t.Fatalf("put: %v", err)
		}
	}
}

func copyRecord(fromB []byte, from string, toB []byte, to string) func(*testing.T, *bolt.Tx) {
	return func(t *testing.T, tx *bolt.Tx) {
		v := bytes.Clone(bucket(t, tx, fromB).Get([]byte(from)))
		if err := bucket(t, tx, toB).Put([]byte(to), v); err != nil {
			t.Fatalf("put: %v", err)
		}
	}
}

func swapRecords(bkt []byte, a, b string) func(*testing.T, *bolt.Tx) {
	return func(t *testing.T, tx *bolt.Tx) {
		bk := bucket(t, tx, bkt)
		va, vb := bytes.Clone(bk.Get([]byte(a))), bytes.Clone(bk.Get([]byte(b)))
		if err := errors.Join(bk.Put([]byte(a), vb), bk.Put([]byte(b), va)); err != nil {
			t.Fatalf("put: %v", err)
		}
	}
}

func both(fs ...func(*testing.T, *bolt.Tx)) func(*testing.T, *bolt.Tx) {
	return func(t *testing.T, tx *bolt.Tx) {
		for _, f := range fs {
			f(t, tx)
		}
	}
}

// TestTamper is issue item 9: a flipped byte in any stored blob or
// ciphertext, or a record copied under another name, is detected and
// reported, and nothing else in the store is lost.
func TestTamper(t *testing.T) {
	// Offsets into a value record: format, version, created, updated,
	// nonce, ciphertext, last tag byte.
	recordOffsets := map[string]int{"format": 0, "version": 8, "created": 12, "updated": 20, "nonce": 30, "ciphertext": 40, "tag": -1}
	type tamperCase struct {
		name    string
		mutate  func(*testing.T, *bolt.Tx)
		openErr error    // Open must fail with this
		broken  []string // credentials that must be ErrCorrupt
		idBad   bool     // Identity() must be ErrCorrupt
		warn    string   // the log must report this
	}
	var cases []tamperCase
	for field, off := range recordOffsets {
		cases = append(cases, tamperCase{name: "value " + field, mutate: flipIn(bucketValues, "sip/alice", off), broken: []string{"sip/alice"}})
		cases = append(cases, tamperCase{name: "identity key " + field, mutate: flipIn(bucketIdentity, idKey, off), idBad: true})
		cases = append(cases, tamperCase{name: "certificate " + field, mutate: flipIn(bucketIdentity, idCert, off), idBad: true})
	}
	// KEK record: magic, protection, generation, PCR mask, SRK name, sealed
	// private area, check value, checksum. One damaged copy is repaired.
	for _, off := range []int{0, 6, 10, 20, 30, 120, -40, -1} {
		for c := 0; c < 2; c++ {
			cases = append(cases, tamperCase{
				name:   fmt.Sprintf("kek copy %d byte %d", c, off),
				mutate: flipIn(bucketMeta, string(kekKeys[c]), off),
				warn:   "KEK record copy damaged",
			})
		}
	}
	cases = append(cases,
		tamperCase{name: "value copied under another name", mutate: copyRecord(bucketValues, "sip/alice", bucketValues, "sip/bob"), broken: []string{"sip/bob"}},
		tamperCase{name: "values swapped", mutate: swapRecords(bucketValues, "sip/alice", "sip/carol"), broken: []string{"sip/alice", "sip/carol"}},
		tamperCase{name: "identity record moved into values", mutate: copyRecord(bucketIdentity, idCert, bucketValues, "sip/alice"), broken: []string{"sip/alice"}},
		tamperCase{name: "value moved into identity", mutate: copyRecord(bucketValues, "sip/alice", bucketIdentity, idCert), idBad: true},
		tamperCase{name: "identity key and cert swapped", mutate: swapRecords(bucketIdentity, idKey, idCert), idBad: true},
		tamperCase{name: "kek copy 0 deleted", mutate: func(t *testing.T, tx *bolt.Tx) {
			if err := bucket(t, tx, bucketMeta).Delete(kekKeys[0]); err != nil {
				t.Fatalf("delete: %v", err)
			}
		}, warn: "KEK record copy damaged"},
		tamperCase{name: "both kek copies damaged", mutate: both(flipIn(bucketMeta, string(kekKeys[0]), 30), flipIn(bucketMeta, string(kekKeys[1]), -40)), openErr: ErrCorrupt},
	)
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			g, p := golden(t, k)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					e := g.clone(t)
					if err := e.openDB(t).Update(func(tx *bolt.Tx) error { tc.mutate(t, tx); return nil }); err != nil {
						t.Fatalf("mutate: %v", err)
					}
					log, sink := newLog()
					s, err := Open(e.db, p, WithLogger(log))
					if tc.openErr != nil {
						if !errors.Is(err, tc.openErr) {
							t.Fatalf("Open = %v, want %v", err, tc.openErr)
						}
						return
					}
					if err != nil {
						t.Fatalf("Open = %v", err)
					}
					defer s.Close()
					if tc.warn != "" && !strings.Contains(sink.String(), tc.warn) {
						t.Fatalf("log does not report %q: %s", tc.warn, sink.String())
					}
					checkStore(t, s, tc.broken, tc.idBad)
					if tc.warn != "" {
						// Repaired: both copies equal again, and a reopen is silent.
						s.Close()
						var c0, c1 []byte
						e.db.View(func(tx *bolt.Tx) error {
							m := bucket(t, tx, bucketMeta)
							c0, c1 = bytes.Clone(m.Get(kekKeys[0])), bytes.Clone(m.Get(kekKeys[1]))
							return nil
						})
						if !bytes.Equal(c0, c1) {
							t.Fatalf("KEK record copies differ after repair")
						}
					}
				})
			}
		})
	}
}

// checkStore wants every golden value intact except broken (ErrCorrupt,
// and flagged by List), and the identity intact unless idBad.
func checkStore(t *testing.T, s *Store, broken []string, idBad bool) {
	t.Helper()
	bad := map[string]bool{}
	for _, n := range broken {
		bad[n] = true
	}
	for n, v := range goldenValues {
		if bad[n] {
			if _, err := s.Get(n); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Get(%q) = %v, want ErrCorrupt", n, err)
			}
			continue
		}
		wantGet(t, s, n, v)
	}
	list, err := s.List()
	if err != nil {
		t.Fatalf("List = %v", err)
	}
	for _, in := range list {
		if bad[in.Name] != (in.Err != nil) {
			t.Fatalf("List entry %q Err = %v, want corrupt %t", in.Name, in.Err, bad[in.Name])
		}
	}
	_, err = s.Identity()
	if idBad != errors.Is(err, ErrCorrupt) || (!idBad && err != nil) {
		t.Fatalf("Identity() = %v, want corrupt %t", err, idBad)
	}
}

// TestTamperFile flips a byte of a ciphertext in the state file itself,
// behind bbolt's back.
func TestTamperFile(t *testing.T) {
	g, p := golden(t, kinds[0])
	e := g.clone(t)
	var rec []byte
	e.openDB(t).View(func(tx *bolt.Tx) error {
		rec = bytes.Clone(bucket(t, tx, bucketValues).Get([]byte("sip/carol")))
		return nil
	})
	e.closeDB(t)
	raw, err := os.ReadFile(e.dbPath)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	// Copy-on-write leaves older pages holding the record too; damage
	// every copy, so whichever page bbolt reads is bad.
	n := 0
	for at := bytes.Index(raw, rec); at >= 0; at = bytes.Index(raw, rec) {
		raw[at+headerLen+nonceLen+3] ^= 0x01
		n++
	}
	if n == 0 {
		t.Fatalf("record of sip/carol not found in the state file")
	}
	if err := os.WriteFile(e.dbPath, raw, 0o600); err != nil {
		t.Fatalf("write: %v", err)
	}
	s := e.open(t, p)
	checkStore(t, s, []string{"sip/carol"}, false)
}
