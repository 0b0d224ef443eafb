package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// A fleet configuration document is an overlay on the image's config: the
// director signs it for one device, the phone merges it over the config
// file its image ships and validates the result as any config. Merging:
// tables merge key by key, recursively, the document's value winning;
// [[account]] entries merge by name (by user when unnamed), the document's
// keys winning, and accounts the image does not name are appended; any
// other array is replaced whole. (The fleet composes group defaults and
// device overrides by the same rules.) A document cannot remove an image
// key, only set it, and it may set only the keys below.

// MaxDocument bounds a fleet configuration document (the director's bound
// for the config.toml target).
const MaxDocument = 1 << 20

// ErrImageOnly is returned (wrapped in a *KeyError) for a fleet document
// that sets a key only the image may set.
var ErrImageOnly = errors.New("only the phone's image sets this key, never a fleet document")

// ErrKeyCase: a document's key is not in the lower case every
// configuration key is written in.
var ErrKeyCase = errors.New("configuration keys are lower case (a key in another case would reach the setting of that name)")

// ErrSealedUnsupported is returned (wrapped in a *KeyError) for a sealed
// secret the phone has no place for: any *_sealed key but an account's
// password_sealed.
var ErrSealedUnsupported = errors.New("no sealed secret of that name: only account.password_sealed is opened")

// imageOnly are the keys a fleet document may not set, each with why. A
// director holds online keys; whoever steals them must not be able to turn
// the phone against its owner, so a document may tune what the phone does
// (accounts, media, call caps, where events go) but never what it trusts,
// what it exposes, where its secrets live or who may command it. Tables
// listed here are image-only as a whole.
var imageOnly = map[string]string{
	"board":                   "the hardware: its slots, boot environment and TPM",
	"state_dir":               "where the phone's state and secrets live",
	"credential_store":        "where the phone's secrets and identity key live",
	"control_socket":          "who may command the phone locally",
	"control_uids":            "who may command the phone locally",
	"lockdown_policy":         "the lockdown policy bounds what the phone exposes; a document never relaxes it",
	"lockdown_check_interval": "part of the lockdown",
	"listen":                  "plain SIP listeners open ports the lockdown closes",
	"listen_peer":             "goes with listen",
	"tls":                     "the registrar's trust anchors and the phone's identity",
	"provision":               "the fleet's own trust anchors, repositories and mark-good rules: a document that broke them could not be fixed remotely",
	"update":                  "who may sign firmware, and the firmware's mark-good rule",
	"audio":                   "the sound hardware; a sound server elsewhere would carry the calls' audio off the phone",
	"events.syslog_ca":        "the collector's trust anchors",
	"media.allow_peers":       "lifts the refusal of loopback and link-local media destinations (a lab setting)",
	"account.password_file":   "a file on the phone; fleet accounts name a credential (password_cred)",
}

// sealedSuffix marks a sealed secret: a value encrypted to this phone's
// TPM (password_sealed).
const sealedSuffix = "_sealed"

// CheckFleetDocument parses a fleet configuration document and refuses a
// key only the image may set, or a sealed secret; it does not validate the
// values (ParseWithDocument does, against the image's config). The error
// is a *KeyError naming the key.
func CheckFleetDocument(doc []byte) error {
	_, err := parseDocument(doc)
	return err
}

// SealedOnlyChange reports whether next says what prev says but for its
// sealed secrets: a password rotation. The running accounts ask the
// credential store for their password at each challenge, so a phone can
// take such a document without stopping its calls. Either document not
// parsing, or setting a key it may not, is an error.
func SealedOnlyChange(prev, next []byte) (bool, error) {
	p, err := parseDocument(prev)
	if err != nil {
		return false, fmt.Errorf("previous %w", err)
	}
	n, err := parseDocument(next)
	if err != nil {
		return false, err
	}
	// parseDocument took the sealed values out of both.
	return reflect.DeepEqual(p, n), nil
}

