package console

import (
	"errors"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/console/approval"
	"github.com/hardphone/hardphone/fleet/console/consoleapi"
	"github.com/hardphone/hardphone/fleet/store"
)

// Page sizes.
const (
	devicesPerPage  = 50
	certsShown      = 20
	reportsShown    = 20
	eventsPerDevice = 50
	// eventsDevices bounds the devices the fleet-wide events page reads.
	eventsDevices = 50
	eventsShown   = 200
	auditPerPage  = 100
	changesShown  = 200
)

func storeError(what string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return refuse(consoleapi.CodeNotFound, "not_found", "%s: not found", what)
	case errors.Is(err, store.ErrInvalid):
		return &refusal{code: consoleapi.CodeBadRequest, reason: "invalid", msg: what + ": " + err.Error(), cause: err}
	}
	return unavailable(what, err)
}

// --- inventory ---

type inventoryView struct {
	Devices []store.Device
	Next    string
}

func (c *Console) devices(q *req) (store.Page[store.Device], error) {
	after := q.r.URL.Query().Get("after")
	if _, err := store.ParseDeviceCursor(after); err != nil {
		return store.Page[store.Device]{}, refuse(consoleapi.CodeBadRequest, "invalid", "page cursor: want a device ID")
	}
	p, err := c.inv.ListDevices(q.ctx, store.PageRequest{After: after, Limit: devicesPerPage})
	if err != nil {
		return p, storeError("inventory", err)
	}
	return p, nil
}

func (c *Console) webInventory(q *req) error {
	p, err := c.devices(q)
	if err != nil {
		return err
	}
	c.render(q, http.StatusOK, "inventory", inventoryView{Devices: p.Items, Next: p.Next})
	return nil
}

func deviceID(q *req) (store.DeviceID, error) {
	id := store.DeviceID(pathID(q, "id"))
	if err := id.Validate(); err != nil {
		return "", refuse(consoleapi.CodeNotFound, "not_found", "no such device")
	}
	return id, nil
}

type deviceView struct {
	Device   store.Device
	Certs    []store.Cert
	Reports  []store.Report
	Events   []Event
	Findings []api.Finding
}

func (c *Console) webDevice(q *req) error {
	id, err := deviceID(q)
	if err != nil {
		return err
	}
	d, err := c.inv.GetDevice(q.ctx, id)
	if err != nil {
		return storeError("device", err)
	}
	v := deviceView{Device: d}
	if v.Certs, err = c.inv.ListDeviceCerts(q.ctx, id, certsShown); err != nil {
		return storeError("certificates", err)
	}
	if v.Reports, err = c.inv.ReportHistory(q.ctx, id, reportsShown); err != nil {
		return storeError("reports", err)
	}
	// Events need their own permission: shown only to roles holding it.
	if adminauth.Check(q.info.Role, adminauth.PermEventsRead, c.o.now()) == nil {
		if v.Events, err = c.events.DeviceEvents(q.ctx, id, eventsPerDevice); err != nil {
			return storeError("events", err)
		}
		if v.Findings, err = c.listFindings(q.ctx, id); err != nil {
			return storeError("findings", err)
		}
	}
	c.render(q, http.StatusOK, "device", v)
	return nil
}

// --- security events ---

type eventsView struct {
	Device   store.DeviceID
	Events   []Event
	Findings []api.Finding
}

