package store

import "errors"

// ErrCorrupt is returned when state.db is damaged: truncated, with invalid
// meta pages, or with a page structure bbolt's consistency check refuses.
// The file is left untouched.
var ErrCorrupt = errors.New("state file corrupt")

// ErrLocked is returned when another process (a running agent, say) holds
// state.db open.
var ErrLocked = errors.New("state file in use by another process")

// ErrSchema is returned for a state file whose schema this binary does not
// know (written by a newer hardphone, or not hardphone's at all).
var ErrSchema = errors.New("state file schema not supported")

var errInsecure = errors.New("state file permissions too open")