func parseDocument(doc []byte) (map[string]any, error) {
	if len(doc) == 0 || len(doc) > MaxDocument {
		return nil, fmt.Errorf("fleet document of %d bytes: want 1..%d", len(doc), MaxDocument)
	}
	m := map[string]any{}
	if _, err := toml.NewDecoder(bytes.NewReader(doc)).Decode(&m); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("fleet document: line %d: %s", pe.Position.Line, pe.Message)
		}
		return nil, fmt.Errorf("fleet document: %w", err)
	}
	if err := checkImageOnly(m, ""); err != nil {
		return nil, err
	}
	if _, err := takeSealed(m); err != nil {
		return nil, err
	}
	return m, nil
}

// keyPasswordSealed is an account's SIP password sealed to this phone's
// TPM by the fleet (crypto/credstore.OpenSealed opens it into the
// credential password_cred names). Only a fleet document carries it.
const keyPasswordSealed = "password_sealed"

// maxSealed bounds a sealed value.
const maxSealed = 4096

// takeSealed removes the sealed passwords from a document's accounts and
// returns them by the credential each opens into; each needs its
// account's password_cred, in the document too.
func takeSealed(m map[string]any) (map[string]string, error) {
	out := map[string]string{}
	raw, ok := m["account"]
	if !ok {
		return out, nil
	}
	accts, err := tables(raw)
	if err != nil {
		return nil, &KeyError{Key: "account", Err: err}
	}
	for i, a := range accts {
		v, ok := a[keyPasswordSealed]
		if !ok {
			continue
		}
		key := fmt.Sprintf("account[%d].%s", i, keyPasswordSealed)
		val, isStr := v.(string)
		if !isStr || !strings.HasPrefix(val, "hps1.") || len(val) > maxSealed {
			return nil, &KeyError{Key: key, Err: errors.New("want a sealed value (hps1.…) of at most 4096 bytes")}
		}
		cred, _ := a["password_cred"].(string)
		if cred == "" {
			return nil, &KeyError{Key: key, Err: errors.New("needs password_cred in the same account: the credential it opens into")}
		}
		if _, dup := out[cred]; dup {
			return nil, &KeyError{Key: key, Err: fmt.Errorf("a second sealed value for %q", cred)}
		}
		out[cred] = val
		delete(a, keyPasswordSealed)
	}
	return out, nil
}

// checkImageOnly walks a document's keys in sorted order (so the key an
// error names does not depend on map order).
func checkImageOnly(m map[string]any, prefix string) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		path := prefix + k
		if k != strings.ToLower(k) {
			// The TOML decoder matches a key to its field ignoring case: a
			// "Provision" table would reach [provision] past the
			// image-only check, which compares names exactly.
			return &KeyError{Key: path, Err: ErrKeyCase}
		}
		if _, ok := imageOnly[path]; ok {
			return &KeyError{Key: path, Err: ErrImageOnly}
		}
		if strings.HasSuffix(k, sealedSuffix) && path != "account."+keyPasswordSealed {
			return &KeyError{Key: path, Err: ErrSealedUnsupported}
		}
		if path == "account" {
			accts, err := tables(m[k])
			if err != nil {
				return &KeyError{Key: path, Err: err}
			}
			for i, a := range accts {
				if err := checkImageOnly(a, "account."); err != nil {
					var ke *KeyError
					if errors.As(err, &ke) {
						ke.Key = fmt.Sprintf("account[%d].%s", i, strings.TrimPrefix(ke.Key, "account."))
					}
					return err
				}
			}
			continue
		}
		if sub, ok := m[k].(map[string]any); ok {
			if err := checkImageOnly(sub, path+"."); err != nil {
				return err
			}
		}
	}
	return nil
}

// tables reads an array of tables ([[account]]).
func tables(v any) ([]map[string]any, error) {
	switch a := v.(type) {
	case []map[string]any:
		return a, nil
	case []any:
		out := make([]map[string]any, 0, len(a))
		for i, e := range a {
			t, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("entry %d is not a table", i)
			}
			out = append(out, t)
		}
		return out, nil
	}
	return nil, errors.New("not an array of tables ([[account]])")
}

