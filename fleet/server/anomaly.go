package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hardphone/hardphone/fleet/anomaly"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/store"
)

// The anomaly detector in hpfleet. Every replica logs what it learns (the
// security events of the journals phones export, the calls they report,
// the source address of each enrolment and renewal, the director's
// password rotations) to the store's observation log, in the same
// transaction as the records behind them. One replica, the holder of the
// "anomaly" lease (a PostgreSQL session advisory lock), runs the detector:
// it restores the state the last leader saved with the log position it
// had reached, feeds it every observation after that position in log
// order, stores the findings and carries out their responses, and saves
// the state again (compare-and-swap on its revision, so a replica that
// lost the lease without noticing cannot overwrite its successor) before
// it deletes the observations it consumed. The others stand by and take
// the lease when it is free; none forwards anything, since the log is
// shared. A leader that dies between saves makes its successor replay the
// observations since the last save: findings are stored by ID (the same
// replay makes the same findings), blocks and quarantines are idempotent,
// alerts are sent again (at least once).

// Defaults of the anomaly runner.
const (
	DefaultAnomalyStateInterval = time.Minute
	DefaultAnomalyPollInterval  = time.Second
	// anomalyRole is the lease's name.
	anomalyRole = "anomaly"
	// leadRetry is how often a standby replica tries to take the lease.
	leadRetry = 5 * time.Second
	// maxAlertRetries bounds the alerts waiting to be sent again.
	maxAlertRetries = 1000
	alertTimeout    = 30 * time.Second
	// observePage is how many observations the leader reads at once.
	observePage = 1000
)

// AnomalyConfig turns on the anomaly detector.
type AnomalyConfig struct {
	// Detector is fleet/anomaly's configuration (rules, responses, bounds).
	Detector anomaly.Config
	// Alerters receive the findings of the rules whose alert is on, by
	// name ("syslog", "webhook"). None: alerts fail, and say so.
	Alerters map[string]anomaly.Alerter
	// StateInterval is how often the leader saves the detector's state
	// (default DefaultAnomalyStateInterval); PollInterval how often it
	// looks for observations other replicas logged
	// (DefaultAnomalyPollInterval).
	StateInterval, PollInterval time.Duration
}

// WithAnomaly runs the anomaly detector (on the replica that holds the
// lease) and logs observations for it.
func WithAnomaly(c AnomalyConfig) Option {
	return func(o *options) error {
		if err := c.Detector.Validate(); err != nil {
			return fmt.Errorf("anomaly: %w", err)
		}
		if c.StateInterval == 0 {
			c.StateInterval = DefaultAnomalyStateInterval
		}
		if c.PollInterval == 0 {
			c.PollInterval = DefaultAnomalyPollInterval
		}
		if c.StateInterval < time.Second || c.PollInterval < 10*time.Millisecond || c.PollInterval > time.Minute {
			return fmt.Errorf("anomaly: state interval %v, poll interval %v: want at least 1s, and 10ms..1m", c.StateInterval, c.PollInterval)
		}
		for name, a := range c.Alerters {
			if a == nil || name == "" {
				return errors.New("anomaly: an alerter without a name or nil")
			}
		}
		o.anomaly = &c
		return nil
	}
}

// anomalyRunner runs the detector while this replica leads.
type anomalyRunner struct {
	s      *Server
	cfg    AnomalyConfig
	names  []string      // alerter names, sorted
	wakeCh chan struct{} // capacity 1: observations were logged here

	mu       sync.Mutex         // guards det and retries
	det      *anomaly.Detector  // non-nil while this replica leads
	retries  []alertRetry       // failed alerts to send again
	findings map[uint64]fstatus // outcomes of findings with retries pending
}

type alertRetry struct {
	f       anomaly.Finding
	name    string
	tries   int
	nextTry time.Time
}

type fstatus struct{ view api.Finding }

