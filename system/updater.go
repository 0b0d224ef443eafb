package system

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/hardphone/hardphone/agent/store"
	"github.com/hardphone/hardphone/board"
	"github.com/hardphone/hardphone/crypto/credstore"
	"github.com/hardphone/hardphone/crypto/timefloor"
	"github.com/hardphone/hardphone/hal/ubootenv"
	"github.com/hardphone/hardphone/update"
	"github.com/hardphone/hardphone/update/bundle"
)

// FloorCounterIndex is the TPM NV index of the anti-rollback counter. The
// credential store's own wipe counter is credstore.DefaultGenerationCounter
// (0x01800110).
const FloorCounterIndex = 0x01800111

// UpdaterParams is everything the updater is built from.
type UpdaterParams struct {
	// Board has the A/B slots and the boot environment.
	Board *board.Board
	// State is the open state file: the updater's records, and the floor
	// when there is no TPM.
	State *store.Store
	// Protector is the credential store's protector, nil for none. When it
	// is a TPM, the floor is its NV counter: the one floor rule.
	Protector *credstore.Protector
	// Keyring is the bundle-signing CA file (PEM).
	Keyring string
	// Purpose is "codesign" (default) or "smimesign".
	Purpose string
	// WorkDir holds a plain bundle's private copy during install ("" = the
	// state file's directory).
	WorkDir string
	Log     *slog.Logger // nil: discard
	// Now is the clock signer certificates are checked against (the time
	// floor); nil: time.Now.
	Now func() time.Time
}

// NewUpdater is the one function that builds an A/B updater. The floor is
// the TPM NV counter FloorCounterIndex whenever p.Protector is a TPM, and a
// value in the state file otherwise (Status reports which, the latter as
// weaker).
func NewUpdater(p UpdaterParams) (*update.Updater, error) {
	log := p.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := p.Board
	if b == nil || len(b.Slots) != 2 || b.Env == nil {
		return nil, fmt.Errorf("updater: %w: the board has no A/B slots", ErrNoUpdater)
	}
	if p.State == nil {
		return nil, errors.New("updater: no state file")
	}
	env, err := ubootenv.Open(BootEnvConfig(b.Env), ubootenv.WithLogger(log))
	if err != nil {
		return nil, fmt.Errorf("updater: boot environment: %w", err)
	}
	kr, err := bundle.LoadKeyring(p.Keyring)
	if err != nil {
		return nil, fmt.Errorf("updater: %w", err)
	}
	purpose, err := bundle.ParsePurpose(p.Purpose)
	if err != nil {
		return nil, fmt.Errorf("updater: %w", err)
	}
	opts := []update.Option{update.WithLogger(log), update.WithPurpose(purpose)}
	if p.Now != nil {
		opts = append(opts, update.WithClock(p.Now))
	}
	if p.Protector != nil {
		c, err := p.Protector.Counter(FloorCounterIndex)
		switch {
		case err == nil:
			opts = append(opts, update.WithFloor(c, update.FloorTPM))
		case errors.Is(err, credstore.ErrNoTPM):
			// A software protector: the floor lives in the state file.
		default:
			return nil, fmt.Errorf("updater: anti-rollback counter: %w", err)
		}
	}
	work := p.WorkDir
	if work == "" {
		work = filepath.Dir(p.State.Path())
	}
	cfg := update.Config{
		Compatible: b.Compatible, BootedSlot: b.BootedSlot, Attempts: b.Env.Attempts, WorkDir: work,
		Slots: []update.Slot{{Name: b.Slots[0].Name, Device: b.Slots[0].Device}, {Name: b.Slots[1].Name, Device: b.Slots[1].Device}},
	}
	u, err := update.New(cfg, p.State.DB(), env, kr, opts...)
	if err != nil {
		return nil, err
	}
	return u, nil
}

// BootEnvConfig is the boot environment's two copies for hal/ubootenv: the
// only place a board's environment becomes offsets to read and write.
func BootEnvConfig(e *board.Env) ubootenv.Config {
	second := e.RedundantDevice
	if second == "" {
		second = e.Device
	}
	return ubootenv.Config{Size: e.Size, LockFile: e.LockFile,
		Copies: []ubootenv.Copy{{Path: e.Device, Offset: e.Offset}, {Path: second, Offset: e.RedundantOffset}}}
}

// UpdaterSpec names an updater without a config: `hardphone update` with
// flags only, on a phone whose agent config is not at hand.
type UpdaterSpec struct {
	// Board is a board name, or Layout a test rig's layout file.
	Board, Layout string
	// StateDir holds state.db.
	StateDir string
	// Protector is the credential store's protector spec; "" takes the
	// board's TPM when it has one. A TPM here means the floor is its NV
	// counter, as it is for the agent.
	Protector string
	// Keyring and Purpose as in UpdaterParams.
	Keyring, Purpose string
	Log              *slog.Logger // nil: discard
}

// OpenUpdater opens what spec names (the board, the state file with its
// checks, the protector) and builds the updater with NewUpdater. closeFn
// releases what was opened.
func OpenUpdater(spec UpdaterSpec) (u *update.Updater, closeFn func() error, err error) {
	b, err := BoardFor(spec.Board, spec.Layout)
	if err != nil {
		return nil, nil, fmt.Errorf("updater: %w", err)
	}
	st, err := store.Open(spec.StateDir, store.WithLogger(logOrDiscard(spec.Log)))
	if err != nil {
		return nil, nil, err
	}
	closers := []func() error{st.Close}
	closeAll := func() error {
		var errs []error
		for i := len(closers) - 1; i >= 0; i-- {
			errs = append(errs, closers[i]())
		}
		return errors.Join(errs...)
	}
	prot := spec.Protector
	if prot == "" {
		prot = b.TPM
	}
	var pr *credstore.Protector
	if prot != "" {
		if pr, err = OpenProtector(prot); err != nil {
			return nil, nil, errors.Join(fmt.Errorf("updater: %w", err), closeAll())
		}
		closers = append(closers, pr.Close)
	}
	floor, err := timefloor.Open(st.DB(), BuildTime())
	if err != nil {
		return nil, nil, errors.Join(err, closeAll())
	}
	u, err = NewUpdater(UpdaterParams{Board: b, State: st, Protector: pr, Keyring: spec.Keyring, Purpose: spec.Purpose, Log: spec.Log, Now: floor.Now})
	if err != nil {
		return nil, nil, errors.Join(err, closeAll())
	}
	return u, closeAll, nil
}

func logOrDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// BoardFor is the board a name or a test rig's layout file describes.
func BoardFor(name, layout string) (*board.Board, error) {
	switch {
	case layout != "" && name != "":
		return nil, errors.New("a board name and a layout file exclude each other")
	case layout != "":
		return board.ReadLayout(layout)
	case name != "":
		return board.Lookup(name)
	}
	return nil, fmt.Errorf("%w: name a board or a layout file", ErrNoUpdater)
}
