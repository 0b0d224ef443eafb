package director

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/configdoc"
	"github.com/hardphone/hardphone/fleet/store"
	"github.com/hardphone/hardphone/fleet/tufrepo"
)

// maxGroupDevices bounds the devices one group change republishes at
// once; the rest are left to the background worker (their state is made
// due).
const maxGroupDevices = 10000

// Change is the outcome of an assignment change.
type Change struct {
	Assignment store.Assignment
	Published  []Result
	// Failed names the devices that could not be republished and why
	// (the worker retries them).
	Failed []string
}

// SetConfig sets a group's or a device's configuration document. It is
// refused (ErrConfig, with the phone's reason) when it does not parse,
// when a device's composition with it does not validate for a device
// scope, or, for a group, when a device whose composition validates now
// would get one that does not: it never breaks what works. A group
// document that is incomplete without device overrides (an account's
// user, say) is accepted; devices without a valid composition yet get no
// document and are listed in Change.Failed. The devices it applies to are
// republished.
func (s *Service) SetConfig(ctx context.Context, sc store.Scope, doc []byte, admin string) (Change, error) {
	parsed, err := configdoc.Parse(doc)
	if err != nil {
		return Change{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	// On its own, a document may be incomplete, never wrong.
	var ve *configdoc.ValidationError
	if err := parsed.Validate(); err != nil && (!errors.As(err, &ve) || !ve.Missing) {
		return Change{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	devs, err := s.devicesOf(ctx, sc)
	if err != nil {
		return Change{}, err
	}
	var notReady []string
	// Check every device's composition before anything is stored.
	for _, d := range devs {
		groupA, devA, err := s.assignmentsOf(ctx, d)
		if err != nil {
			return Change{}, err
		}
		cand := &store.Assignment{Scope: sc, Config: doc}
		if sc.Kind == store.ScopeGroup {
			_, errOld := s.compose(d, groupA, devA)
			if _, err := s.compose(d, cand, devA); err != nil {
				var ve *configdoc.ValidationError
				worked := errOld == nil && (groupA != nil && groupA.Config != nil || devA != nil && devA.Config != nil)
				if worked || !errors.As(err, &ve) || !ve.Missing {
					// Wrong, or it would break a device that works.
					return Change{}, fmt.Errorf("device %s: %w", d.ID, err)
				}
				notReady = append(notReady, fmt.Sprintf("%s: not ready: %v", d.ID, err))
			}
			continue
		}
		if _, err := s.compose(d, groupA, cand); err != nil {
			return Change{}, fmt.Errorf("device %s: %w", d.ID, err)
		}
	}
	ch, err := s.update(ctx, sc, devs, admin, func(a *store.Assignment) { a.Config = append([]byte(nil), doc...) })
	if err != nil {
		return ch, err
	}
	// A device listed as not ready failed its publication too: say why
	// once.
	for _, n := range notReady {
		id, _, _ := strings.Cut(n, ":")
		ch.Failed = slices.DeleteFunc(ch.Failed, func(f string) bool { return strings.HasPrefix(f, id+":") })
		ch.Failed = append(ch.Failed, n)
	}
	return ch, nil
}

// assignmentsOf reads a device's group and device assignments (nil for
// none).
func (s *Service) assignmentsOf(ctx context.Context, d store.Device) (groupA, devA *store.Assignment, err error) {
	if a, err := s.st.GetAssignment(ctx, store.Scope{Kind: store.ScopeGroup, Name: d.Group}); err == nil {
		groupA = &a
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, nil, err
	}
	if a, err := s.st.GetAssignment(ctx, store.Scope{Kind: store.ScopeDevice, Name: string(d.ID)}); err == nil {
		devA = &a
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, nil, err
	}
	return groupA, devA, nil
}

// DeleteConfig removes a scope's configuration document (its firmware
// assignment stays) and republishes.
func (s *Service) DeleteConfig(ctx context.Context, sc store.Scope, admin string) (Change, error) {
	devs, err := s.devicesOf(ctx, sc)
	if err != nil {
		return Change{}, err
	}
	return s.update(ctx, sc, devs, admin, func(a *store.Assignment) { a.Config = nil })
}

// AssignFirmware assigns the image repository's target name to a scope:
// refused with ErrNotListed when the repository (verified now) does not
// list it. The director names it with the length, hashes and custom
// fields the image repository's targets give.
func (s *Service) AssignFirmware(ctx context.Context, sc store.Scope, name, admin string) (Change, error) {
	if s.image == nil {
		return Change{}, fmt.Errorf("%w: no image repository configured", ErrNotListed)
	}
	targets, err := s.image.Targets(ctx, true)
	if err != nil {
		return Change{}, err
	}
	f, ok := targets[name]
	if !ok || name == tufrepo.ConfigTargetName {
		return Change{}, fmt.Errorf("%w: %.255q", ErrNotListed, name)
	}
	ft := &store.FirmwareTarget{Name: f.Name, Length: f.Length, SHA256: f.SHA256, Compatible: f.Compatible, Version: f.Version,
		SecurityVersion: f.SecurityVersion}
	devs, err := s.devicesOf(ctx, sc)
	if err != nil {
		return Change{}, err
	}
	return s.update(ctx, sc, devs, admin, func(a *store.Assignment) { a.Firmware = ft })
}

// ClearFirmware removes a scope's firmware assignment.
func (s *Service) ClearFirmware(ctx context.Context, sc store.Scope, admin string) (Change, error) {
	devs, err := s.devicesOf(ctx, sc)
	if err != nil {
		return Change{}, err
	}
	return s.update(ctx, sc, devs, admin, func(a *store.Assignment) { a.Firmware = nil })
}

// Assignment returns a scope's assignment (store.ErrNotFound for none).
func (s *Service) Assignment(ctx context.Context, sc store.Scope) (store.Assignment, error) {
	return s.st.GetAssignment(ctx, sc)
}

// update changes a scope's assignment by compare-and-swap and republishes
// its devices. An assignment left empty is deleted.
func (s *Service) update(ctx context.Context, sc store.Scope, devs []store.Device, admin string, mod func(*store.Assignment)) (Change, error) {
	var ch Change
	for attempt := 0; ; attempt++ {
		cur, err := s.st.GetAssignment(ctx, sc)
		var prev uint64
		switch {
		case errors.Is(err, store.ErrNotFound):
			cur = store.Assignment{Scope: sc}
		case err != nil:
			return ch, err
		default:
			prev = cur.Revision
		}
		mod(&cur)
		cur.UpdatedAt, cur.UpdatedBy = s.o.now(), admin
		if cur.Config == nil && cur.Firmware == nil {
			if prev == 0 {
				return ch, fmt.Errorf("%s: %w", sc, store.ErrNotFound)
			}
			err = s.st.DeleteAssignment(ctx, sc)
			cur.Revision = 0
		} else {
			cur, err = s.st.PutAssignment(ctx, cur, prev)
		}
		if errors.Is(err, store.ErrState) && attempt < casAttempts {
			continue
		}
		if err != nil {
			return ch, err
		}
		ch.Assignment = cur
		break
	}
	s.log.Info("assignment changed", "scope", sc.String(), "revision", ch.Assignment.Revision, "admin", admin, "devices", len(devs))
	for _, d := range devs {
		r, err := s.Publish(ctx, d.ID)
		if err != nil {
			ch.Failed = append(ch.Failed, fmt.Sprintf("%s: %v", d.ID, err))
			s.log.Warn("republish", "device", string(d.ID), "err", err)
			continue
		}
		ch.Published = append(ch.Published, r)
	}
	return ch, nil
}

// devicesOf lists the enrolled devices a scope applies to.
func (s *Service) devicesOf(ctx context.Context, sc store.Scope) ([]store.Device, error) {
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	if sc.Kind == store.ScopeDevice {
		d, err := s.st.GetDevice(ctx, store.DeviceID(sc.Name))
		if err != nil {
			return nil, err
		}
		if d.State != store.StateEnrolled {
			return nil, fmt.Errorf("%w: device %s is %s", ErrDevice, d.ID, d.State)
		}
		return []store.Device{d}, nil
	}
	var out []store.Device
	p := store.PageRequest{Limit: store.MaxPageSize}
	for {
		page, err := s.st.ListDevices(ctx, p)
		if err != nil {
			return nil, err
		}
		for _, d := range page.Items {
			if d.Group == sc.Name && d.State == store.StateEnrolled {
				out = append(out, d)
			}
		}
		if len(out) > maxGroupDevices {
			return nil, fmt.Errorf("group %s has more than %d devices: change it in smaller groups", sc.Name, maxGroupDevices)
		}
		if page.Next == "" {
			return out, nil
		}
		p.After = page.Next
	}
}

// File returns one file of a device's director repository as served
// under /director/<device-id>/, and its ETag (the quoted SHA-256 of the
// content). ErrNotFound for anything else.
func (s *Service) File(ctx context.Context, id store.DeviceID, name string) ([]byte, string, error) {
	var data []byte
	if v, ok := strings.CutSuffix(name, ".root.json"); ok {
		data = s.dir.RootFiles()[v+".root.json"]
	} else {
		p, err := s.st.GetProvision(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, "", fmt.Errorf("%w: nothing published for %s yet", ErrNotFound, id)
		}
		if err != nil {
			return nil, "", err
		}
		st, err := decodeState(p.Data)
		if err != nil {
			return nil, "", err
		}
		if st.Retired {
			return nil, "", fmt.Errorf("%w: device retired", ErrNotFound)
		}
		data = pick(st, name)
	}
	if data == nil {
		return nil, "", fmt.Errorf("%w: %.200q", ErrNotFound, name)
	}
	sum := sha256.Sum256(data)
	return data, `"` + hex.EncodeToString(sum[:16]) + `"`, nil
}

// pick finds a file among the current and previous repository's.
func pick(st *state, name string) []byte {
	if name == "timestamp.json" {
		if st.Repo == nil {
			return nil
		}
		return st.Repo.Timestamp
	}
	for _, r := range []*repoFiles{st.Repo, st.Prev} {
		if r == nil {
			continue
		}
		switch name {
		case strconv.FormatInt(r.SnapshotVersion, 10) + ".snapshot.json":
			return r.Snapshot
		case strconv.FormatInt(r.TargetsVersion, 10) + ".targets.json":
			return r.Targets
		}
		if r.Config != nil {
			sum := sha256.Sum256(r.Config)
			if name == "targets/"+hex.EncodeToString(sum[:])+"."+tufrepo.ConfigTargetName {
				return r.Config
			}
		}
	}
	return nil
}

// Status describes what the director publishes for a device.
func (s *Service) Status(ctx context.Context, id store.DeviceID) (api.ProvisionStatus, error) {
	st, _, err := s.load(ctx, id)
	if err != nil {
		return api.ProvisionStatus{}, err
	}
	out := api.ProvisionStatus{DeviceID: string(id), ConfigVersion: st.ConfigVersion, ReportedConfigVersion: st.Reported}
	if r := st.Repo; r != nil {
		out.Config = string(r.Config)
		out.TimestampVersion, out.SnapshotVersion, out.TargetsVersion = r.TimestampVersion, r.SnapshotVersion, r.TargetsVersion
		out.TimestampExpires, out.TargetsExpires = r.TimestampExpires, r.TargetsExpires
	}
	if f := st.Firmware; f != nil {
		out.Firmware = &api.FirmwareTarget{Name: f.Name, Length: f.Length, SHA256: hex.EncodeToString(f.SHA256),
			Compatible: f.Compatible, Version: f.Version, SecurityVersion: f.SecurityVersion}
	}
	for _, a := range st.Accounts {
		as := api.AccountStatus{Name: a.Name, User: a.User, Domain: a.Domain, Credential: a.Credential, Generation: a.Generation,
			SealedVersion: a.SealedVersion, PreviousValid: a.PreviousValid, RotatedAt: a.RotatedAt}
		if t, ok := s.rotationDue(a); ok {
			as.NextRotation = t
		}
		out.Accounts = append(out.Accounts, as)
	}
	return out, nil
}

// Rotate gives the device's managed accounts new passwords now (each
// whose last rotation the phone confirmed).
func (s *Service) Rotate(ctx context.Context, id store.DeviceID) (Result, error) {
	return s.publish(ctx, id, publishOpts{rotate: true})
}

// Reported takes what a phone's check-in report says about its
// provisioning: the document version it runs. A rotation whose new
// password that version carries ends: the previous password is dropped at
// the registrar.
func (s *Service) Reported(ctx context.Context, id store.DeviceID, p *api.Provisioning) error {
	if p == nil {
		return nil
	}
	defer s.lock(id)()
	for attempt := 0; attempt < casAttempts; attempt++ {
		st, rev, err := s.load(ctx, id)
		if err != nil || rev == 0 {
			return err
		}
		changed := false
		if p.ConfigVersion != st.Reported {
			st.Reported, changed = p.ConfigVersion, true
		}
		for _, a := range st.Accounts {
			if s.reg == nil || !a.PreviousValid || p.ConfigVersion < a.SealedVersion || p.ConfigVersion > st.ConfigVersion {
				continue
			}
			if err := s.reg.DropPrevious(ctx, a.User, a.Domain); err != nil {
				return err
			}
			a.PreviousValid, changed = false, true
			s.count("rotation_confirmed")
			s.log.Info("password rotation confirmed by the phone", "device", string(id), "account", a.Name,
				"config_version", p.ConfigVersion)
		}
		if !changed {
			return nil
		}
		_, err = s.save(ctx, id, st, rev)
		if !errors.Is(err, store.ErrState) {
			return err
		}
	}
	return fmt.Errorf("report of %s: lost %d races to other replicas", id, casAttempts)
}

// Retired ends a device's provisioning: its accounts leave the registrar
// and nothing is published or refreshed any more.
func (s *Service) Retired(ctx context.Context, id store.DeviceID) error {
	defer s.lock(id)()
	for attempt := 0; attempt < casAttempts; attempt++ {
		st, rev, err := s.load(ctx, id)
		if err != nil || rev == 0 {
			return err
		}
		for _, a := range st.Accounts {
			if s.reg == nil {
				break
			}
			if err := s.reg.Remove(ctx, a.User, a.Domain); err != nil {
				return err
			}
		}
		st.Accounts, st.Retired = nil, true
		_, err = s.save(ctx, id, st, rev)
		if !errors.Is(err, store.ErrState) {
			return err
		}
	}
	return fmt.Errorf("retire %s: lost %d races to other replicas", id, casAttempts)
}