func newAnomalyRunner(s *Server, c AnomalyConfig) *anomalyRunner {
	a := &anomalyRunner{s: s, cfg: c, wakeCh: make(chan struct{}, 1), findings: map[uint64]fstatus{}}
	for n := range c.Alerters {
		a.names = append(a.names, n)
	}
	slices.Sort(a.names)
	return a
}

// wake tells the leader (if it is this replica) that observations wait.
func (a *anomalyRunner) wake() {
	select {
	case a.wakeCh <- struct{}{}:
	default:
	}
}

// detector is the running detector, nil when this replica does not lead.
func (a *anomalyRunner) detector() *anomaly.Detector {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.det
}

// run takes the lease when it can and leads until ctx ends.
func (a *anomalyRunner) run(ctx context.Context) {
	log := a.s.log.With("part", "anomaly")
	for ctx.Err() == nil {
		lease, err := a.s.st.Lead(ctx, anomalyRole)
		if err == nil {
			log.Info("anomaly detector: this replica leads")
			a.s.metrics.add("anomaly_lead")
			err = a.lead(ctx, lease)
			lease.Release()
			a.mu.Lock()
			a.det = nil
			a.mu.Unlock()
			if err != nil && ctx.Err() == nil {
				log.Warn("anomaly detector: leadership ended", "err", err)
			}
		} else if !errors.Is(err, store.ErrState) && ctx.Err() == nil {
			log.Warn("anomaly detector: lease", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(leadRetry):
		}
	}
}

// errLost ends a leadership whose lease or state another replica took.
var errLost = errors.New("lost the anomaly lease")

// lead runs the detector while the lease holds.
func (a *anomalyRunner) lead(ctx context.Context, lease store.Lease) error {
	s := a.s
	det, err := anomaly.New(a.cfg.Detector, anomaly.WithClock(s.o.now), anomaly.WithLogger(s.log))
	if err != nil {
		return err
	}
	var rev, cursor uint64
	st, err := s.st.AnomalyState(ctx)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return err
	default:
		if err := det.UnmarshalState(st.Data); err != nil {
			// A newer binary's state, or a damaged one: leading would
			// overwrite it.
			return fmt.Errorf("restore the detector's state (revision %d): %w", st.Rev, err)
		}
		rev, cursor = st.Rev, st.Cursor
		s.log.Info("anomaly detector: state restored", "revision", rev, "cursor", cursor, "saved_at", st.SavedAt)
	}
	a.mu.Lock()
	a.det = det
	a.mu.Unlock()
	save := func(ctx context.Context) error {
		b, err := det.MarshalState()
		if err != nil {
			return err
		}
		saved, err := s.st.PutAnomalyState(ctx, store.AnomalyState{Cursor: cursor, Data: b, SavedAt: s.o.now()}, rev)
		if errors.Is(err, store.ErrState) {
			return fmt.Errorf("%w: another replica saved the detector's state", errLost)
		}
		if err != nil {
			return err
		}
		rev = saved.Rev
		s.metrics.add("anomaly_state_saved")
		// What the state includes is no longer needed: numbers called
		// leave the database with it.
		if _, err := s.st.DeleteObservations(ctx, cursor); err != nil {
			s.log.Warn("anomaly detector: delete consumed observations", "err", err)
		}
		return nil
	}
	poll := time.NewTicker(a.cfg.PollInterval)
	defer poll.Stop()
	lastSave, saved := s.o.now(), cursor
	for {
		if err := a.consume(ctx, det, &cursor); err != nil && ctx.Err() == nil {
			s.log.Warn("anomaly detector: read observations", "err", err)
		}
		a.expire(ctx)
		a.retryAlerts(ctx)
		if cursor != saved && s.o.now().Sub(lastSave) >= a.cfg.StateInterval {
			if err := save(ctx); err != nil {
				return err
			}
			lastSave, saved = s.o.now(), cursor
		}
		select {
		case <-ctx.Done():
			if cursor != saved {
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
				defer cancel()
				return save(sctx)
			}
			return nil
		case <-lease.Lost():
			return errLost
		case <-a.wakeCh:
		case <-poll.C:
		}
	}
}

