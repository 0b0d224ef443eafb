package system

import "errors"

// ErrNoUpdater: the config asks for no updater, or names no board with A/B
// slots to update.
var ErrNoUpdater = errors.New("no updater configured")

// ErrNoCredentialStore: the config names no credential_store.
var ErrNoCredentialStore = errors.New("no credential store configured")
