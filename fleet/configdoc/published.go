package configdoc

import (
	"bytes"
	"fmt"
	"reflect"

	"github.com/BurntSushi/toml"
)

// StripSealed reads a document as the director publishes it (with the
// fleet's sealed values) and returns it without them, encoded as Encode
// does: what an approver compares with Compose of the group's document and
// the device's overrides.
func StripSealed(b []byte) ([]byte, error) {
	if len(b) > MaxDocument {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalid, len(b), MaxDocument)
	}
	m := map[string]any{}
	if _, err := toml.NewDecoder(bytes.NewReader(b)).Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	accts, err := accounts(m)
	if err != nil {
		return nil, err
	}
	for _, a := range accts {
		delete(a, KeyPasswordSealed)
	}
	if accts != nil {
		m[keyAccount] = accts
	}
	return (&Doc{m: m}).Encode()
}

// PolicyKeys are the top-level keys and tables of a document that set the
// phone's security policy: its lockdown policy and check, what it listens
// on and who may control it, its credential store, the trust anchors of
// TLS, updates and provisioning, and the peers media may come from. A
// change to any of them is a lockdown policy change (two admins approve
// it).
var PolicyKeys = []string{"lockdown_policy", "lockdown_check_interval", "listen", "listen_peer", "control_socket",
	"control_uids", "credential_store", "tls", "update", "provision", "media.allow_peers"}

// PolicyChanged reports whether two documents (either may be nil: none)
// differ in any of PolicyKeys, and which.
func PolicyChanged(a, b []byte) ([]string, error) {
	var da, db *Doc
	var err error
	if a != nil {
		if da, err = Parse(a); err != nil {
			return nil, err
		}
	} else {
		da = &Doc{m: map[string]any{}}
	}
	if b != nil {
		if db, err = Parse(b); err != nil {
			return nil, err
		}
	} else {
		db = &Doc{m: map[string]any{}}
	}
	var out []string
	for _, k := range PolicyKeys {
		if !reflect.DeepEqual(lookup(da.m, k), lookup(db.m, k)) {
			out = append(out, k)
		}
	}
	return out, nil
}

// lookup returns the value at a dotted path of tables, nil when absent.
func lookup(m map[string]any, path string) any {
	var cur any = m
	for _, part := range splitDots(path) {
		t, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = t[part]
	}
	return cur
}

func splitDots(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
