package update

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/hardphone/hardphone/hal/blockdev"
	"github.com/hardphone/hardphone/update/bootchooser"
	"github.com/hardphone/hardphone/update/bundle"
)

// Install phases reported through Progress.
const (
	PhaseVerify = "verify" // signature; for plain bundles the private copy and digest
	PhaseCheck  = "check"  // every verity block against the tree
	PhaseWrite  = "write"  // streaming the image into the slot
	PhaseSwitch = "switch" // boot order
	PhaseDone   = "done"
)

// Progress is one progress event: bytes done of total in a phase.
type Progress struct {
	Phase string `json:"phase"`
	Done  int64  `json:"done"`
	Total int64  `json:"total"`
}

// InstallOptions are per-install choices.
type InstallOptions struct {
	// Force installs an image that rolled back before, and installs while
	// the booted slot is still pending (not marked good). It never
	// overrides the signature, compatible or anti-rollback checks.
	Force bool
	// Progress, if not nil, is called with one event at a time (not
	// necessarily from the goroutine that called Install).
	Progress func(Progress)
}

// InstallResult describes a completed install.
type InstallResult struct {
	Slot            string `json:"slot"`
	Version         string `json:"version"`
	SecurityVersion uint64 `json:"security_version"`
	SHA256          string `json:"sha256"`
	Bytes           int64  `json:"bytes"`
}

// Install installs the bundle at path into the slot that is not booted.
//
// Verify: signature and manifest, compatible, the floor, the image's fit,
// the known-bad list, a readable boot environment, and for verity bundles
// every payload block against the tree; a refusal here changed nothing.
// Commit: record the install, mark the target unbootable, stream the image
// (each block checked again as read, the image's sha256 at its end), Sync
// and Close the slot, record it pending, and only then make it primary with
// Attempts tries.
func (u *Updater) Install(ctx context.Context, path string, opts InstallOptions) (*InstallResult, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	progress := opts.Progress
	if progress == nil {
		progress = func(Progress) {}
	}
	booted, err := u.cfg.bootedSlot()
	if err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	if _, err := u.reconcileAndStore(booted); err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	target := u.cfg.other(booted.Name)
	log := u.log.With("slot", target.Name, "bundle", path)

	// ---- verify: nothing below writes until the commit section ----
	b, err := bundle.OpenFile(path, u.keyring, bundle.WithPurpose(u.purpose), bundle.WithClock(u.now),
		bundle.WithWorkDir(u.cfg.WorkDir), bundle.WithLogger(u.baseLog),
		bundle.WithProgress(func(done, total int64) { progress(Progress{PhaseVerify, done, total}) }))
	if err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	defer b.Close()
	m := b.Manifest
	im, err := u.checkManifest(m)
	if err != nil {
		return nil, fmt.Errorf("install %s: %w", path, err)
	}
	capacity, err := blockdev.Size(target.Device)
	if err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	if im.Size > capacity {
		return nil, fmt.Errorf("install %s: image %s is %d bytes, slot %s holds %d: %w", path, im.Filename, im.Size, target.Name, capacity, ErrTooLarge)
	}
	sha := hex.EncodeToString(im.SHA256[:])
	r, err := u.load()
	if err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	if kb, bad := r.bad[sha]; bad && !opts.Force {
		return nil, fmt.Errorf("install %s: image %s (version %q) rolled back in slot %s at %s; use force to install it again: %w",
			path, sha[:16], kb.Version, kb.Slot, kb.At.Format(time.RFC3339), ErrKnownBad)
	}
	if rec := r.slots[booted.Name]; rec.State == StatePending && !opts.Force {
		return nil, fmt.Errorf("install: booted slot %s is pending; mark it good first, or force to overwrite the only other slot: %w",
			booted.Name, errNotGood)
	}
	env, _, err := u.readBootState()
	if err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	if err := b.CheckPayload(ctx, counter(PhaseCheck, b.PayloadSize, progress)); err != nil {
		return nil, fmt.Errorf("install %s: %w", path, err)
	}
	bootID, err := u.cfg.bootID()
	if err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}

	// ---- commit ----
	start := u.now().UTC()
	r.last = &InstallRecord{Target: target.Name, Bundle: path, Version: m.Version, SecurityVersion: m.SecurityVersion,
		SHA256: sha, BootID: bootID, StartedAt: start, Outcome: OutcomeInstalling}
	r.slots[target.Name] = SlotRecord{State: StateInstalling}
	if err := u.store(r); err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	log.Info("install started", "version", m.Version, "security_version", m.SecurityVersion, "bytes", im.Size)
	fail := func(err error) (*InstallResult, error) {
		r.last.Outcome, r.last.Error = OutcomeFailed, err.Error()
		now := u.now().UTC()
		r.last.FinishedAt = &now
		r.slots[target.Name] = SlotRecord{State: StateBad}
		if serr := u.store(r); serr != nil {
			log.Error("record failed install", "error", serr)
		}
		log.Error("install failed; the booted slot stays primary", "error", err)
		return nil, fmt.Errorf("install %s: %w", path, err)
	}
	// The slot about to be overwritten must not be bootable meanwhile: a
	// cut, then a failing booted slot, would otherwise fall back into half
	// an image.
	if left, ok := env.Left[target.Name]; !ok || left != 0 {
		if err := u.env.Set(map[string]string{bootchooser.LeftVar(target.Name): "0"}); err != nil {
			return fail(fmt.Errorf("mark slot %s unbootable: %w", target.Name, err))
		}
	}
	n, err := u.writeSlot(ctx, b, im, target, progress)
	if err != nil {
		return fail(err)
	}
	installed := u.now().UTC()
	r.slots[target.Name] = SlotRecord{State: StatePending, Version: m.Version, SecurityVersion: m.SecurityVersion,
		SHA256: sha, Size: im.Size, Compatible: m.Compatible, InstalledAt: &installed}
	r.last.Outcome = OutcomeWritten
	if err := u.store(r); err != nil {
		return fail(err)
	}
	log.Info("slot written and synced", "bytes", n)

	progress(Progress{PhaseSwitch, 0, 1})
	env, _, err = u.readBootState()
	if err != nil {
		return fail(err)
	}
	if err := u.env.Set(map[string]string{
		bootchooser.OrderVar:             u.primaryOrder(env, target.Name),
		bootchooser.LeftVar(target.Name): strconv.Itoa(u.cfg.Attempts),
	}); err != nil {
		return fail(fmt.Errorf("switch boot order: %w", err))
	}
	r.last.Outcome = OutcomeSwitched
	r.last.FinishedAt = &installed
	if err := u.store(r); err != nil {
		// The switch is done and the slot complete: the next boot tries
		// it, and reconcile works from the environment.
		log.Warn("record boot order switch", "error", err)
	}
	log.Info("boot order switched; reboot to try the new slot", "attempts", u.cfg.Attempts)
	progress(Progress{PhaseDone, im.Size, im.Size})
	return &InstallResult{Slot: target.Name, Version: m.Version, SecurityVersion: m.SecurityVersion, SHA256: sha, Bytes: n}, nil
}

