package history

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/crypto/credstore"
)

// store is a real credential store with the software protector.
func store(t *testing.T) (*credstore.Store, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	p, err := credstore.NewSoftwareProtector(filepath.Join(dir, "kek"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := credstore.Open(db, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

const cards = "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1\r\nFN:Alice\r\n  Liddell\r\n" +
	"TEL;TYPE=work,voice;VALUE=uri:tel:+49-30-1234567\r\nIMPP;PREF=1:sip:alice@example.com\r\nEND:VCARD\r\n" +
	"BEGIN:VCARD\r\nVERSION:2.1\r\nN:Builder;Bob;;;\r\nitem1.TEL;CELL:+1 555 0100\r\nNOTE:a\\, b\\; c\r\nEND:VCARD\r\n" +
	"BEGIN:VCARD\r\nFN:No Number\r\nEND:VCARD\r\n" +
	"BEGIN:VCARD\r\nFN:\u202eEvil\x07\r\nTEL:110\r\nEND:VCARD\r\n"

func TestParseVCards(t *testing.T) {
	cs, err := ParseVCards(strings.NewReader(cards))
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 3 {
		t.Fatalf("ParseVCards = %d contacts, want 3 (one without a number skipped): %+v", len(cs), cs)
	}
	if cs[0].Name != "Alice Liddell" || len(cs[0].Numbers) != 2 || cs[0].Numbers[1] != "sip:alice@example.com" {
		t.Errorf("card 1 = %+v", cs[0])
	}
	if cs[1].Name != "Bob Builder" || cs[1].Numbers[0] != "+1 555 0100" {
		t.Errorf("card 2 (2.1, N only, grouped TEL) = %+v", cs[1])
	}
	if cs[2].Name != "Evil" {
		t.Errorf("card 3 name = %q, want control and bidi characters removed", cs[2].Name)
	}
	again, _ := ParseVCards(strings.NewReader(cards))
	if again[0].ID != cs[0].ID || again[1].ID != cs[1].ID {
		t.Errorf("IDs differ between two parses of the same cards")
	}
	if _, err := ParseVCards(strings.NewReader("BEGIN:VCARD\nFN:" + strings.Repeat("x", maxLine+1) + "\nEND:VCARD\n")); err == nil {
		t.Errorf("ParseVCards(overlong line) = nil error")
	}
}

// TestBook: history newest first, searchable, bounded; contacts stored;
// and none of it readable from the state file.
func TestBook(t *testing.T) {
	s, path := store(t)
	b, err := Open(s)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	for i := 0; i < MaxEntries+5; i++ {
		peer := "sip:carol@example.com"
		if i%2 == 0 {
			peer = "sip:dave-secret-peer@example.com"
		}
		if err := b.Add(Entry{Account: "alice", Direction: "out", Peer: peer, Start: start.Add(time.Duration(i) * time.Minute), Answered: true}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := b.List(0, "")
	if err != nil || len(all) != MaxEntries || all[0].Seq != MaxEntries+5 {
		t.Fatalf("List = %d entries (newest %d), %v; want %d, newest first", len(all), all[0].Seq, err, MaxEntries)
	}
	carol, _ := b.List(10, "CAROL")
	if len(carol) != 10 || !strings.Contains(carol[0].Peer, "carol") {
		t.Errorf("List(search carol) = %+v", carol)
	}
	cs, _ := ParseVCards(strings.NewReader(cards))
	if n, err := b.AddContacts(cs); err != nil || n != 3 {
		t.Fatalf("AddContacts = %d, %v", n, err)
	}
	if n, err := b.AddContacts(cs); err != nil || n != 3 {
		t.Fatalf("AddContacts again = %d, %v", n, err)
	}
	got, _ := b.Contacts("alice")
	if len(got) != 1 || got[0].Name != "Alice Liddell" {
		t.Errorf("Contacts(alice) = %+v", got)
	}
	if all, _ := b.Contacts(""); len(all) != 3 {
		t.Errorf("Contacts() = %d, want 3 (a second import replaces)", len(all))
	}
	// Reopen: the sequence continues.
	b2, err := Open(s)
	if err != nil || b2.next != MaxEntries+6 {
		t.Fatalf("reopened next = %d, %v", b2.next, err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"dave-secret-peer", "Liddell", "+49-30-1234567"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the state file holds %q in clear", secret)
		}
	}
}
