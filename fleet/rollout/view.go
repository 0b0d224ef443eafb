package rollout

import (
	"context"
	"encoding/hex"

	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/configdoc"
	"github.com/hardphone/hardphone/fleet/store"
)

// View is a rollout as admins see it (the API's shape).
type View = api.Rollout

// Get returns a rollout.
func (e *Engine) Get(ctx context.Context, id store.RolloutID) (View, error) {
	rec, _, err := e.load(ctx, id)
	if err != nil {
		return View{}, err
	}
	return e.view(ctx, rec)
}

// List returns a page of rollouts, newest first.
func (e *Engine) List(ctx context.Context, after string, limit int) ([]View, string, error) {
	pg, err := e.st.ListRollouts(ctx, store.PageRequest{After: after, Limit: limit})
	if err != nil {
		return nil, "", err
	}
	out := []View{}
	for _, r := range pg.Items {
		rec, err := decodeRecord(r.Data)
		if err != nil {
			return nil, "", err
		}
		out = append(out, e.summary(rec))
	}
	return out, pg.Next, nil
}

func (e *Engine) viewOf(ctx context.Context, id store.RolloutID, rec *record) (View, error) {
	if rec == nil {
		return e.Get(ctx, id)
	}
	return e.view(ctx, rec)
}

// summary is the view without the devices' counts.
func (e *Engine) summary(rec *record) View {
	v := View{ID: rec.ID, Kind: string(rec.Spec.Kind), Group: rec.Spec.Group, Device: rec.Spec.Device, State: string(rec.State), CreatedBy: rec.CreatedBy,
		CreatedAt: rec.CreatedAt, ConfigSHA256: rec.ConfigSHA256, Signatures: rec.Signatures, CurrentRing: rec.ringName(),
		MaxFailurePercent: rec.Spec.MaxFailurePercent, Deadline: rec.Spec.Deadline.String(), ReportTimeout: rec.Spec.ReportTimeout.String(),
		Window: rec.Spec.Window, Excluded: rec.Excluded}
	if t := rec.Target; t != nil {
		v.Firmware = &api.FirmwareTarget{Name: t.Name, Length: t.Length, SHA256: hex.EncodeToString(t.SHA256[:]), Compatible: t.Compatible,
			Version: t.Version, SecurityVersion: t.SecurityVersion}
	}
	if rec.Spec.Kind == KindConfig {
		v.Config = string(rec.Spec.Config)
	}
	if rec.PolicyChange {
		v.PolicyChange = []string{"security policy"}
	}
	for _, a := range rec.Approvals {
		v.Approvals = append(v.Approvals, api.RolloutApproval{Admin: a.Admin, KeyID: a.KeyID, At: a.At})
	}
	for _, rg := range rec.Rings {
		v.Rings = append(v.Rings, api.RolloutRingView{Name: rg.Name, Devices: len(rg.Devices), StartedAt: rg.StartedAt, DoneAt: rg.DoneAt})
	}
	if h := rec.Halt; h != nil {
		v.Halt = &api.RolloutHalt{At: h.At, By: h.By, Ring: h.Ring, Reason: h.Reason}
		for _, f := range h.Failures {
			v.Halt.Failures = append(v.Halt.Failures, api.RolloutFailure{Device: f.Device, Reason: f.Reason})
		}
	}
	for _, ev := range rec.History {
		v.History = append(v.History, api.RolloutEvent{Seq: ev.Seq, At: ev.At, Actor: ev.Actor, Action: ev.Action, Detail: ev.Detail})
	}
	return v
}

// view is the full view: each ring's devices counted by status.
func (e *Engine) view(ctx context.Context, rec *record) (View, error) {
	v := e.summary(rec)
	if rec.Spec.Kind == KindConfig {
		// The exact keys, now that the group's document can be read.
		if keys, err := configdoc.PolicyChanged(e.groupConfigBefore(ctx, rec), rec.Spec.Config); err == nil && rec.PolicyChange && len(keys) > 0 {
			v.PolicyChange = keys
		}
	}
	id := store.RolloutID(rec.ID)
	for i, rg := range rec.Rings {
		for _, dev := range rg.Devices {
			d, _, err := e.loadDevice(ctx, id, dev)
			if err != nil {
				return v, err
			}
			rv := &v.Rings[i]
			switch d.Status {
			case DeviceDone:
				rv.Done++
			case DeviceFailed:
				rv.Failed++
			case DeviceReverted:
				rv.Reverted++
			case DeviceUpdating:
				rv.Updating++
			default:
				rv.Waiting++
			}
		}
	}
	return v, nil
}

// groupConfigBefore is the document the rollout replaces, the group's or
// (device scope) the device's own (nil when none, or once the rollout
// completed and replaced it).
func (e *Engine) groupConfigBefore(ctx context.Context, rec *record) []byte {
	if rec.State == StateCompleted {
		return nil
	}
	a, err := e.dir.Assignment(ctx, rec.Spec.scope())
	if err != nil {
		return nil
	}
	return a.Config
}

// Devices returns a page of a rollout's devices and their health.
func (e *Engine) Devices(ctx context.Context, id store.RolloutID, after string, limit int) ([]api.RolloutDevice, string, error) {
	rec, _, err := e.load(ctx, id)
	if err != nil {
		return nil, "", err
	}
	pg, err := e.st.ListRolloutDevices(ctx, id, store.PageRequest{After: after, Limit: limit})
	if err != nil {
		return nil, "", err
	}
	out := []api.RolloutDevice{}
	for _, rd := range pg.Items {
		d, err := decodeDevice(rd.Data)
		if err != nil {
			return nil, "", err
		}
		ring := ""
		if d.Ring >= 0 && d.Ring < len(rec.Rings) {
			ring = rec.Rings[d.Ring].Name
		}
		out = append(out, api.RolloutDevice{Device: string(rd.Device), Ring: ring, Status: string(d.Status), Reason: d.Reason,
			ReleasedAt: d.ReleasedAt, TargetsVersion: d.TargetsVersion, ConfigVersion: d.ConfigVersion})
	}
	return out, pg.Next, nil
}
