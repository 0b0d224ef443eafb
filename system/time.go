package system

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/agent/store"
	"github.com/hardphone/hardphone/crypto/timefloor"
)

// buildTime is stamped by the Makefile (-X .../system.buildTime=RFC3339):
// the time this firmware was built, the lowest floor it ever believes.
var buildTime string

// releaseFloor is the floor of a build that was not stamped: no hardphone
// built from this source can be older than this.
var releaseFloor = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// BuildTime is the firmware's build time, or releaseFloor when unstamped.
func BuildTime() time.Time {
	if t, err := time.Parse(time.RFC3339, buildTime); err == nil && t.After(releaseFloor) {
		return t.UTC()
	}
	return releaseFloor
}

// TimeFloor opens the phone's time floor (once): in the state file when the
// config has a state directory the phone has opened, else the build time
// alone. Every certificate and signature check of the parts system builds
// uses its Now.
func (p *Phone) TimeFloor() (*timefloor.Floor, error) {
	if p.floor != nil {
		return p.floor, nil
	}
	var db *bolt.DB
	if p.cfg.StateDir != "" {
		st, err := p.State()
		if err != nil {
			return nil, err
		}
		db = st.DB()
	}
	f, err := timefloor.Open(db, BuildTime())
	if err != nil {
		return nil, err
	}
	p.floor = f
	return f, nil
}

// ClockCorrection is what SetClockFromFloor did.
type ClockCorrection struct {
	Was, Now time.Time
	// Source is what raised the floor last ("build", "registrar
	// certificate", ...).
	Source string
	Set    bool
}

// SetClockFromFloor sets the system clock forward to the time floor kept in
// stateDir's state file (or the build time) when the clock is behind it:
// PID 1 does it at boot, before anything checks a certificate. It never
// sets the clock back.
func SetClockFromFloor(stateDir string) (ClockCorrection, error) {
	floor, src := BuildTime(), "build"
	path := filepath.Join(stateDir, store.FileName)
	if db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second}); err == nil {
		t, s, rerr := timefloor.Read(db)
		if cerr := db.Close(); cerr != nil && rerr == nil {
			rerr = cerr
		}
		switch {
		case rerr == nil && t.After(floor):
			floor, src = t, s
		case rerr != nil && !errors.Is(rerr, timefloor.ErrNoState):
			return ClockCorrection{}, fmt.Errorf("time floor: %w", rerr)
		}
	}
	c := ClockCorrection{Was: time.Now().UTC(), Now: floor, Source: src}
	if !c.Was.Before(floor) {
		c.Now = c.Was
		return c, nil
	}
	if err := setClock(floor); err != nil {
		return c, fmt.Errorf("set clock to the time floor %s: %w", floor.Format(time.RFC3339), err)
	}
	c.Set = true
	return c, nil
}

// BuildTimeFloor is a clock that is never behind the build time, for
// commands that check a certificate without the state file (the agent may
// hold it).
func BuildTimeFloor() func() time.Time {
	b := BuildTime()
	return func() time.Time {
		if now := time.Now(); now.After(b) {
			return now
		}
		return b
	}
}
