package configdoc

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"

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
// phone's security policy. The phone refuses most of them in a fleet
// document (agent/config's image-only keys: its lockdown policy, listeners,
// control, credential store and trust anchors travel only in the signed
// image); they stay listed so that a document carrying one is still named
// a policy change. Those a document may set are the call cap and where
// security events go.
var PolicyKeys = []string{"lockdown_policy", "lockdown_check_interval", "listen", "listen_peer", "control_socket",
	"control_uids", "credential_store", "tls", "update", "provision", "media.allow_peers", "audio", "max_calls", "events"}

// AccountPolicyKeys are an account's keys that set its security policy:
// where it registers and whom it trusts there, how its digest and media
// are protected, whether it answers by itself, what it may dial (the
// toll-fraud guard), whether a peer may transfer its calls, and its call
// cap. Accounts are matched by name.
var AccountPolicyKeys = []string{"registrar", "server_name", "transport", "digest_min", "realm", "media_security",
	"answer", "answer_delay", "allow_refer", "dialing", "max_calls"}

// PolicyChanged reports whether two documents (either may be nil: none)
// differ in any of PolicyKeys or, account by account, AccountPolicyKeys,
// and which ("account.NAME.KEY" for an account's).
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
	aa, err := accountsByName(da.m)
	if err != nil {
		return nil, err
	}
	ab, err := accountsByName(db.m)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for n := range aa {
		names[n] = true
	}
	for n := range ab {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		for _, k := range AccountPolicyKeys {
			if !reflect.DeepEqual(aa[n][k], ab[n][k]) {
				out = append(out, "account."+n+"."+k)
			}
		}
	}
	return out, nil
}

// accountsByName returns a document's accounts keyed by name (an account
// without one under its position).
func accountsByName(m map[string]any) (map[string]map[string]any, error) {
	accts, err := accounts(m)
	if err != nil {
		return nil, err
	}
	out := make(map[string]map[string]any, len(accts))
	for i, a := range accts {
		n, _ := a["name"].(string)
		if n == "" {
			n = fmt.Sprintf("#%d", i+1)
		}
		out[n] = a
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
