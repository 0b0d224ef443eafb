package director

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hardphone/hardphone/fleet/configdoc"
	"github.com/hardphone/hardphone/fleet/store"
	"github.com/hardphone/hardphone/fleet/tufrepo"
)

// A staged rollout (fleet/rollout) changes a group's firmware or
// configuration document device by device before it changes the group's
// assignment: the director asks the Overrider, at every publication, what
// the device's group should give it now. When the director root's targets
// threshold needs admins' signatures, the rollout also hands over the
// targets its approvers signed for the device; the director publishes them
// only for exactly the inputs they were staged for.

// ErrNeedsSignatures is returned when a device's targets would change but
// the director root wants admins' signatures the director does not hold
// for exactly that change.
var ErrNeedsSignatures = errors.New("director: the change needs admins' signatures")

// Overrider tells the director about a device's part in a rollout.
type Overrider interface {
	// Override returns the device's override, nil for none.
	Override(ctx context.Context, d store.Device) (*Override, error)
}

// Override is what a rollout says about one device.
type Override struct {
	// Rollout names the rollout (for logs).
	Rollout string
	// Apply is true once the device's ring has started (and until the
	// rollout is aborted): it gets Firmware and/or GroupConfig instead of
	// its group's.
	Apply bool
	// SetFirmware replaces the group's firmware with Firmware;
	// SetConfig the group's document with GroupConfig.
	SetFirmware bool
	Firmware    *store.FirmwareTarget
	SetConfig   bool
	GroupConfig []byte
	// DeviceScope: the rollout changes the device's own assignment (a
	// device-scope rollout: one phone's firmware or document), not its
	// group's; Firmware and GroupConfig then take the place of the
	// device's own firmware and document.
	DeviceScope bool
	// Signed are targets admins signed for the device (forward and
	// revert), used when the online keys cannot sign alone.
	Signed []Signed
}

// Signed is a device's targets staged for one change, with the
// signatures approvers added.
type Signed struct {
	// Inputs is the hash of what the targets say (document and
	// firmware), as the director computes it.
	Inputs string `json:"inputs"`
	// PrevTargets is the targets version the device must have for these
	// to follow (they are PrevTargets+1).
	PrevTargets   int64  `json:"prev_targets"`
	ConfigVersion uint64 `json:"config_version"`
	Targets       []byte `json:"targets"`
	Config        []byte `json:"config,omitempty"`
}

// apply returns the group and device assignments the device gets under
// ov: the rollout's firmware or document in place of the group's, or of
// the device's own for a device-scope rollout.
func (ov *Override) apply(d store.Device, groupA, devA *store.Assignment) (*store.Assignment, *store.Assignment) {
	if ov == nil || !ov.Apply || (!ov.SetFirmware && !ov.SetConfig) {
		return groupA, devA
	}
	sc, cur := store.Scope{Kind: store.ScopeGroup, Name: d.Group}, groupA
	if ov.DeviceScope {
		sc, cur = store.Scope{Kind: store.ScopeDevice, Name: string(d.ID)}, devA
	}
	a := store.Assignment{Scope: sc}
	if cur != nil {
		a = *cur
	}
	if ov.SetFirmware {
		a.Firmware = ov.Firmware
	}
	if ov.SetConfig {
		a.Config = ov.GroupConfig
	}
	if ov.DeviceScope {
		return groupA, &a
	}
	return &a, devA
}

func (s *Service) override(ctx context.Context, d store.Device) (*Override, error) {
	if s.ovr == nil {
		return nil, nil
	}
	ov, err := s.ovr.Override(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("rollout override of %s: %w", d.ID, err)
	}
	return ov, nil
}