// consume feeds the detector every observation after *cursor.
func (a *anomalyRunner) consume(ctx context.Context, det *anomaly.Detector, cursor *uint64) error {
	s := a.s
	for {
		obs, err := s.st.ListObservations(ctx, *cursor, observePage)
		if err != nil {
			return err
		}
		if len(obs) == 0 {
			return nil
		}
		if *cursor != 0 && obs[0].Seq > *cursor+1 {
			s.log.Warn("anomaly detector: observations dropped from the log before it read them", "from", *cursor+1, "to", obs[0].Seq-1)
		}
		for _, o := range obs {
			*cursor = o.Seq
			ob, err := anomaly.DecodeObservation(o.Data)
			if err != nil {
				s.metrics.add("anomaly_observations_invalid")
				continue
			}
			fs, err := det.Observe(ob)
			switch {
			case errors.Is(err, anomaly.ErrStale):
				s.metrics.add("anomaly_observations_stale")
				continue
			case errors.Is(err, anomaly.ErrFuture):
				s.metrics.add("anomaly_observations_future")
				continue
			case err != nil:
				s.metrics.add("anomaly_observations_invalid")
				continue
			}
			s.metrics.add("anomaly_observations")
			for _, f := range fs {
				a.handle(ctx, f)
			}
		}
	}
}

// findingView is the stored and shown form of a finding.
func findingView(f anomaly.Finding) api.Finding {
	v := api.Finding{ID: f.ID, Rule: f.Rule, Severity: f.Severity.String(), Time: f.Time, Devices: f.Devices,
		MoreDevices: f.MoreDevices, Summary: f.Summary}
	if f.Source.IsValid() {
		v.Source = f.Source.String()
	}
	for _, e := range f.Evidence {
		v.Evidence = append(v.Evidence, api.Evidence{Key: e.Key, Value: e.Value})
	}
	for _, r := range f.Recommended {
		v.Recommended = append(v.Recommended, string(r))
	}
	for _, r := range f.Responses {
		fr := api.FindingResponse{Kind: string(r.Kind), Device: r.Device, Until: r.Until, Outcome: "pending"}
		if o := r.Override; o != nil {
			fr.Override = &api.DialOverride{Allow: slices.Clone(o.Allow), International: o.International}
		}
		v.Responses = append(v.Responses, fr)
	}
	return v
}

// putFinding stores a finding's view.
func (a *anomalyRunner) putFinding(ctx context.Context, v api.Finding, sev anomaly.Severity) {
	b, err := json.Marshal(v)
	if err == nil && len(b) > store.MaxAnomalyFinding {
		err = fmt.Errorf("finding of %d bytes", len(b))
	}
	if err != nil {
		a.s.log.Error("anomaly detector: encode finding", "id", v.ID, "err", err)
		return
	}
	sf := store.AnomalyFinding{ID: v.ID, Time: store.ClampTime(v.Time), Rule: v.Rule, Severity: uint8(sev), Data: b}
	for _, d := range v.Devices {
		if id := store.DeviceID(d); id.Validate() == nil {
			sf.Devices = append(sf.Devices, id)
		}
	}
	if err := a.s.st.PutAnomalyFinding(ctx, sf); err != nil {
		a.s.log.Error("anomaly detector: store finding", "id", v.ID, "err", err)
	}
}

