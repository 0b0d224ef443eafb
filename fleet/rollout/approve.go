package rollout

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/hardphone/hardphone/fleet/store"
	"github.com/hardphone/hardphone/fleet/tufrepo"
)

// Approve is a second admin's approval of a rollout whose director signs
// alone: the rollout starts. The creator cannot approve their own rollout
// (ErrSamePerson); a rollout that needs signatures is approved by Sign.
func (e *Engine) Approve(ctx context.Context, id store.RolloutID, by Actor) (View, error) {
	_, err := e.update(ctx, id, func(rec *record) error {
		if rec.State != StatePending {
			return fmt.Errorf("%w: rollout %s is %s", ErrState, id, rec.State)
		}
		if rec.Signatures > 0 {
			return fmt.Errorf("%w: rollout %s needs %d admins' signatures: sign its staged targets (hpctl fleet approve)", ErrState, id, rec.Signatures)
		}
		if by.Name == rec.CreatedBy {
			return fmt.Errorf("%w: %s created rollout %s", ErrSamePerson, by.Name, id)
		}
		now := e.now()
		rec.Approvals = append(rec.Approvals, approval{Admin: by.Name, At: now})
		rec.event(now, by, "approval.grant", "approved by a second admin")
		rec.State = StateRunning
		rec.event(now, System, "rollout.start", fmt.Sprintf("created by %s, approved by %s", rec.CreatedBy, by.Name))
		return nil
	})
	if err != nil {
		return View{}, err
	}
	e.log.Info("rollout approved", "rollout", string(id), "by", by.Name)
	e.Step(ctx, id)
	return e.Get(ctx, id)
}

// Refuse ends a pending rollout without starting it (any admin allowed to
// approve it may refuse it, its creator included).
func (e *Engine) Refuse(ctx context.Context, id store.RolloutID, by Actor, reason string) (View, error) {
	rec, err := e.update(ctx, id, func(rec *record) error {
		if rec.State != StatePending {
			return fmt.Errorf("%w: rollout %s is %s", ErrState, id, rec.State)
		}
		rec.State = StateRefused
		rec.event(e.now(), by, "approval.refuse", clip(reason))
		return nil
	})
	if err != nil {
		return View{}, err
	}
	return e.viewOf(ctx, id, rec)
}

// StagedDevice is one device's staged change for approvers.
type StagedDevice struct {
	Device    store.DeviceID
	Unchanged bool
	// Override is the device's own configuration overrides (TOML, nil
	// for none): the document was composed from them and the rollout's.
	// For a device-scope rollout the rollout's document takes their place
	// and Group is the group's document it was composed over.
	Override []byte
	Group    []byte
	Staged   *staged
}

// Staged returns a page of the devices' staged targets (a rollout that
// needs signatures), in device ID order, and the number of devices.
func (e *Engine) Staged(ctx context.Context, id store.RolloutID, after string, limit int) ([]StagedDevice, string, int, error) {
	rec, _, err := e.load(ctx, id)
	if err != nil {
		return nil, "", 0, err
	}
	if rec.Signatures == 0 {
		return nil, "", 0, fmt.Errorf("%w: rollout %s needs no signatures", ErrState, id)
	}
	pg, err := e.st.ListRolloutDevices(ctx, id, store.PageRequest{After: after, Limit: limit})
	if err != nil {
		return nil, "", 0, err
	}
	var out []StagedDevice
	for _, rd := range pg.Items {
		d, err := decodeDevice(rd.Data)
		if err != nil {
			return nil, "", 0, err
		}
		sd := StagedDevice{Device: rd.Device, Unchanged: d.Unchanged, Staged: d.Staged}
		other := store.Scope{Kind: store.ScopeDevice, Name: string(rd.Device)}
		if rec.Spec.Device != "" {
			other = store.Scope{Kind: store.ScopeGroup, Name: rec.Spec.Group}
		}
		a, err := e.dir.Assignment(ctx, other)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, "", 0, err
		case rec.Spec.Device != "":
			sd.Group = a.Config
		default:
			sd.Override = a.Config
		}
		out = append(out, sd)
	}
	return out, pg.Next, len(rec.allDevices()), nil
}

// DeviceSignature is an approver's detached signatures over one device's
// staged forward and revert targets.
type DeviceSignature struct {
	Device          store.DeviceID
	Forward, Revert []byte
}