// checkManifest applies the board's rules to an authentic manifest and
// returns the image for the slots.
func (u *Updater) checkManifest(m *bundle.Manifest) (bundle.Image, error) {
	if m.Compatible != u.cfg.Compatible {
		return bundle.Image{}, fmt.Errorf("compatible %q, this board is %q: %w", m.Compatible, u.cfg.Compatible, ErrIncompatible)
	}
	floor, err := u.floor.Read()
	if err != nil {
		return bundle.Image{}, fmt.Errorf("read anti-rollback floor (%s): %w", u.floorKind, err)
	}
	if m.SecurityVersion < floor {
		return bundle.Image{}, fmt.Errorf("security version %d, floor (%s) is %d: %w", m.SecurityVersion, u.floorKind, floor, ErrRollback)
	}
	im, ok := m.Image(u.cfg.SlotClass)
	if !ok {
		return bundle.Image{}, fmt.Errorf("no image for slot class %q: %w", u.cfg.SlotClass, ErrIncompatible)
	}
	for _, other := range m.Images {
		if other.SlotClass != u.cfg.SlotClass {
			return bundle.Image{}, fmt.Errorf("image for slot class %q, this board has only %q: %w", other.SlotClass, u.cfg.SlotClass, ErrIncompatible)
		}
	}
	return im, nil
}

// writeSlot streams the image into the slot, then syncs and closes it.
func (u *Updater) writeSlot(ctx context.Context, b *bundle.Bundle, im bundle.Image, target Slot, progress func(Progress)) (int64, error) {
	src, err := b.OpenImage(im)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	w, err := blockdev.OpenWriter(target.Device)
	if err != nil {
		return 0, err
	}
	// ImageReader.WriteTo reads in one goroutine and hashes and writes in
	// this one, so the write overlaps the verity checks.
	n, err := io.Copy(ctxWriter{ctx, progressWriter{w, counter(PhaseWrite, im.Size, progress)}}, src)
	if err != nil {
		w.Abort()
		return n, fmt.Errorf("write slot %s: %w", target.Name, err)
	}
	if err := w.Commit(); err != nil {
		return n, err
	}
	return n, nil
}

func counter(phase string, total int64, progress func(Progress)) func(int64) {
	var done int64
	return func(n int64) {
		done += n
		progress(Progress{phase, done, total})
	}
}

// progressWriter counts what goes to the slot.
type progressWriter struct {
	w        io.Writer
	progress func(int64)
}

func (p progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.progress(int64(n))
	return n, err
}

// ctxWriter stops a copy once ctx is done.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(b)
}