// handle stores a finding, carries out its responses, and stores what
// they did.
func (a *anomalyRunner) handle(ctx context.Context, f anomaly.Finding) {
	s := a.s
	s.metrics.add("anomaly_findings")
	s.log.Warn("anomaly finding", "id", f.ID, "rule", f.Rule, "severity", f.Severity.String(), "devices", strings.Join(f.Devices, ","),
		"summary", f.Summary)
	v := findingView(f)
	a.putFinding(ctx, v, f.Severity)
	retry := false
	outcomes, details := make([]string, len(f.Responses)), make([]string, len(f.Responses))
	for i, r := range f.Responses {
		var outcome, detail string
		switch r.Kind {
		case anomaly.ResponseAlert:
			outcome, detail = a.alertAll(ctx, f)
			retry = retry || outcome == "failed" && len(a.names) > 0
		case anomaly.ResponseBlock:
			outcome, detail = a.block(ctx, r)
		case anomaly.ResponseQuarantine:
			outcome, detail = a.quarantine(ctx, r)
		default:
			outcome, detail = "failed", "unknown response"
		}
		v.Responses[i].Outcome, v.Responses[i].Detail = outcome, detail
		outcomes[i], details[i] = outcome, detail
		s.metrics.add("anomaly_response." + string(r.Kind) + "." + outcome)
	}
	a.putFinding(ctx, v, f.Severity)
	s.auditFinding(ctx, f, outcomes, details)
	if retry {
		a.mu.Lock()
		a.findings[f.ID] = fstatus{view: v}
		a.mu.Unlock()
	}
}

// alertAll sends the finding to every alerter; those that fail are
// queued to be sent again.
func (a *anomalyRunner) alertAll(ctx context.Context, f anomaly.Finding) (string, string) {
	if len(a.names) == 0 {
		return "failed", "no alert sink configured"
	}
	var done, failed []string
	for _, n := range a.names {
		if err := a.sendAlert(ctx, n, f); err != nil {
			failed = append(failed, n+": "+err.Error())
			a.queueRetry(alertRetry{f: f, name: n, tries: 1, nextTry: a.s.o.now().Add(5 * time.Second)})
			continue
		}
		done = append(done, n)
	}
	if len(failed) > 0 {
		return "failed", trunc(strings.Join(failed, "; ")+" (retried)", 400)
	}
	return "done", "sent to " + strings.Join(done, ", ")
}

func (a *anomalyRunner) sendAlert(ctx context.Context, name string, f anomaly.Finding) error {
	actx, cancel := context.WithTimeout(ctx, alertTimeout)
	defer cancel()
	err := a.cfg.Alerters[name].Alert(actx, f)
	if err == nil {
		a.s.metrics.add("anomaly_alerts_sent")
	}
	return err
}

func (a *anomalyRunner) queueRetry(r alertRetry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.retries) >= maxAlertRetries {
		a.retries = a.retries[1:]
		a.s.metrics.add("anomaly_alerts_dropped")
	}
	a.retries = append(a.retries, r)
}

// retryAlerts sends again the alerts that are due, with backoff (5 s,
// doubling to 10 minutes, 12 tries), and records a success on the finding.
func (a *anomalyRunner) retryAlerts(ctx context.Context) {
	now := a.s.o.now()
	a.mu.Lock()
	var due []alertRetry
	keep := a.retries[:0]
	for _, r := range a.retries {
		if !now.Before(r.nextTry) {
			due = append(due, r)
		} else {
			keep = append(keep, r)
		}
	}
	a.retries = keep
	a.mu.Unlock()
	for _, r := range due {
		if err := a.sendAlert(ctx, r.name, r.f); err != nil {
			if r.tries++; r.tries < 12 {
				r.nextTry = now.Add(min(5*time.Second<<r.tries, 10*time.Minute))
				a.queueRetry(r)
			} else {
				a.s.log.Error("anomaly alert given up", "finding", r.f.ID, "sink", r.name, "err", err)
			}
			continue
		}
		a.mu.Lock()
		st, ok := a.findings[r.f.ID]
		pending := slices.ContainsFunc(a.retries, func(x alertRetry) bool { return x.f.ID == r.f.ID })
		if !pending {
			delete(a.findings, r.f.ID)
		}
		a.mu.Unlock()
		if ok && !pending {
			for i := range st.view.Responses {
				if st.view.Responses[i].Kind == string(anomaly.ResponseAlert) {
					st.view.Responses[i].Outcome = "done"
					st.view.Responses[i].Detail = "sent to " + strings.Join(a.names, ", ") + " after retrying"
				}
			}
			a.putFinding(ctx, st.view, r.f.Severity)
		}
	}
}

