package console

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/console/consoleapi"
)

// RolloutAction is what an operator does to a rollout from the console.
type RolloutAction string

// The actions of the rollout page's buttons.
const (
	RolloutHalt   RolloutAction = "halt"
	RolloutResume RolloutAction = "resume"
	RolloutAbort  RolloutAction = "abort"
)

// Errors a Rollouts implementation wraps so the console answers right.
var (
	// ErrRolloutNotFound: no such rollout (404).
	ErrRolloutNotFound = errors.New("console: no such rollout")
	// ErrRolloutState: the action does not fit the rollout's state (409).
	ErrRolloutState = errors.New("console: not allowed in the rollout's state")
	// ErrRolloutInvalid: the rollout asked for cannot be planned (a bad
	// ring, an unknown target, a document that does not parse, a group
	// without devices) (400).
	ErrRolloutInvalid = errors.New("console: rollout request not valid")
	// ErrRolloutSamePerson: the admin who created a rollout approving it
	// (409, as fleet/server answers).
	ErrRolloutSamePerson = errors.New("console: a rollout needs a second, different admin's approval")
)

// RolloutAuthorize checks that the acting admin's session holds a
// permission now (step-up included). A Rollouts implementation calls it
// with the permission the action needs once it knows which (starting a
// rollout that changes the security policy needs policy.write, approving
// one approval.security), before it changes anything, and returns its
// error as is.
type RolloutAuthorize func(adminauth.Permission) error

// Rollouts is the rollout engine as the console reads and steers it
// (cmd/hpfleet adapts fleet/rollout's Engine). The engine records every
// transition in the audit log itself.
type Rollouts interface {
	// List returns a page of rollouts, newest first (limit 1..100).
	List(ctx context.Context, after string, limit int) ([]api.Rollout, string, error)
	// Get returns one rollout with its rings' devices counted.
	Get(ctx context.Context, id string) (api.Rollout, error)
	// Control halts, resumes or aborts a rollout for the admin named by.
	Control(ctx context.Context, id string, action RolloutAction, by string, source netip.Addr, reason string) (api.Rollout, error)
	// Create plans a rollout pending a second admin's approval, after
	// authorize allowed the permission starting it takes.
	Create(ctx context.Context, req api.RolloutRequest, by string, source netip.Addr, authorize RolloutAuthorize) (api.Rollout, error)
	// Approve is a second admin's approval (never its creator's), after
	// authorize allowed the permission approving it takes; the rollout
	// starts.
	Approve(ctx context.Context, id string, by string, source netip.Addr, authorize RolloutAuthorize) (api.Rollout, error)
	// Refuse ends a pending rollout without starting it, after authorize
	// allowed the permission approving it would take.
	Refuse(ctx context.Context, id string, by string, source netip.Addr, reason string, authorize RolloutAuthorize) (api.Rollout, error)
}

// rolloutsShown bounds the list page.
const rolloutsShown = 100

type rolloutsView struct {
	// Off says why there are no rollouts on this server; "" when on.
	Off      string
	Rollouts []api.Rollout
	Next     string
}

type rolloutView struct {
	Rollout api.Rollout
	// Me is the admin looking (their own rollout offers no approval).
	Me string
}

const rolloutsOff = "this fleet server runs without the rollout engine (it needs the director and the audit log)"

func (c *Console) webRollouts(q *req) error {
	if c.rollouts == nil {
		c.render(q, http.StatusNotImplemented, "rollouts", rolloutsView{Off: rolloutsOff})
		return nil
	}
	after := q.r.URL.Query().Get("after")
	if len(after) > 128 {
		return refuse(consoleapi.CodeBadRequest, "invalid", "bad page cursor")
	}
	list, next, err := c.rollouts.List(q.ctx, after, rolloutsShown)
	if err != nil {
		return rolloutError("list rollouts", err)
	}
	c.render(q, http.StatusOK, "rollouts", rolloutsView{Rollouts: list, Next: next})
	return nil
}

func (c *Console) webRollout(q *req) error {
	if c.rollouts == nil {
		return refuse(consoleapi.CodeNotFound, "not_configured", rolloutsOff)
	}
	v, err := c.rollouts.Get(q.ctx, pathID(q, "id"))
	if err != nil {
		return rolloutError("rollout", err)
	}
	c.render(q, http.StatusOK, "rollout", rolloutView{Rollout: v, Me: q.info.Name})
	return nil
}

// webRolloutControl runs a halt, resume or abort button. The engine
// appends the audit entry of the transition.
func (c *Console) webRolloutControl(action RolloutAction) func(*req) error {
	return func(q *req) error {
		if c.rollouts == nil {
			return refuse(consoleapi.CodeNotFound, "not_configured", rolloutsOff)
		}
		id := pathID(q, "id")
		reason := strings.TrimSpace(q.r.PostFormValue("reason"))
		if len(reason) > 256 {
			return refuse(consoleapi.CodeBadRequest, "invalid", "reason longer than 256 bytes")
		}
		if reason == "" {
			reason = "from the console"
		}
		if _, err := c.rollouts.Control(q.ctx, id, action, q.info.Name, q.client.Addr, reason); err != nil {
			// fail records the refusal (access.denied, reason "state").
			return rolloutError("rollout "+string(action), err)
		}
		http.Redirect(q.w, q.r, "/console/rollouts/"+id, http.StatusSeeOther)
		return nil
	}
}

func rolloutError(what string, err error) error {
	var rf *refusal
	switch {
	case errors.As(err, &rf):
		// authorize's own refusal (forbidden, step-up).
		return rf
	case errors.Is(err, ErrRolloutInvalid):
		return &refusal{code: consoleapi.CodeBadRequest, reason: "invalid", msg: clipMessage(err.Error()), cause: err}
	case errors.Is(err, ErrRolloutSamePerson):
		return &refusal{code: consoleapi.CodeConflict, reason: "same_person", msg: "a rollout needs a second, different admin's approval", cause: err}
	case errors.Is(err, ErrRolloutNotFound):
		return refuse(consoleapi.CodeNotFound, "not_found", "no such rollout")
	case errors.Is(err, ErrRolloutState):
		return &refusal{code: consoleapi.CodeConflict, reason: "state", msg: "not allowed in the rollout's state", cause: err}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return unavailable(what, err)
	}
	return internal(what, err)
}