// render makes the document the device's targets name (with its sealed
// values), its firmware, and the hash of both (the inputs).
func (s *Service) render(id store.DeviceID, in *inputs, manage []configdoc.Account, accts []*account) ([]byte, *firmware, string, error) {
	var docBytes []byte
	if in.doc != nil {
		vals := map[int]string{}
		for _, m := range manage {
			for _, a := range accts {
				if a.User == m.User && a.Domain == m.Domain {
					v := a.Sealed
					if a.Pending != nil {
						v = a.Pending.Sealed
					}
					vals[m.Index] = v
				}
			}
		}
		if err := in.doc.SetSealed(vals); err != nil {
			return nil, nil, "", err
		}
		var err error
		if docBytes, err = in.doc.Encode(); err != nil {
			return nil, nil, "", fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	fw := toFirmware(in.firmware)
	return docBytes, fw, inputsHash(docBytes, fw), nil
}

func inputsHash(doc []byte, fw *firmware) string {
	h := sha256.New()
	h.Write(doc)
	fj, _ := json.Marshal(fw) // a struct of plain fields always marshals
	h.Write(fj)
	return hex.EncodeToString(h.Sum(nil))
}

// publishSigned publishes the admins' signed targets staged for exactly
// these inputs after the device's current targets.
func (s *Service) publishSigned(st *state, id store.DeviceID, ov *Override, hash string) (*tufrepo.DeviceRepo, uint64, error) {
	var cur int64
	if st.Repo != nil {
		cur = st.Repo.TargetsVersion
	}
	if ov != nil {
		for _, c := range ov.Signed {
			if c.Inputs != hash || c.PrevTargets != cur {
				continue
			}
			repo, err := s.dir.PublishStaged(st.Repo.deviceRepo(string(id)), &tufrepo.StagedDevice{DeviceID: string(id), Targets: c.Targets, Config: c.Config})
			if err != nil {
				return nil, 0, err
			}
			s.count("published_signed")
			return repo, c.ConfigVersion, nil
		}
	}
	return nil, 0, fmt.Errorf("%w: no signed targets after v%d for these inputs (%d admin signature(s) needed)", ErrNeedsSignatures, cur, s.dir.AdminSignaturesNeeded())
}

// Staged is a device's change staged for admins' signatures: Forward
// names what the rollout gives the device, Revert what it has now (for an
// abort after Forward was published).
type Staged struct {
	DeviceID string
	Forward  Signed
	Revert   Signed
	// Unchanged is true when the rollout changes nothing for the device
	// (Forward and Revert are empty then).
	Unchanged bool
}

// Stage computes, without changing anything, the targets a device would
// get under ov (Forward, version current+1) and the targets that would
// put it back to what it has now (Revert, version current+2), each signed
// by the online keys, for approvers to sign. It refuses a change that
// would need new passwords (they are made when published, which the
// admins' signatures would not cover), and a device never published.
func (s *Service) Stage(ctx context.Context, id store.DeviceID, ov *Override) (*Staged, error) {
	d, err := s.st.GetDevice(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", id, err)
	}
	if d.State != store.StateEnrolled {
		return nil, fmt.Errorf("stage %s: %w: device is %s", id, ErrDevice, d.State)
	}
	st, _, err := s.load(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", id, err)
	}
	if st.Repo == nil {
		// Never published (the online keys could not sign its first
		// targets alone): it goes from nothing, and back to nothing.
		st.Repo = &repoFiles{}
		st.Inputs = inputsHash(nil, nil)
	}
	groupA, devA, err := s.assignmentsOf(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", id, err)
	}
	fwd := *ov
	fwd.Apply = true
	g, dv := fwd.apply(d, groupA, devA)
	in, err := s.compose(d, g, dv)
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", id, err)
	}
	var manage []configdoc.Account
	for _, a := range in.accounts {
		if s.managed(a) {
			manage = append(manage, a)
		}
	}
	// Staging makes no password: every managed account must have its
	// current one, none pending.
	for _, m := range manage {
		ok := false
		for _, a := range st.Accounts {
			if a.User == m.User && a.Domain == m.Domain {
				ok = a.Sealed != "" && a.Credential == m.Credential && a.Pending == nil
			}
		}
		if !ok {
			return nil, fmt.Errorf("stage %s: %w: account %s needs a new password or has one pending (publish it before the rollout)", id, ErrDevice, m.Name)
		}
	}
	doc, fw, hash, err := s.render(id, in, manage, st.Accounts)
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", id, err)
	}
	out := &Staged{DeviceID: string(id)}
	if hash == st.Inputs {
		out.Unchanged = true
		return out, nil
	}
	cur := st.Repo.TargetsVersion
	version := st.ConfigVersion
	if doc != nil && !bytes.Equal(doc, st.Repo.Config) {
		version++
	}
	stage := func(prev int64, f *firmware, doc []byte, cv uint64, hash string) (Signed, error) {
		a := tufrepo.Assignment{}
		if f != nil {
			tf := tufrepo.Firmware{Name: f.Name, Length: f.Length, Compatible: f.Compatible, Version: f.Version, SecurityVersion: f.SecurityVersion}
			copy(tf.SHA256[:], f.SHA256)
			a.Firmware = &tf
		}
		if doc != nil {
			a.Config = &tufrepo.ConfigDoc{Version: cv, Data: doc}
		}
		sd, err := s.dir.StageDevice(&tufrepo.DeviceRepo{DeviceID: string(id), TargetsVersion: prev}, string(id), a)
		if err != nil {
			return Signed{}, err
		}
		return Signed{Inputs: hash, PrevTargets: prev, ConfigVersion: cv, Targets: sd.Targets, Config: sd.Config}, nil
	}
	if out.Forward, err = stage(cur, fw, doc, version, hash); err != nil {
		return nil, fmt.Errorf("stage %s: %w", id, err)
	}
	// Back to what is published now; a document that changed gets the
	// next version again (a phone never goes back a version).
	back := version
	if !bytes.Equal(doc, st.Repo.Config) && st.Repo.Config != nil {
		back++
	}
	if out.Revert, err = stage(cur+1, st.Firmware, st.Repo.Config, back, st.Inputs); err != nil {
		return nil, fmt.Errorf("stage %s: %w", id, err)
	}
	return out, nil
}

