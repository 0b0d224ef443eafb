package rollout

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/hardphone/hardphone/fleet/configdoc"
	"github.com/hardphone/hardphone/fleet/director"
	"github.com/hardphone/hardphone/fleet/store"
)

// PolicyChange lists the security policy keys (configdoc.PolicyKeys, AccountPolicyKeys) a
// configuration rollout changes against the document it replaces (the
// group's, or the device's own for a device-scope rollout); none for
// firmware. Such a rollout is a security policy change: a security
// admin starts it and another approves it.
func (e *Engine) PolicyChange(ctx context.Context, spec Spec) ([]string, error) {
	if spec.Kind != KindConfig {
		return nil, nil
	}
	cur, err := e.dir.Assignment(ctx, spec.scope())
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	keys, err := configdoc.PolicyChanged(cur.Config, spec.Config)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return keys, nil
}

// DirectChange says whether an admin may change a scope's assignment
// directly (PUT of a document or firmware): not while the group has an
// active rollout, not a document that changes the group's lockdown
// policy, and nothing at all when the director needs admins' signatures
// (ErrNeedsApproval: start a rollout).
func (e *Engine) DirectChange(ctx context.Context, sc store.Scope, doc []byte) error {
	if e.dir.AdminSignaturesNeeded() > 0 {
		return fmt.Errorf("%w: the director root needs %d admins' signatures on every change", ErrNeedsApproval, e.dir.AdminSignaturesNeeded())
	}
	group := sc.Name
	if sc.Kind == store.ScopeDevice {
		d, err := e.st.GetDevice(ctx, store.DeviceID(sc.Name))
		if err != nil {
			return err
		}
		group = d.Group
	}
	if r, err := e.st.ActiveRolloutOf(ctx, group); err == nil {
		return fmt.Errorf("%w: group %s has rollout %s under way", ErrState, group, r.ID)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if doc == nil {
		return nil
	}
	cur, err := e.dir.Assignment(ctx, sc)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	keys, err := configdoc.PolicyChanged(cur.Config, doc)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if len(keys) > 0 {
		if sc.Kind == store.ScopeDevice {
			return fmt.Errorf("%w: the document changes the device's security policy (%v): start a rollout of the device", ErrNeedsApproval, keys)
		}
		return fmt.Errorf("%w: the document changes the security policy (%v)", ErrNeedsApproval, keys)
	}
	return nil
}

// Create plans a rollout and stores it pending approval: the group's
// enrolled devices (or the one device of a device-scope rollout) split
// into rings (canaries by name, then cumulative
// percentages in an order drawn from the rollout's ID), and, when the
// director needs admins' signatures, every device's targets staged for
// them.
func (e *Engine) Create(ctx context.Context, spec Spec, by Actor) (View, error) {
	if err := spec.Validate(); err != nil {
		return View{}, err
	}
	if spec.Device != "" {
		// One device: it must be enrolled; the rollout is one of its
		// group's (one at a time per group).
		d, err := e.st.GetDevice(ctx, store.DeviceID(spec.Device))
		if errors.Is(err, store.ErrNotFound) {
			return View{}, fmt.Errorf("%w: no device %s", ErrInvalid, spec.Device)
		}
		if err != nil {
			return View{}, err
		}
		if d.State != store.StateEnrolled || spec.Group != "" && spec.Group != d.Group {
			return View{}, fmt.Errorf("%w: device %s is %s in group %s", ErrInvalid, spec.Device, d.State, d.Group)
		}
		spec.Group = d.Group
	}
	if _, err := e.st.ActiveRolloutOf(ctx, spec.Group); err == nil {
		return View{}, fmt.Errorf("%w: group %s has a rollout under way", ErrState, spec.Group)
	} else if !errors.Is(err, store.ErrNotFound) {
		return View{}, err
	}
	now := e.now()
	rec := &record{ID: string(store.NewRolloutID()), Spec: spec, State: StatePending, CreatedBy: by.Name, CreatedAt: now,
		Current: -1, Signatures: e.dir.AdminSignaturesNeeded()}
	group, err := e.dir.Assignment(ctx, store.Scope{Kind: store.ScopeGroup, Name: spec.Group})
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return View{}, err
	default:
		rec.GroupRevision = group.Revision
	}
	switch spec.Kind {
	case KindFirmware:
		t, err := e.dir.Firmware(ctx, spec.Firmware)
		if err != nil {
			return View{}, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		rec.Target = &t
	case KindConfig:
		doc, err := configdoc.Parse(spec.Config)
		if err != nil {
			return View{}, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		var ve *configdoc.ValidationError
		if err := doc.Validate(); err != nil && (!errors.As(err, &ve) || !ve.Missing) {
			return View{}, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		rec.ConfigSHA256 = configHash(spec.Config)
		cur := group
		if spec.Device != "" {
			if cur, err = e.dir.Assignment(ctx, spec.scope()); err != nil && !errors.Is(err, store.ErrNotFound) {
				return View{}, err
			}
		}
		keys, err := configdoc.PolicyChanged(cur.Config, spec.Config)
		if err != nil {
			return View{}, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		rec.PolicyChange = len(keys) > 0
	}
	devs, excluded, err := e.eligible(ctx, rec)
	if err != nil {
		return View{}, err
	}
	rec.Excluded = excluded
	if rec.Rings, err = plan(rec.ID, spec.Rings, devs); err != nil {
		return View{}, err
	}
	var rdevs []store.RolloutDevice
	for i, rg := range rec.Rings {
		for _, id := range rg.Devices {
			d := &deviceRecord{Ring: i, Status: DeviceWaiting}
			if rec.Signatures > 0 {
				st, err := e.dir.Stage(ctx, id, rec.override())
				if err != nil {
					return View{}, fmt.Errorf("%w: %w", ErrInvalid, err)
				}
				d.Staged, d.Unchanged = st, st.Unchanged
			}
			b, err := d.encode()
			if err != nil {
				return View{}, err
			}
			rdevs = append(rdevs, store.RolloutDevice{Rollout: store.RolloutID(rec.ID), Device: id, Data: b})
		}
	}
	detail := fmt.Sprintf("%s to %s, %d devices in %d rings", spec.Kind, spec.target(), len(devs), len(rec.Rings))
	if rec.Signatures > 0 {
		detail += fmt.Sprintf("; %d admin signature(s) needed on every device's targets", rec.Signatures)
	}
	rec.event(now, by, "rollout.create", detail)
	rec.History[len(rec.History)-1].Outcome = "pending"
	b, err := rec.encode()
	if err != nil {
		return View{}, err
	}
	r, err := e.st.CreateRollout(ctx, store.Rollout{ID: store.RolloutID(rec.ID), Group: spec.Group, Active: true, CreatedAt: now, Data: b}, rdevs)
	if errors.Is(err, store.ErrExists) {
		return View{}, fmt.Errorf("%w: group %s has a rollout under way", ErrState, spec.Group)
	}
	if err != nil {
		return View{}, err
	}
	e.log.Info("rollout created", "rollout", rec.ID, "group", spec.Group, "device", spec.Device, "kind", string(spec.Kind), "devices", len(devs), "by", by.Name)
	e.flush(ctx, r.ID)
	return e.view(ctx, rec)
}

// eligible lists the group's devices the rollout covers, and those it
// leaves out with why: the one device of a device-scope rollout.
func (e *Engine) eligible(ctx context.Context, rec *record) ([]store.DeviceID, []string, error) {
	if rec.Spec.Device != "" {
		return []store.DeviceID{store.DeviceID(rec.Spec.Device)}, nil, nil
	}
	var out []store.DeviceID
	var excluded []string
	p := store.PageRequest{Limit: store.MaxPageSize}
	for {
		page, err := e.st.ListDevices(ctx, p)
		if err != nil {
			return nil, nil, err
		}
		for _, d := range page.Items {
			if d.Group != rec.Spec.Group || d.State != store.StateEnrolled {
				continue
			}
			if rec.Spec.Kind == KindFirmware {
				a, err := e.dir.Assignment(ctx, store.Scope{Kind: store.ScopeDevice, Name: string(d.ID)})
				if err == nil && a.Firmware != nil {
					excluded = append(excluded, fmt.Sprintf("%s: its own firmware assignment (%s) rules", d.ID, a.Firmware.Name))
					continue
				}
			}
			out = append(out, d.ID)
		}
		if len(out) > store.MaxRolloutDevices {
			return nil, nil, fmt.Errorf("%w: group %s has more than %d devices", ErrInvalid, rec.Spec.Group, store.MaxRolloutDevices)
		}
		if page.Next == "" {
			break
		}
		p.After = page.Next
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("%w: group %s has no enrolled device the rollout can move", ErrInvalid, rec.Spec.Group)
	}
	return out, excluded, nil
}

// plan splits devices into rings: named canaries first (each must be one
// of devices), then cumulative percentages of the whole in an order drawn
// from the rollout ID (reproducible, not the enrolment order). A ring may
// come out empty; it is done as soon as it starts.
func plan(id string, specs []RingSpec, devices []store.DeviceID) ([]ring, error) {
	left := slices.Clone(devices)
	out := make([]ring, len(specs))
	for i, s := range specs {
		out[i].Name = s.Name
		for _, d := range s.Devices {
			k := slices.Index(left, store.DeviceID(d))
			if k < 0 {
				return nil, fmt.Errorf("%w: ring %s: device %s is not an enrolled device of the group the rollout covers", ErrInvalid, s.Name, d)
			}
			left = slices.Delete(left, k, k+1)
			out[i].Devices = append(out[i].Devices, store.DeviceID(d))
		}
	}
	order := func(d store.DeviceID) []byte {
		h := sha256.Sum256([]byte(id + "\x00" + string(d)))
		return h[:]
	}
	sort.Slice(left, func(a, b int) bool { return bytes.Compare(order(left[a]), order(left[b])) < 0 })
	total := len(devices)
	assigned := total - len(left)
	for i, s := range specs {
		if s.Percent == 0 {
			continue
		}
		want := (s.Percent*total + 99) / 100
		for assigned < want && len(left) > 0 {
			out[i].Devices = append(out[i].Devices, left[0])
			left = left[1:]
			assigned++
		}
	}
	if len(left) != 0 {
		return nil, fmt.Errorf("%w: %d devices in no ring", ErrInvalid, len(left))
	}
	return out, nil
}

// staged is a device's staged change as the director made it.
type staged = director.Staged
