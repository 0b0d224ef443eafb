package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/hardphone/hardphone/fleet/anomaly"
	"github.com/hardphone/hardphone/fleet/configdoc"
	"github.com/hardphone/hardphone/fleet/store"
)

// An outbound block is a device override of [account.dialing] for every
// account of the device's composed document, published through the
// director (which validates the composition with the phone's parser, signs
// it and tells the phone): allow = the emergency numbers, international =
// false. It edits the device's own document, not a copy: each account's
// entry in it gets the two keys (an entry is added, keyed like the group's,
// when the device document has none), and what was there before is kept
// in the response's bookkeeping. Ending the block puts back exactly those
// keys, and only where they still hold the block's values: whatever an
// admin changed meanwhile stays as the admin left it.
//
// configdoc merges a device account into the group's key by key, so the
// device's dialing table replaces the group's for the block's duration;
// the group's other dialing keys (caps, hours) come back with it.

const (
	keyAccount = "account"
	keyDialing = "dialing"
	keyAllow   = "allow"
	keyIntl    = "international"
	blockActor = "anomaly"
)

// blockState is what a block changed, to undo it.
type blockState struct {
	Finding uint64 `json:"finding"`
	// Allow is the list the block set (to recognise it when undoing).
	Allow []string `json:"allow"`
	// Created: the device had no document of its own before.
	Created  bool           `json:"created,omitempty"`
	Accounts []blockAccount `json:"accounts"`
}

// blockAccount is one [[account]] entry of the device document the block
// touched.
type blockAccount struct {
	// Key is how configdoc matches the entry ("name:alice", "user:1001").
	Key string `json:"key"`
	// Added: the block added the entry (only its key field and dialing).
	Added bool `json:"added,omitempty"`
	// HadDialing: the entry had a dialing table; PrevAllow and PrevIntl
	// are its allow and international (nil when absent).
	HadDialing bool     `json:"had_dialing,omitempty"`
	PrevAllow  []string `json:"prev_allow,omitempty"`
	HadAllow   bool     `json:"had_allow,omitempty"`
	PrevIntl   *bool    `json:"prev_international,omitempty"`
}

// accountKey is configdoc's merge key of an [[account]] table: its name,
// else its user ("" for neither).
func accountKey(a map[string]any) string {
	if n, ok := a["name"].(string); ok && n != "" {
		return "name:" + n
	}
	if u, ok := a["user"].(string); ok && u != "" {
		return "user:" + u
	}
	return ""
}

func parseDoc(b []byte) (map[string]any, error) {
	m := map[string]any{}
	if b == nil {
		return m, nil
	}
	if _, err := toml.NewDecoder(bytes.NewReader(b)).Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", configdoc.ErrInvalid, err)
	}
	return m, nil
}

func accountsOf(m map[string]any) []map[string]any {
	switch a := m[keyAccount].(type) {
	case []map[string]any:
		return a
	case []any:
		out := make([]map[string]any, 0, len(a))
		for _, e := range a {
			if t, ok := e.(map[string]any); ok {
				out = append(out, t)
			}
		}
		return out
	}
	return nil
}