// quarantine records the device's renewals refused until the response's
// end (the later of this and one in force).
func (a *anomalyRunner) quarantine(ctx context.Context, r anomaly.Response) (string, string) {
	id := store.DeviceID(r.Device)
	until := r.Until
	if cur, err := a.s.st.GetAnomalyResponse(ctx, id, store.ResponseQuarantine); err == nil && cur.Until.After(until) {
		until = cur.Until
	}
	err := a.s.st.PutAnomalyResponse(ctx, store.AnomalyResponse{Device: id, Kind: store.ResponseQuarantine, Finding: r.Finding,
		Rule: r.Rule, Until: store.ClampTime(until), UpdatedAt: a.s.o.now()})
	if err != nil {
		return "failed", trunc(err.Error(), 400)
	}
	a.s.log.Warn("device quarantined: certificate renewals refused", "device", r.Device, "until", until, "finding", r.Finding)
	return "done", "renewals refused until " + until.UTC().Format(time.RFC3339)
}

// expire ends the blocks and quarantines whose time is up.
func (a *anomalyRunner) expire(ctx context.Context) {
	s := a.s
	rs, err := s.st.ListAnomalyResponses(ctx, store.MaxPageSize)
	if err != nil {
		s.log.Warn("anomaly detector: list responses", "err", err)
		return
	}
	now := s.o.now()
	for _, r := range rs {
		if r.Until.After(now) {
			break // soonest first
		}
		if err := a.end(ctx, r); err != nil {
			s.log.Warn("anomaly detector: end response", "device", string(r.Device), "kind", string(r.Kind), "err", err)
			continue
		}
		s.log.Info("anomaly response ended", "device", string(r.Device), "kind", string(r.Kind), "finding", r.Finding)
	}
}

// end undoes a response (a block's override) and removes it.
func (a *anomalyRunner) end(ctx context.Context, r store.AnomalyResponse) error {
	if r.Kind == store.ResponseBlock {
		if err := a.s.unblock(ctx, r); err != nil {
			return err
		}
	}
	if err := a.s.st.DeleteAnomalyResponse(ctx, r.Device, r.Kind); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// quarantined refuses a renewal while the device is quarantined (the
// renewal handler's hook; any replica, from the store).
func (s *Server) quarantined(r *http.Request, id store.DeviceID) error {
	q, err := s.st.GetAnomalyResponse(r.Context(), id, store.ResponseQuarantine)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return storeError("quarantine", err)
	case !q.Until.After(s.o.now()):
		return nil
	}
	s.metrics.add("renew_quarantined")
	return refuse(api.CodePosture, "renewal refused: the device is quarantined until %s (anomaly finding %d, rule %s)",
		q.Until.Format(time.RFC3339), q.Finding, q.Rule).with("device", string(id))
}

// observe logs observations about a device for the detector (when it
// runs); a failure is logged, the request it came with goes on.
func (s *Server) observe(ctx context.Context, id store.DeviceID, obs ...anomaly.Observation) {
	if s.anom == nil {
		return
	}
	enc := s.encodeObservations(id, obs, s.o.now())
	if len(enc) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := s.st.AppendObservations(ctx, enc); err != nil {
		s.log.Warn("anomaly detector: log observation", "device", string(id), "err", err)
		return
	}
	s.anom.wake()
}

// registered logs the source of an enrolment or renewal.
func (s *Server) registered(r *http.Request, id store.DeviceID) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return
	}
	s.observe(r.Context(), id, anomaly.Registration{Device: string(id), Time: s.o.now(), Source: ap.Addr().Unmap()})
}

