package history

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Bounds on what the book keeps.
const (
	// MaxEntries is how many calls the history keeps; the oldest go first.
	MaxEntries = 500
	// MaxContacts is how many contacts the book holds.
	MaxContacts = 2000
)

// Sealer is the credential store's personal-data area.
type Sealer interface {
	PutPersonal(name string, value []byte) error
	GetPersonal(name string) ([]byte, error)
	ListPersonal(prefix string) ([]string, error)
	DeletePersonal(name string) error
}

// Entry is one call in the history.
type Entry struct {
	Seq       uint64        `json:"seq"`
	Account   string        `json:"account"`
	Direction string        `json:"direction"` // "in" or "out"
	Peer      string        `json:"peer"`
	Start     time.Time     `json:"start"`
	Duration  time.Duration `json:"duration_ns"`
	Answered  bool          `json:"answered"`
	EndReason string        `json:"end_reason,omitempty"`
}

// Book is the history and the contacts of one phone. Safe for concurrent
// use.
type Book struct {
	s  Sealer
	mu sync.Mutex // guards next and orders writes
	// next is the next history sequence number.
	next uint64
}

const (
	historyPrefix = "history/"
	contactPrefix = "contact/"
)

// Open opens the book in s.
func Open(s Sealer) (*Book, error) {
	if s == nil {
		return nil, errors.New("history: nil store")
	}
	names, err := s.ListPersonal(historyPrefix)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	b := &Book{s: s, next: 1}
	if n := len(names); n > 0 {
		last, err := strconv.ParseUint(strings.TrimPrefix(names[n-1], historyPrefix), 16, 64)
		if err == nil {
			b.next = last + 1
		}
	}
	return b, nil
}

func historyName(seq uint64) string { return fmt.Sprintf("%s%016x", historyPrefix, seq) }

// Add records a call; the oldest entries beyond MaxEntries are removed.
func (b *Book) Add(e Entry) error {
	e.Peer = bound(e.Peer, 256)
	e.Account = bound(e.Account, 64)
	e.EndReason = bound(e.EndReason, 128)
	b.mu.Lock()
	defer b.mu.Unlock()
	e.Seq = b.next
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := b.s.PutPersonal(historyName(e.Seq), v); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	b.next++
	names, err := b.s.ListPersonal(historyPrefix)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	for i := 0; i < len(names)-MaxEntries; i++ {
		if err := b.s.DeletePersonal(names[i]); err != nil {
			return fmt.Errorf("history: %w", err)
		}
	}
	return nil
}

// List returns up to limit calls, newest first, whose peer or account
// contains search (case-insensitive; "" matches all). A damaged record is
// skipped.
func (b *Book) List(limit int, search string) ([]Entry, error) {
	if limit <= 0 || limit > MaxEntries {
		limit = MaxEntries
	}
	names, err := b.s.ListPersonal(historyPrefix)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	search = strings.ToLower(search)
	var out []Entry
	for i := len(names) - 1; i >= 0 && len(out) < limit; i-- {
		v, err := b.s.GetPersonal(names[i])
		if err != nil {
			continue
		}
		var e Entry
		if json.Unmarshal(v, &e) != nil {
			continue
		}
		if search == "" || strings.Contains(strings.ToLower(e.Peer), search) || strings.Contains(strings.ToLower(e.Account), search) {
			out = append(out, e)
		}
	}
	return out, nil
}

// Contact is one address-book entry.
type Contact struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Numbers []string `json:"numbers"` // tel: numbers and sip: URIs, as the card had them
}

// AddContacts stores contacts (from ImportVCards), replacing any with the
// same ID; the book refuses to grow past MaxContacts.
func (b *Book) AddContacts(cs []Contact) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	names, err := b.s.ListPersonal(contactPrefix)
	if err != nil {
		return 0, fmt.Errorf("contacts: %w", err)
	}
	have := map[string]bool{}
	for _, n := range names {
		have[n] = true
	}
	added := 0
	for _, c := range cs {
		name := contactPrefix + c.ID
		if !have[name] && len(have) >= MaxContacts {
			return added, fmt.Errorf("contacts: the book holds its maximum of %d", MaxContacts)
		}
		v, err := json.Marshal(c)
		if err != nil {
			return added, err
		}
		if err := b.s.PutPersonal(name, v); err != nil {
			return added, fmt.Errorf("contacts: %w", err)
		}
		have[name] = true
		added++
	}
	return added, nil
}

// Contacts returns the contacts whose name or numbers contain search,
// sorted by name.
func (b *Book) Contacts(search string) ([]Contact, error) {
	names, err := b.s.ListPersonal(contactPrefix)
	if err != nil {
		return nil, fmt.Errorf("contacts: %w", err)
	}
	search = strings.ToLower(search)
	var out []Contact
	for _, n := range names {
		v, err := b.s.GetPersonal(n)
		if err != nil {
			continue
		}
		var c Contact
		if json.Unmarshal(v, &c) != nil {
			continue
		}
		match := search == "" || strings.Contains(strings.ToLower(c.Name), search)
		for _, num := range c.Numbers {
			match = match || strings.Contains(strings.ToLower(num), search)
		}
		if match {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func bound(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
