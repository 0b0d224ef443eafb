package system

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/agent/store"
	"github.com/hardphone/hardphone/crypto/credstore"
	"github.com/hardphone/hardphone/test"
)

// TestTruncated is the truncation case of issue item 9: a state file cut
// short is detected before bbolt maps it (bbolt would fault on the missing
// pages), reported, and left byte for byte as it was, so nothing more is
// lost; a cut that only removes unused tail space loses nothing at all.
func TestTruncated(t *testing.T) {
	sw := test.StartSWTPM(t)
	dir := filepath.Join(t.TempDir(), "state")
	creds, err := OpenCredentials(CredentialSpec{StateDir: dir, Protector: sw.Spec}, nil)
	if err != nil {
		t.Fatalf("OpenCredentials = %v", err)
	}
	values := map[string]string{}
	for i := 0; i < 40; i++ {
		// Big values, so the tree spans many pages.
		n, v := fmt.Sprintf("sip/user%02d", i), fmt.Sprintf("%02d-%s", i, bytes.Repeat([]byte("p"), 900))
		values[n] = v
		if err := creds.Put(n, []byte(v)); err != nil {
			t.Fatalf("Put = %v", err)
		}
	}
	var hwm, pageSize int64
	creds.State().DB().View(func(tx *bolt.Tx) error {
		hwm, pageSize = int64(tx.Size())/int64(tx.DB().Info().PageSize), int64(tx.DB().Info().PageSize)
		return nil
	})
	if err := creds.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	path := filepath.Join(dir, store.FileName)
	full, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if int64(len(full)) < hwm*pageSize {
		t.Fatalf("file %d bytes, below its high-water mark %d", len(full), hwm*pageSize)
	}

	tests := []struct {
		name string
		size int64
		ok   bool
	}{
		{"unused tail", hwm * pageSize, true},
		{"last page", (hwm - 1) * pageSize, false},
		{"half", hwm * pageSize / 2, false},
		{"mid page", hwm*pageSize - pageSize/2, false},
		{"meta only", pageSize * 2, false},
		{"inside meta", 100, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			cut := full[:tt.size]
			if err := os.WriteFile(filepath.Join(d, store.FileName), cut, 0o600); err != nil {
				t.Fatalf("write: %v", err)
			}
			c, err := OpenCredentials(CredentialSpec{StateDir: d, Protector: sw.Spec}, nil)
			if tt.ok {
				if err != nil {
					t.Fatalf("OpenCredentials(cut to %d) = %v, want success", tt.size, err)
				}
				defer c.Close()
				for n, v := range values {
					got, err := c.Get(n)
					if err != nil || string(got) != v {
						t.Fatalf("Get(%s) after a tail cut = %v", n, err)
					}
				}
				return
			}
			if !errors.Is(err, store.ErrCorrupt) {
				if err == nil {
					c.Close()
				}
				t.Fatalf("OpenCredentials(cut to %d) = %v, want ErrCorrupt", tt.size, err)
			}
			after, _ := os.ReadFile(filepath.Join(d, store.FileName))
			if !bytes.Equal(after, cut) {
				t.Fatalf("refused Open changed the truncated file")
			}
		})
	}
}

// TestOpenCredentials: the one-call path the agent uses, with the
// software protector too, and a refusal that releases everything.
func TestOpenCredentials(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	kek := "software:" + filepath.Join(dir, "kek")
	c, err := OpenCredentials(CredentialSpec{StateDir: dir, Protector: kek}, nil)
	if err != nil {
		t.Fatalf("OpenCredentials = %v", err)
	}
	if c.Protection() != credstore.ProtectionSoftware || !c.Protection().Weaker() {
		t.Fatalf("Protection() = %v, want software, weaker", c.Protection())
	}
	if err := c.Put("sip/alice", []byte("pw")); err != nil {
		t.Fatalf("Put = %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	sw := test.StartSWTPM(t)
	if _, err := OpenCredentials(CredentialSpec{StateDir: dir, Protector: sw.Spec}, nil); !errors.Is(err, credstore.ErrWrongProtector) {
		t.Fatalf("OpenCredentials(TPM on a software store) = %v, want ErrWrongProtector", err)
	}
	// The refusal closed the state file: it opens again at once.
	c, err = OpenCredentials(CredentialSpec{StateDir: dir, Protector: kek}, nil)
	if err != nil {
		t.Fatalf("OpenCredentials after refusal = %v", err)
	}
	defer c.Close()
	if got, err := c.Get("sip/alice"); err != nil || string(got) != "pw" {
		t.Fatalf("Get = %v", err)
	}
}