// CredentialChanged logs that a device's credential changed (the
// director's password rotation calls it); what names it ("sip_password"),
// actor who did it.
func (s *Server) CredentialChanged(ctx context.Context, id store.DeviceID, what, actor string, at time.Time) {
	s.observe(ctx, id, anomaly.CredentialChange{Device: string(id), Time: at, What: what, Actor: actor})
}

// findingsPage lists findings and the responses in force (admin).
func (s *Server) listFindings(w http.ResponseWriter, r *http.Request, _ string) error {
	qv := r.URL.Query()
	q := store.FindingQuery{Device: store.DeviceID(qv.Get("device")), Rule: qv.Get("rule"), Limit: 100}
	if l := qv.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > api.MaxPageSize {
			return refuse(api.CodeBadRequest, "limit %.16q, want 1..%d", l, api.MaxPageSize)
		}
		q.Limit = n
	}
	if b := qv.Get("before"); b != "" {
		n, err := strconv.ParseUint(b, 10, 63)
		if err != nil {
			return refuse(api.CodeBadRequest, "before %.24q: want a finding ID", b)
		}
		q.Before = n
	}
	if err := q.Validate(); err != nil {
		return refuse(api.CodeBadRequest, "%v", err)
	}
	pg, err := s.st.ListAnomalyFindings(r.Context(), q)
	if err != nil {
		return storeError("findings", err)
	}
	out := api.FindingsPage{Findings: []api.Finding{}, Next: pg.Next}
	for _, f := range pg.Items {
		var v api.Finding
		if err := json.Unmarshal(f.Data, &v); err != nil {
			return storeError("stored finding", err)
		}
		out.Findings = append(out.Findings, v)
	}
	if out.Active, err = s.activeResponses(r.Context()); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) activeResponses(ctx context.Context) ([]api.ActiveResponse, error) {
	rs, err := s.st.ListAnomalyResponses(ctx, store.MaxPageSize)
	if err != nil {
		return nil, storeError("responses", err)
	}
	var out []api.ActiveResponse
	now := s.o.now()
	for _, r := range rs {
		if r.Until.After(now) {
			out = append(out, api.ActiveResponse{DeviceID: string(r.Device), Kind: string(r.Kind), Rule: r.Rule, Finding: r.Finding, Until: r.Until})
		}
	}
	return out, nil
}

// liftRequest validates the kind.
type liftRequest api.LiftRequest

func (l *liftRequest) Validate() error {
	if err := store.AnomalyResponseKind(l.Kind).Validate(); err != nil {
		return refuse(api.CodeBadRequest, "%v", err)
	}
	return nil
}

// lift ends a block or quarantine early (admin): the override comes off
// and the store forgets it on any replica; the detector, where it runs
// here, forgets it too.
func (s *Server) lift(w http.ResponseWriter, r *http.Request, admin string) error {
	id, err := deviceID(r)
	if err != nil {
		return err
	}
	var req liftRequest
	if err := decode(w, r, api.MaxRequestBody, &req); err != nil {
		return err
	}
	kind := store.AnomalyResponseKind(req.Kind)
	note(r, "kind", string(kind))
	cur, err := s.st.GetAnomalyResponse(r.Context(), id, kind)
	if err != nil {
		return storeError("response", err)
	}
	if kind == store.ResponseBlock {
		if err := s.unblock(r.Context(), cur); err != nil {
			return directorError("lift block", err)
		}
	}
	if err := s.st.DeleteAnomalyResponse(r.Context(), id, kind); err != nil && !errors.Is(err, store.ErrNotFound) {
		return storeError("response", err)
	}
	if s.anom != nil {
		if det := s.anom.detector(); det != nil {
			det.Lift(string(id), anomaly.ResponseKind(kind))
		}
	}
	s.log.Info("anomaly response lifted", "device", string(id), "kind", string(kind), "admin", admin)
	out := api.FindingsPage{Findings: []api.Finding{}}
	if out.Active, err = s.activeResponses(r.Context()); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
