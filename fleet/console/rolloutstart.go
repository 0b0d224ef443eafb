package console

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/console/consoleapi"
)

// Bounds of the new-rollout form. The whole form is bounded by maxBody
// (64 KiB): a larger document goes through hpctl fleet rollout create.
const (
	maxFormDocument = 60 << 10
	maxFormDevices  = 4 << 10
	maxFormShort    = 255
	maxFormRings    = 64
	maxMessage      = 400
)

// rolloutForm is the new-rollout form as typed, shown again with the
// refusal when the rollout cannot be planned.
type rolloutForm struct {
	// Group, or Device for a device-scope rollout (one phone's own
	// firmware or document).
	Kind, Group, Device, Firmware, Config string
	// Canary lists the canary ring's devices (spaces or commas); Rings
	// the cumulative percentages of the rings after it ("25 100").
	Canary, Rings                   string
	MaxFailure                      string
	Deadline, ReportTimeout, Window string
}

type rolloutNewView struct {
	Off  string
	Form rolloutForm
}

// defaultForm: a canary ring, then half the group, then all of it.
var defaultForm = rolloutForm{Kind: "config", Rings: "50 100", MaxFailure: "0", Deadline: "24h", ReportTimeout: "1h"}

func (c *Console) webRolloutNew(q *req) error {
	if c.rollouts == nil {
		c.render(q, http.StatusNotImplemented, "rollout_new", rolloutNewView{Off: rolloutsOff})
		return nil
	}
	c.render(q, http.StatusOK, "rollout_new", rolloutNewView{Form: defaultForm})
	return nil
}

// request turns the form into the fleet API's rollout request: a ring
// "canary" of the named devices when any, then one ring per percentage
// ("50%", "100%").
func (f rolloutForm) request() (api.RolloutRequest, error) {
	r := api.RolloutRequest{Kind: f.Kind, Group: strings.TrimSpace(f.Group), Device: strings.TrimSpace(f.Device), Window: strings.TrimSpace(f.Window),
		Deadline: strings.TrimSpace(f.Deadline), ReportTimeout: strings.TrimSpace(f.ReportTimeout)}
	switch f.Kind {
	case "firmware":
		r.Firmware = strings.TrimSpace(f.Firmware)
	case "config":
		// Browsers send textarea lines ending in CRLF (the HTML
		// standard's form submission); TOML takes either, the
		// document's hash should not depend on the browser.
		r.Config = strings.ReplaceAll(f.Config, "\r\n", "\n")
	default:
		return r, errors.New("kind: want firmware or config")
	}
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(c rune) bool { return c == ',' || c == ' ' || c == '\n' || c == '\r' || c == '\t' })
	}
	if devs := split(f.Canary); len(devs) > 0 {
		r.Rings = append(r.Rings, api.RolloutRing{Name: "canary", Devices: devs})
	}
	for _, p := range split(f.Rings) {
		n, err := strconv.Atoi(strings.TrimSuffix(p, "%"))
		if err != nil || n < 1 || n > 100 {
			return r, fmt.Errorf("ring %.16q: want a percentage 1..100", p)
		}
		r.Rings = append(r.Rings, api.RolloutRing{Name: strconv.Itoa(n) + "%", Percent: n})
	}
	mf, err := strconv.Atoi(strings.TrimSpace(f.MaxFailure))
	if err != nil || mf < 0 || mf > 100 {
		return r, fmt.Errorf("max failures %.16q: want a percentage 0..100", f.MaxFailure)
	}
	r.MaxFailurePercent = mf
	if err := r.Validate(); err != nil {
		return r, err
	}
	return r, nil
}

