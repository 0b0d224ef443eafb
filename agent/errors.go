package agent

import "errors"

// ErrConfigChanged is returned by Run when the fleet's configuration
// changed under it (a document applied, or one reverted): the caller
// builds the phone again from the image's config with the current fleet
// document merged over it, in the same process.
var ErrConfigChanged = errors.New("agent: the fleet configuration changed; start again with it")
