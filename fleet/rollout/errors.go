package rollout

import "errors"

// ErrInvalid is returned for a rollout request that does not validate
// (rings, threshold, window, target); nothing was stored.
var ErrInvalid = errors.New("rollout: invalid")

// ErrNotFound is returned for a rollout or device that does not exist.
var ErrNotFound = errors.New("rollout: not found")

// ErrState is returned for an action the rollout's state does not allow
// (approving a running rollout, resuming one that is not halted), or a
// group that already has an active rollout.
var ErrState = errors.New("rollout: not allowed in its state")

// ErrSamePerson is returned when the creator of a rollout approves it:
// the second person must be another admin.
var ErrSamePerson = errors.New("rollout: a rollout needs a second, different admin")

// ErrSignature is returned for an approval signature that does not verify,
// is made with a key not registered to the admin, or is missing for a
// device.
var ErrSignature = errors.New("rollout: approval signature refused")

// ErrNeedsApproval is returned for a direct assignment change that must
// go through an approved rollout (a security policy change, or any change
// when the director needs admins' signatures).
var ErrNeedsApproval = errors.New("rollout: the change needs a second admin's approval (start a rollout)")