func (c *Console) webEvents(q *req) error {
	v := eventsView{}
	if s := q.r.URL.Query().Get("device"); s != "" {
		id := store.DeviceID(s)
		if err := id.Validate(); err != nil {
			return refuse(consoleapi.CodeBadRequest, "invalid", "device: want a device ID")
		}
		evs, err := c.events.DeviceEvents(q.ctx, id, MaxEvents)
		if err != nil {
			return storeError("events", err)
		}
		v.Device, v.Events = id, evs
	} else {
		p, err := c.inv.ListDevices(q.ctx, store.PageRequest{Limit: eventsDevices})
		if err != nil {
			return storeError("inventory", err)
		}
		for _, d := range p.Items {
			evs, err := c.events.DeviceEvents(q.ctx, d.ID, eventsPerDevice)
			if err != nil {
				return storeError("events", err)
			}
			v.Events = append(v.Events, evs...)
		}
		sort.SliceStable(v.Events, func(i, j int) bool { return v.Events[i].Time.After(v.Events[j].Time) })
		if len(v.Events) > eventsShown {
			v.Events = v.Events[:eventsShown]
		}
	}
	var err error
	if v.Findings, err = c.listFindings(q.ctx, v.Device); err != nil {
		return storeError("findings", err)
	}
	c.render(q, http.StatusOK, "events", v)
	return nil
}

// --- rollouts ---

// --- audit trail ---

type auditView struct {
	Size       int64
	Entries    []audit.Entry
	Checkpoint *audit.Checkpoint
	Verified   bool
	Problem    string
	// Older is the "before" of the next page; 0 when this is the first.
	Older int64
}

// auditPage reads up to auditPerPage entries below before (0: the end),
// newest first, and checks the stored tree against the latest signed
// checkpoint. Tampering shows as a problem, never as an error page: an
// auditor must see it.
func (c *Console) auditPage(q *req) (auditView, error) {
	var v auditView
	size, err := c.log.Size(q.ctx)
	if err != nil {
		return v, unavailable("audit log", err)
	}
	v.Size = size
	before := size
	if s := q.r.URL.Query().Get("before"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 || n > size {
			return v, refuse(consoleapi.CodeBadRequest, "invalid", "before: want 1..%d", size)
		}
		before = n
	}
	cp, err := c.log.Check(q.ctx)
	switch {
	case err == nil:
		v.Checkpoint, v.Verified = &cp, true
	case errors.Is(err, audit.ErrNotFound):
		v.Problem = "no checkpoint signed yet: nothing to verify the stored log against"
	default:
		v.Problem = err.Error()
	}
	if before > 0 {
		from := max(0, before-auditPerPage)
		es, err := c.log.Entries(q.ctx, from, int(before-from))
		if err != nil {
			v.Verified = false
			if v.Problem != "" {
				v.Problem += "; "
			}
			v.Problem += err.Error()
		}
		for i := len(es) - 1; i >= 0; i-- {
			v.Entries = append(v.Entries, es[i].Entry)
		}
		v.Older = from
	}
	return v, nil
}

func (c *Console) webAudit(q *req) error {
	v, err := c.auditPage(q)
	if err != nil {
		return err
	}
	c.render(q, http.StatusOK, "audit", v)
	return nil
}

// webAuditExport streams the whole log in the export format, for
// `hpctl fleet audit verify`; the export itself is recorded first.
func (c *Console) webAuditExport(q *req) error {
	if _, err := c.rec.record(q.ctx, entry(q, audit.ActionAuditExport, audit.OutcomeSuccess, "", nil)); err != nil {
		return unavailable("audit export", err)
	}
	q.w.Header().Set("Content-Type", "application/x-ndjson")
	q.w.Header().Set("Content-Disposition", `attachment; filename="audit-export.jsonl"`)
	if err := c.log.Export(q.ctx, q.w); err != nil {
		// Headers are out; the truncated export fails Verify.
		c.logger.Error("audit export", "err", err)
	}
	return nil
}

// --- admins and approvals ---

type adminsView struct {
	Admins []adminauth.Admin
	Me     string
}

func (c *Console) adminList(q *req) ([]adminauth.Admin, error) {
	as, err := c.admins.ListAdmins(q.ctx, c.o.adminsToList)
	if err != nil {
		return nil, unavailable("admins", err)
	}
	return as, nil
}