// ParseWithDocument merges a fleet document over the image's config bytes
// (relative paths resolve against dir, as for Parse) and validates the
// result. A document that sets an image-only key or does not parse is
// refused before the merge; one whose merge does not validate is refused
// with the key Parse names.
func ParseWithDocument(image []byte, dir string, doc []byte) (*Config, error) {
	over, err := parseDocument(doc)
	if err != nil {
		return nil, err
	}
	// parseDocument checked them; take them again, from a fresh parse, to
	// hand them to the accounts after the merge.
	sealedDoc := map[string]any{}
	if _, err := toml.NewDecoder(bytes.NewReader(doc)).Decode(&sealedDoc); err != nil {
		return nil, fmt.Errorf("fleet document: %w", err)
	}
	sealed, err := takeSealed(sealedDoc)
	if err != nil {
		return nil, err
	}
	base := map[string]any{}
	if _, err := toml.NewDecoder(bytes.NewReader(image)).Decode(&base); err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	if err := merge(base, over, ""); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(base); err != nil {
		return nil, fmt.Errorf("merge fleet document: %w", err)
	}
	c, err := Parse(b.Bytes(), dir)
	if err != nil {
		return nil, fmt.Errorf("with the fleet document: %w", err)
	}
	for cred, val := range sealed {
		found := false
		for i := range c.Accounts {
			if c.Accounts[i].PasswordCred == cred {
				c.Accounts[i].PasswordSealed, found = val, true
			}
		}
		if !found {
			return nil, fmt.Errorf("with the fleet document: a sealed password for %q, which no account uses", cred)
		}
	}
	return c, nil
}

// LoadWithDocument reads the image's config file and merges doc over it
// (nil doc: the file alone, as Load).
func LoadWithDocument(path string, doc []byte) (*Config, error) {
	if doc == nil {
		return Load(path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := ParseWithDocument(b, filepath.Dir(path), doc)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	c.Path = path
	return c, nil
}

// ReferenceImage is a minimal image config the fleet can validate a
// document against when it does not know the phone's image: the
// image-only keys a fleet phone has, no account.
const ReferenceImage = `state_dir = "/data/hardphone"
credential_store = "/dev/tpmrm0"
control_socket = "/run/hardphone/ctl.sock"

[tls]
ca_file = "/etc/hardphone/registrar-ca.pem"
`

func merge(dst, src map[string]any, path string) error {
	for k, sv := range src {
		dv, ok := dst[k]
		if !ok {
			dst[k] = sv
			continue
		}
		if path == "" && k == "account" {
			da, err := tables(dv)
			if err != nil {
				return keyErr("account", "image config: %v", err)
			}
			sa, err := tables(sv)
			if err != nil {
				return keyErr("account", "fleet document: %v", err)
			}
			dst[k] = mergeAccounts(da, sa)
			continue
		}
		dm, dok := dv.(map[string]any)
		sm, sok := sv.(map[string]any)
		if dok && sok {
			if err := merge(dm, sm, path+k+"."); err != nil {
				return err
			}
			continue
		}
		dst[k] = sv
	}
	return nil
}

// accountKey is what matches a document's account with the image's: its
// name, which is its user when unnamed (as Parse names accounts).
func accountKey(a map[string]any) string {
	if n, ok := a["name"].(string); ok && n != "" {
		return n
	}
	if u, ok := a["user"].(string); ok && u != "" {
		return u
	}
	return ""
}

func mergeAccounts(image, doc []map[string]any) []map[string]any {
	out := append([]map[string]any(nil), image...)
	for _, d := range doc {
		k := accountKey(d)
		merged := false
		for _, g := range out {
			if k != "" && accountKey(g) == k {
				for kk, v := range d {
					g[kk] = v
				}
				merged = true
				break
			}
		}
		if !merged {
			out = append(out, d)
		}
	}
	return out
}
