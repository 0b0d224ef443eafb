package boltstore

import (
	"path/filepath"
	"testing"

	"github.com/hardphone/hardphone/fleet/store"
	"github.com/hardphone/hardphone/fleet/store/storetest"
)

func TestRolloutConformance(t *testing.T) {
	storetest.RunRollouts(t, storetest.Backend{
		Open: func(t *testing.T) store.Store { return open(t, filepath.Join(t.TempDir(), "data")) },
		Reopen: func(t *testing.T, s store.Store) store.Store {
			dir := filepath.Dir(s.(*Store).Path())
			if err := s.Close(); err != nil {
				t.Fatalf("Close() error %v", err)
			}
			return open(t, dir)
		},
	})
}