func (c *Console) webAdmins(q *req) error {
	as, err := c.adminList(q)
	if err != nil {
		return err
	}
	c.render(q, http.StatusOK, "admins", adminsView{Admins: as, Me: q.info.AdminID})
	return nil
}

type approvalsView struct {
	Pending []approval.Change
	Decided []approval.Change
	Me      string
	Now     time.Time
}

func (c *Console) changes(q *req) (pending, decided []approval.Change, err error) {
	all, err := c.approvals.List(q.ctx, "", changesShown)
	if err != nil {
		return nil, nil, unavailable("approvals", err)
	}
	now := c.o.now()
	for _, ch := range all {
		if ch.Pending(now) {
			pending = append(pending, ch)
			continue
		}
		if approval.Expire(&ch, now) {
			// Shown as it is: expired (the store marks it on the next
			// proposal).
			ch.State = approval.StateExpired
		}
		decided = append(decided, ch)
	}
	return pending, decided, nil
}

func (c *Console) webApprovals(q *req) error {
	p, d, err := c.changes(q)
	if err != nil {
		return err
	}
	c.render(q, http.StatusOK, "approvals", approvalsView{Pending: p, Decided: d, Me: q.info.AdminID, Now: c.o.now()})
	return nil
}

func (c *Console) webProposeAdmin(q *req) error {
	name, err := formValue(q, "name", maxNameInput)
	if err != nil {
		return err
	}
	role, err := formValue(q, "role", 32)
	if err != nil {
		return err
	}
	pw, err := formValue(q, "password", adminauth.MaxPasswordLen+1)
	if err != nil {
		return err
	}
	pw2, err := formValue(q, "password2", adminauth.MaxPasswordLen+1)
	if err != nil {
		return err
	}
	if pw != pw2 {
		return refuse(consoleapi.CodeBadRequest, "invalid", "the two passwords differ")
	}
	if _, err := c.proposeAdmin(q, name, role, pw); err != nil {
		return err
	}
	http.Redirect(q.w, q.r, "/console/approvals", http.StatusSeeOther)
	return nil
}

func (c *Console) webProposeRole(q *req) error {
	role, err := formValue(q, "role", 32)
	if err != nil {
		return err
	}
	if _, err := c.proposeRole(q, pathID(q, "id"), role); err != nil {
		return err
	}
	http.Redirect(q.w, q.r, "/console/approvals", http.StatusSeeOther)
	return nil
}

func (c *Console) webProposeDisable(q *req) error {
	if _, err := c.proposeDisable(q, pathID(q, "id")); err != nil {
		return err
	}
	http.Redirect(q.w, q.r, "/console/approvals", http.StatusSeeOther)
	return nil
}

func changeID(q *req) (approval.ID, error) {
	id, err := approval.ParseID(pathID(q, "id"))
	if err != nil {
		return "", refuse(consoleapi.CodeNotFound, "not_found", "no such change")
	}
	return id, nil
}

func (c *Console) webApprove(q *req) error {
	id, err := changeID(q)
	if err != nil {
		return err
	}
	if _, err := c.approve(q, id); err != nil {
		return err
	}
	http.Redirect(q.w, q.r, "/console/approvals", http.StatusSeeOther)
	return nil
}

func (c *Console) webRefuse(q *req) error {
	id, err := changeID(q)
	if err != nil {
		return err
	}
	reason, err := formValue(q, "reason", 256)
	if err != nil {
		return err
	}
	if _, err := c.refuseChange(q, id, reason); err != nil {
		return err
	}
	http.Redirect(q.w, q.r, "/console/approvals", http.StatusSeeOther)
	return nil
}

// permissions lists what role holds now, in table order.
func permissions(role adminauth.Role, now time.Time) []string {
	var out []string
	for _, p := range adminauth.Permissions() {
		if adminauth.Check(role, p, now) == nil {
			out = append(out, string(p))
		}
	}
	return slices.Clip(out)
}