// Targets returns the device's published targets version and its
// configuration document's version (0, 0 before the first publication).
func (s *Service) Targets(ctx context.Context, id store.DeviceID) (targets int64, config uint64, err error) {
	st, _, err := s.load(ctx, id)
	if err != nil {
		return 0, 0, err
	}
	if st.Repo == nil {
		return 0, 0, nil
	}
	return st.Repo.TargetsVersion, st.ConfigVersion, nil
}

// AdminSignaturesNeeded is how many admins' signatures each device's
// targets needs beyond the online keys (0: the director publishes alone).
func (s *Service) AdminSignaturesNeeded() int { return s.dir.AdminSignaturesNeeded() }

// Director is the signing director (for approvers' keys and signatures).
func (s *Service) Director() *tufrepo.Director { return s.dir }

// Firmware returns the image repository's target as the director would
// name it (verified now): ErrNotListed when the repository does not list
// it.
func (s *Service) Firmware(ctx context.Context, name string) (store.FirmwareTarget, error) {
	if s.image == nil {
		return store.FirmwareTarget{}, fmt.Errorf("%w: no image repository configured", ErrNotListed)
	}
	targets, err := s.image.Targets(ctx, true)
	if err != nil {
		return store.FirmwareTarget{}, err
	}
	f, ok := targets[name]
	if !ok || name == tufrepo.ConfigTargetName {
		return store.FirmwareTarget{}, fmt.Errorf("%w: %.255q", ErrNotListed, name)
	}
	return store.FirmwareTarget{Name: f.Name, Length: f.Length, SHA256: f.SHA256, Compatible: f.Compatible, Version: f.Version,
		SecurityVersion: f.SecurityVersion}, nil
}

// SetOverrides installs the rollout engine after both exist (each needs
// the other). Call it before the director publishes anything.
func (s *Service) SetOverrides(o Overrider) { s.ovr = o }