// Sign adds an approver's signatures (one key, registered to the admin
// by) to a pending rollout's staged targets. Every signature is verified
// over its device's staged metadata before anything is written
// (ErrSignature names the first that fails). Once the key has signed
// every device, the admin's approval counts; the rollout starts when
// Signatures distinct admins approved and one of them is not its creator.
func (e *Engine) Sign(ctx context.Context, id store.RolloutID, by Actor, keyID string, sigs []DeviceSignature) (View, error) {
	rec, _, err := e.load(ctx, id)
	if err != nil {
		return View{}, err
	}
	if rec.State != StatePending || rec.Signatures == 0 {
		return View{}, fmt.Errorf("%w: rollout %s is %s and needs %d signatures", ErrState, id, rec.State, rec.Signatures)
	}
	k, err := e.st.GetApproverKey(ctx, keyID)
	if errors.Is(err, store.ErrNotFound) || err == nil && k.Admin != by.Name {
		return View{}, fmt.Errorf("%w: key %.64q is not registered to %s", ErrSignature, keyID, by.Name)
	}
	if err != nil {
		return View{}, err
	}
	tdir := e.dir.Director()
	if _, err := tdir.ApproverKey(keyID); err != nil {
		return View{}, fmt.Errorf("%w: %w", ErrSignature, err)
	}
	members := map[store.DeviceID]bool{}
	for _, d := range rec.allDevices() {
		members[d] = true
	}
	// Verify everything first: a refusal writes nothing.
	type signed struct {
		dev             store.DeviceID
		forward, revert tufrepo.Signature
	}
	var ok []signed
	for _, s := range sigs {
		if !members[s.Device] {
			return View{}, fmt.Errorf("%w: device %s is not in rollout %s", ErrSignature, s.Device, id)
		}
		d, _, err := e.loadDevice(ctx, id, s.Device)
		if err != nil {
			return View{}, err
		}
		if d.Unchanged || d.Staged == nil {
			continue
		}
		fw, rv := tufrepo.Signature{KeyID: keyID, Sig: s.Forward}, tufrepo.Signature{KeyID: keyID, Sig: s.Revert}
		if _, err := tdir.AddTargetsSignature(d.Staged.Forward.Targets, fw); err != nil {
			return View{}, fmt.Errorf("%w: device %s forward targets: %w", ErrSignature, s.Device, err)
		}
		if _, err := tdir.AddTargetsSignature(d.Staged.Revert.Targets, rv); err != nil {
			return View{}, fmt.Errorf("%w: device %s revert targets: %w", ErrSignature, s.Device, err)
		}
		ok = append(ok, signed{s.Device, fw, rv})
	}
	for _, s := range ok {
		_, err := e.updateDevice(ctx, id, s.dev, func(d *deviceRecord) error {
			if d.Staged == nil {
				return fmt.Errorf("%w: device %s has nothing staged", ErrState, s.dev)
			}
			// Another approver may have signed since: add this key's
			// signature to what is stored now.
			var err error
			if d.Staged.Forward.Targets, err = tdir.AddTargetsSignature(d.Staged.Forward.Targets, s.forward); err != nil {
				return err
			}
			if d.Staged.Revert.Targets, err = tdir.AddTargetsSignature(d.Staged.Revert.Targets, s.revert); err != nil {
				return err
			}
			if !slices.Contains(d.SignedBy, keyID) {
				d.SignedBy = append(d.SignedBy, keyID)
			}
			return nil
		})
		if err != nil {
			return View{}, err
		}
	}
	// Has this key signed every device now?
	complete := true
	for _, dev := range rec.allDevices() {
		d, _, err := e.loadDevice(ctx, id, dev)
		if err != nil {
			return View{}, err
		}
		if !d.Unchanged && !slices.Contains(d.SignedBy, keyID) {
			complete = false
			break
		}
	}
	rec, err = e.update(ctx, id, func(rec *record) error {
		if rec.State != StatePending {
			return fmt.Errorf("%w: rollout %s is %s", ErrState, id, rec.State)
		}
		now := e.now()
		if !complete || slices.ContainsFunc(rec.Approvals, func(a approval) bool { return a.KeyID == keyID || a.Admin == by.Name }) {
			rec.event(now, by, "approval.sign", fmt.Sprintf("%d device(s) signed with key %s", len(ok), keyID[:16]))
			rec.History[len(rec.History)-1].Outcome = "pending"
			return nil
		}
		rec.Approvals = append(rec.Approvals, approval{Admin: by.Name, KeyID: keyID, At: now})
		rec.event(now, by, "approval.grant", fmt.Sprintf("every device's targets signed with key %s", keyID[:16]))
		others := slices.ContainsFunc(rec.Approvals, func(a approval) bool { return a.Admin != rec.CreatedBy })
		if len(rec.Approvals) >= rec.Signatures && others {
			rec.State = StateRunning
			var names []string
			for _, a := range rec.Approvals {
				names = append(names, a.Admin)
			}
			rec.event(now, System, "rollout.start", fmt.Sprintf("created by %s, signed by %v", rec.CreatedBy, names))
		}
		return nil
	})
	if err != nil {
		return View{}, err
	}
	e.log.Info("rollout signatures added", "rollout", string(id), "by", by.Name, "key", keyID, "devices", len(ok), "complete", complete)
	if rec.State == StateRunning {
		e.Step(ctx, id)
	}
	return e.Get(ctx, id)
}