func stringList(v any) ([]string, bool) {
	switch l := v.(type) {
	case []string:
		return slices.Clone(l), true
	case []any:
		out := make([]string, 0, len(l))
		for _, e := range l {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	return nil, false
}

func encodeDoc(m map[string]any) ([]byte, error) {
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(m); err != nil {
		return nil, fmt.Errorf("%w: encode: %v", configdoc.ErrInvalid, err)
	}
	return b.Bytes(), nil
}

// block carries out an outbound block: the override is published, the
// response stored; a block in force is extended instead.
func (a *anomalyRunner) block(ctx context.Context, r anomaly.Response) (string, string) {
	s := a.s
	id := store.DeviceID(r.Device)
	if cur, err := s.st.GetAnomalyResponse(ctx, id, store.ResponseBlock); err == nil {
		if r.Until.After(cur.Until) {
			cur.Until, cur.UpdatedAt = store.ClampTime(r.Until), s.o.now()
			if err := s.st.PutAnomalyResponse(ctx, cur); err != nil {
				return "failed", trunc(err.Error(), 400)
			}
		}
		return "done", fmt.Sprintf("already blocked (finding %d); until %s", cur.Finding, cur.Until.UTC().Format(time.RFC3339))
	}
	if s.dir == nil {
		return "failed", "this fleet server runs without a director: no configuration to push"
	}
	if r.Override == nil {
		return "failed", "the finding carries no dialling override"
	}
	st, version, err := s.applyBlock(ctx, id, r)
	if err != nil {
		s.log.Error("outbound block not pushed", "device", r.Device, "finding", r.Finding, "err", err)
		return "failed", trunc(err.Error(), 400)
	}
	data, err := json.Marshal(st)
	if err == nil {
		err = s.st.PutAnomalyResponse(ctx, store.AnomalyResponse{Device: id, Kind: store.ResponseBlock, Finding: r.Finding, Rule: r.Rule,
			Until: store.ClampTime(r.Until), Data: data, UpdatedAt: s.o.now()})
	}
	if err != nil {
		// The override is out: take it back rather than leave it with
		// nobody to end it.
		if uerr := s.undoBlock(ctx, id, st); uerr != nil {
			s.log.Error("outbound block: undo after a store failure", "device", r.Device, "err", uerr)
		}
		return "failed", trunc(err.Error(), 400)
	}
	s.log.Warn("outbound calls blocked", "device", r.Device, "until", r.Until, "finding", r.Finding, "config_version", version)
	return "done", fmt.Sprintf("dialling override published (config version %d) until %s", version, r.Until.UTC().Format(time.RFC3339))
}

// applyBlock edits the device's document and publishes it.
func (s *Server) applyBlock(ctx context.Context, id store.DeviceID, r anomaly.Response) (blockState, uint64, error) {
	st := blockState{Finding: r.Finding, Allow: slices.Clone(r.Override.Allow)}
	d, err := s.st.GetDevice(ctx, id)
	if err != nil {
		return st, 0, err
	}
	var group, dev []byte
	if ga, err := s.st.GetAssignment(ctx, store.Scope{Kind: store.ScopeGroup, Name: d.Group}); err == nil {
		group = ga.Config
	} else if !errors.Is(err, store.ErrNotFound) {
		return st, 0, err
	}
	devScope := store.Scope{Kind: store.ScopeDevice, Name: string(id)}
	if da, err := s.st.GetAssignment(ctx, devScope); err == nil {
		dev = da.Config
	} else if !errors.Is(err, store.ErrNotFound) {
		return st, 0, err
	}
	gm, err := parseDoc(group)
	if err != nil {
		return st, 0, err
	}
	dm, err := parseDoc(dev)
	if err != nil {
		return st, 0, err
	}
	st.Created = dev == nil
	// The composed document's accounts, by merge key, in order.
	var keys []string
	for _, acc := range append(accountsOf(gm), accountsOf(dm)...) {
		if k := accountKey(acc); k != "" && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return st, 0, errors.New("the device's configuration has no account to block")
	}
	devAccts := accountsOf(dm)
	allow := make([]any, len(r.Override.Allow))
	for i, n := range r.Override.Allow {
		allow[i] = n
	}
	for _, k := range keys {
		ba := blockAccount{Key: k}
		var entry map[string]any
		for _, e := range devAccts {
			if accountKey(e) == k {
				entry = e
				break
			}
		}
		if entry == nil {
			field, val, _ := cutKey(k)
			entry = map[string]any{field: val}
			devAccts = append(devAccts, entry)
			ba.Added = true
		}
		dial, ok := entry[keyDialing].(map[string]any)
		if ok {
			ba.HadDialing = true
			if v, has := dial[keyAllow]; has {
				ba.PrevAllow, _ = stringList(v)
				ba.HadAllow = true
			}
			if v, has := dial[keyIntl].(bool); has {
				ba.PrevIntl = &v
			}
		} else {
			dial = map[string]any{}
			entry[keyDialing] = dial
		}
		dial[keyAllow], dial[keyIntl] = allow, r.Override.International
		st.Accounts = append(st.Accounts, ba)
	}
	dm[keyAccount] = devAccts
	doc, err := encodeDoc(dm)
	if err != nil {
		return st, 0, err
	}
	ch, err := s.dir.SetConfig(ctx, devScope, doc, blockActor)
	if err != nil {
		return st, 0, err
	}
	var version uint64
	for _, p := range ch.Published {
		version = p.ConfigVersion
	}
	if len(ch.Failed) > 0 {
		return st, version, fmt.Errorf("stored but not published: %s", ch.Failed[0])
	}
	return st, version, nil
}

func cutKey(k string) (field, val string, ok bool) {
	for i := 0; i < len(k); i++ {
		if k[i] == ':' {
			return k[:i], k[i+1:], true
		}
	}
	return "", "", false
}

// unblock ends a stored block.
func (s *Server) unblock(ctx context.Context, r store.AnomalyResponse) error {
	var st blockState
	if len(r.Data) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.Data, &st); err != nil {
		return fmt.Errorf("block bookkeeping of %s: %w", r.Device, err)
	}
	if s.dir == nil {
		return errors.New("this fleet server runs without a director: the override cannot be taken back here")
	}
	if err := s.undoBlock(ctx, r.Device, st); err != nil {
		return err
	}
	s.log.Info("outbound block ended", "device", string(r.Device), "finding", st.Finding)
	return nil
}

// undoBlock puts back what the block changed where it still holds the
// block's values, and publishes.
func (s *Server) undoBlock(ctx context.Context, id store.DeviceID, st blockState) error {
	devScope := store.Scope{Kind: store.ScopeDevice, Name: string(id)}
	da, err := s.st.GetAssignment(ctx, devScope)
	if errors.Is(err, store.ErrNotFound) || err == nil && da.Config == nil {
		return nil // an admin removed the device's document: nothing to undo
	}
	if err != nil {
		return err
	}
	dm, err := parseDoc(da.Config)
	if err != nil {
		return err
	}
	devAccts := accountsOf(dm)
	for _, ba := range st.Accounts {
		i := slices.IndexFunc(devAccts, func(e map[string]any) bool { return accountKey(e) == ba.Key })
		if i < 0 {
			continue
		}
		entry := devAccts[i]
		dial, ok := entry[keyDialing].(map[string]any)
		if !ok {
			continue
		}
		if cur, ok := stringList(dial[keyAllow]); !ok || !slices.Equal(cur, st.Allow) {
			continue // changed since: the admin's now
		}
		if ba.HadAllow {
			allow := make([]any, len(ba.PrevAllow))
			for i, n := range ba.PrevAllow {
				allow[i] = n
			}
			dial[keyAllow] = allow
		} else {
			delete(dial, keyAllow)
		}
		if ba.PrevIntl != nil {
			dial[keyIntl] = *ba.PrevIntl
		} else {
			delete(dial, keyIntl)
		}
		if !ba.HadDialing && len(dial) == 0 {
			delete(entry, keyDialing)
		}
		if ba.Added && len(entry) == 1 {
			devAccts = slices.Delete(devAccts, i, i+1)
		}
	}
	if len(devAccts) == 0 {
		delete(dm, keyAccount)
	} else {
		dm[keyAccount] = devAccts
	}
	if len(dm) == 0 && st.Created {
		_, err = s.dir.DeleteConfig(ctx, devScope, blockActor)
		return err
	}
	doc, err := encodeDoc(dm)
	if err != nil {
		return err
	}
	ch, err := s.dir.SetConfig(ctx, devScope, doc, blockActor)
	if err != nil {
		return err
	}
	if len(ch.Failed) > 0 {
		return fmt.Errorf("stored but not published: %s", ch.Failed[0])
	}
	return nil
}
