package configdoc

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/hardphone/hardphone/agent/config"
)

// MaxDocument bounds a composed document (the director's bound).
const MaxDocument = 1 << 20

// Keys of the schema this package reads or writes.
const (
	keyAccount        = "account"
	keyName           = "name"
	keyUser           = "user"
	keyAuthUser       = "auth_user"
	keyDomain         = "domain"
	keyRegistrar      = "registrar"
	keyPasswordCred   = "password_cred"
	keyPasswordFile   = "password_file"
	KeyPasswordSealed = "password_sealed"
)

// Doc is a parsed configuration document.
type Doc struct {
	m map[string]any
}

// Parse reads one TOML document (group defaults or device overrides; not
// validated as a whole config).
func Parse(b []byte) (*Doc, error) {
	if len(b) > MaxDocument {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalid, len(b), MaxDocument)
	}
	m := map[string]any{}
	if _, err := toml.NewDecoder(bytes.NewReader(b)).Decode(&m); err != nil {
		var pe toml.ParseError
		if ok := asParseError(err, &pe); ok {
			return nil, fmt.Errorf("%w: line %d: %s", ErrInvalid, pe.Position.Line, pe.Message)
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if _, ok := m[KeyPasswordSealed]; ok {
		return nil, fmt.Errorf("%w: %s is the fleet's to write", ErrInvalid, KeyPasswordSealed)
	}
	accts, err := accounts(m)
	if err != nil {
		return nil, err
	}
	for i, a := range accts {
		if _, ok := a[KeyPasswordSealed]; ok {
			return nil, fmt.Errorf("%w: account[%d].%s is the fleet's to write", ErrInvalid, i, KeyPasswordSealed)
		}
	}
	return &Doc{m: m}, nil
}

func asParseError(err error, pe *toml.ParseError) bool {
	p, ok := err.(toml.ParseError)
	if ok {
		*pe = p
	}
	return ok
}

// accounts returns the [[account]] tables of m.
func accounts(m map[string]any) ([]map[string]any, error) {
	v, ok := m[keyAccount]
	if !ok {
		return nil, nil
	}
	switch a := v.(type) {
	case []map[string]any:
		return a, nil
	case []any:
		out := make([]map[string]any, 0, len(a))
		for i, e := range a {
			t, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%w: account[%d] is not a table", ErrInvalid, i)
			}
			out = append(out, t)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: account is not an array of tables ([[account]])", ErrInvalid)
}

// Compose merges device overrides over group defaults; either may be nil.
func Compose(group, device *Doc) (*Doc, error) {
	out := map[string]any{}
	if group != nil {
		out = deepCopy(group.m).(map[string]any)
	}
	if device != nil {
		if err := merge(out, deepCopy(device.m).(map[string]any), ""); err != nil {
			return nil, err
		}
	}
	return &Doc{m: out}, nil
}

func merge(dst, src map[string]any, path string) error {
	for k, sv := range src {
		dv, ok := dst[k]
		if !ok {
			dst[k] = sv
			continue
		}
		if path == "" && k == keyAccount {
			da, err := accounts(dst)
			if err != nil {
				return err
			}
			sa, err := accounts(src)
			if err != nil {
				return err
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

// accountKey is what merges a device's account into the group's.
func accountKey(a map[string]any) string {
	if n, ok := a[keyName].(string); ok && n != "" {
		return "name:" + n
	}
	if u, ok := a[keyUser].(string); ok && u != "" {
		return "user:" + u
	}
	return ""
}

func mergeAccounts(group, device []map[string]any) []map[string]any {
	out := append([]map[string]any(nil), group...)
	for _, d := range device {
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

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []map[string]any:
		s := make([]map[string]any, len(x))
		for i, e := range x {
			s[i] = deepCopy(e).(map[string]any)
		}
		return s
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = deepCopy(e)
		}
		return s
	}
	return v
}

// Encode writes the document as TOML (keys sorted, so equal documents
// encode alike).
func (d *Doc) Encode() ([]byte, error) {
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(d.m); err != nil {
		return nil, fmt.Errorf("%w: encode: %v", ErrInvalid, err)
	}
	if b.Len() > MaxDocument {
		return nil, fmt.Errorf("%w: composed document of %d bytes, more than %d", ErrInvalid, b.Len(), MaxDocument)
	}
	return b.Bytes(), nil
}

// Validate checks the document as the phone would (agent/config's
// CheckFleetDocument and ParseWithDocument over a reference image),
// without the sealed values, and returns the phone's reason on refusal.
func (d *Doc) Validate() error {
	c := deepCopy(d.m).(map[string]any)
	if accts, err := accounts(c); err == nil {
		for _, a := range accts {
			delete(a, KeyPasswordSealed)
		}
	}
	b, err := (&Doc{m: c}).Encode()
	if err != nil {
		return err
	}
	// A document is an overlay on the phone's image config: checked as the
	// phone checks it (no image-only key) and merged over a reference
	// image with the image-only keys a fleet phone has.
	err = config.CheckFleetDocument(b)
	if err == nil {
		_, err = config.ParseWithDocument([]byte(config.ReferenceImage), "/", b)
	}
	if err != nil {
		ve := &ValidationError{Err: err}
		var ke *config.KeyError
		if errors.As(err, &ke) {
			ve.Key = ke.Key
			ve.Missing = !present(c, ke.Key)
		}
		return ve
	}
	return nil
}

// ValidationError is a document the phone's parser refuses.
type ValidationError struct {
	// Key is the config key the parser names ("account[0].user"), ""
	// when it names none (a syntax error).
	Key string
	// Missing is true when the key is absent from the document: it is
	// incomplete (a group's defaults waiting for a device's overrides)
	// rather than wrong.
	Missing bool
	Err     error
}

func (e *ValidationError) Error() string { return e.Err.Error() }

// Unwrap makes it an ErrInvalid.
func (e *ValidationError) Unwrap() []error { return []error{ErrInvalid, e.Err} }

// present reports whether a dotted key path ("account[0].user",
// "tls.ca_file") is set in m.
func present(m map[string]any, key string) bool {
	var cur any = m
	for _, part := range strings.Split(key, ".") {
		name, idx, hasIdx := strings.Cut(part, "[")
		t, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		v, ok := t[name]
		if !ok {
			return false
		}
		if hasIdx {
			n, err := strconv.Atoi(strings.TrimSuffix(idx, "]"))
			if err != nil {
				return false
			}
			switch arr := v.(type) {
			case []map[string]any:
				if n < 0 || n >= len(arr) {
					return false
				}
				v = arr[n]
			case []any:
				if n < 0 || n >= len(arr) {
					return false
				}
				v = arr[n]
			default:
				return false
			}
		}
		cur = v
	}
	return true
}

// Account is an [[account]] of a composed document as the registrar sees
// it.
type Account struct {
	// Index is its position in the document.
	Index int
	// Name is the account's name (its user when unnamed).
	Name string
	// User is the digest user (auth_user, else user), Domain the realm
	// (domain, else the registrar's host).
	User, Domain string
	// Credential is password_cred: the credential-store name the phone
	// opens the sealed password into; "" when the account has a
	// password_file (the fleet does not manage it then).
	Credential string
}

// Accounts lists the document's accounts in order.
func (d *Doc) Accounts() ([]Account, error) {
	accts, err := accounts(d.m)
	if err != nil {
		return nil, err
	}
	var out []Account
	for i, a := range accts {
		str := func(k string) string { s, _ := a[k].(string); return s }
		acc := Account{Index: i, Name: str(keyName), User: str(keyAuthUser), Domain: str(keyDomain), Credential: str(keyPasswordCred)}
		if acc.User == "" {
			acc.User = str(keyUser)
		}
		if acc.Name == "" {
			acc.Name = str(keyUser)
		}
		if acc.Domain == "" {
			if host, _, err := net.SplitHostPort(str(keyRegistrar)); err == nil {
				acc.Domain = host
			}
		}
		if str(keyPasswordFile) != "" {
			acc.Credential = ""
		}
		out = append(out, acc)
	}
	return out, nil
}

// SetSealed puts sealed values into accounts by index (Account.Index).
func (d *Doc) SetSealed(values map[int]string) error {
	accts, err := accounts(d.m)
	if err != nil {
		return err
	}
	idx := make([]int, 0, len(values))
	for i := range values {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	for _, i := range idx {
		if i < 0 || i >= len(accts) {
			return fmt.Errorf("%w: no account %d", ErrInvalid, i)
		}
		if !strings.HasPrefix(values[i], "hps1.") {
			return fmt.Errorf("%w: account %d: not a sealed value", ErrInvalid, i)
		}
		accts[i][KeyPasswordSealed] = values[i]
	}
	d.m[keyAccount] = accts
	return nil
}

// Empty reports whether the document sets nothing.
func (d *Doc) Empty() bool { return len(d.m) == 0 }