// readRolloutForm reads the form's fields, each bounded.
func readRolloutForm(q *req) (rolloutForm, error) {
	var f rolloutForm
	for _, fld := range []struct {
		name string
		max  int
		dst  *string
	}{
		{"kind", 16, &f.Kind}, {"group", 64, &f.Group}, {"device", 64, &f.Device}, {"firmware", maxFormShort, &f.Firmware},
		{"config", maxFormDocument, &f.Config}, {"canary", maxFormDevices, &f.Canary}, {"rings", maxFormRings, &f.Rings},
		{"max_failure", 8, &f.MaxFailure}, {"deadline", 32, &f.Deadline}, {"report_timeout", 32, &f.ReportTimeout},
		{"window", 128, &f.Window},
	} {
		v, err := formValue(q, fld.name, fld.max)
		if err != nil {
			return f, err
		}
		*fld.dst = v
	}
	return f, nil
}

// authorizer checks one more permission for q's session: the rollout
// engine's adapter calls it once it knows which the action needs.
func (c *Console) authorizer(q *req) RolloutAuthorize {
	return func(p adminauth.Permission) error {
		if _, err := c.auth.Authorize(q.ctx, q.token, q.client, p); err != nil {
			return authError(err)
		}
		return nil
	}
}

// webRolloutCreate starts a rollout from the form: it waits for a second
// admin's approval. The engine appends rollout.create to the audit log;
// a refusal is recorded by fail (access.denied).
func (c *Console) webRolloutCreate(q *req) error {
	if c.rollouts == nil {
		return refuse(consoleapi.CodeNotFound, "not_configured", rolloutsOff)
	}
	f, err := readRolloutForm(q)
	if err != nil {
		return err
	}
	again := func(err error) error {
		// Show the form again with what was typed: the refusal is
		// still audited.
		var rf *refusal
		if !errors.As(err, &rf) {
			rf = &refusal{code: consoleapi.CodeBadRequest, reason: "invalid", msg: clipMessage(err.Error()), cause: err}
		}
		c.recordRefusal(q, rf)
		c.render(q, rf.code.Status(), "rollout_new", rolloutNewView{Form: f}, rf.msg)
		return nil
	}
	r, err := f.request()
	if err != nil {
		return again(err)
	}
	v, err := c.rollouts.Create(q.ctx, r, q.info.Name, q.client.Addr, c.authorizer(q))
	if err != nil {
		rerr := rolloutError("rollout create", err)
		var rf *refusal
		if errors.As(rerr, &rf) && (rf.code == consoleapi.CodeBadRequest || rf.code == consoleapi.CodeConflict) {
			return again(rf)
		}
		return rerr
	}
	http.Redirect(q.w, q.r, "/console/rollouts/"+v.ID, http.StatusSeeOther)
	return nil
}

// webRolloutDecide approves or refuses a pending rollout. The engine
// appends approval.grant (and rollout.start) or approval.refuse.
func (c *Console) webRolloutDecide(approve bool) func(*req) error {
	return func(q *req) error {
		if c.rollouts == nil {
			return refuse(consoleapi.CodeNotFound, "not_configured", rolloutsOff)
		}
		id := pathID(q, "id")
		var err error
		if approve {
			_, err = c.rollouts.Approve(q.ctx, id, q.info.Name, q.client.Addr, c.authorizer(q))
		} else {
			reason, ferr := formValue(q, "reason", 256)
			if ferr != nil {
				return ferr
			}
			if reason = strings.TrimSpace(reason); reason == "" {
				reason = "refused from the console"
			}
			_, err = c.rollouts.Refuse(q.ctx, id, q.info.Name, q.client.Addr, reason, c.authorizer(q))
		}
		if err != nil {
			what := "rollout refuse"
			if approve {
				what = "rollout approve"
			}
			return rolloutError(what, err)
		}
		http.Redirect(q.w, q.r, "/console/rollouts/"+id, http.StatusSeeOther)
		return nil
	}
}

// clipMessage bounds an error shown to the admin.
func clipMessage(s string) string {
	s = strings.TrimPrefix(s, "console: rollout request not valid: ")
	if len(s) > maxMessage {
		return s[:maxMessage] + "…"
	}
	return s
}
