package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"sync"
	"time"

	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/store"
)

// refusal is a request the server answers with an error code. msg goes to
// the client; cause (never key material) only to the log.
type refusal struct {
	code  api.Code
	msg   string
	cause error
	attrs []any
}

func (r *refusal) Error() string {
	if r.cause != nil {
		return fmt.Sprintf("%s: %s: %v", r.code, r.msg, r.cause)
	}
	return fmt.Sprintf("%s: %s", r.code, r.msg)
}

func (r *refusal) Unwrap() error { return r.cause }

// with adds log attributes.
func (r *refusal) with(attrs ...any) *refusal {
	r.attrs = append(r.attrs, attrs...)
	return r
}

func refuse(code api.Code, format string, args ...any) *refusal {
	return &refusal{code: code, msg: fmt.Sprintf(format, args...)}
}

func refuseErr(code api.Code, err error, format string, args ...any) *refusal {
	return &refusal{code: code, msg: fmt.Sprintf(format, args...) + ": " + err.Error(), cause: err}
}

// storeError maps a store error to a refusal. Validation errors name the
// field, which the client may see; anything unexpected is internal and
// only logged.
func storeError(what string, err error) *refusal {
	var code api.Code
	switch {
	case errors.Is(err, store.ErrInvalid):
		code = api.CodeBadRequest
	case errors.Is(err, store.ErrNotFound):
		code = api.CodeNotFound
	case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrState):
		code = api.CodeConflict
	case errors.Is(err, store.ErrLimit):
		code = api.CodeLimit
	case errors.Is(err, store.ErrNotAllowed):
		code = api.CodeNotAllowed
	case errors.Is(err, store.ErrExpired):
		code = api.CodeExpired
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &refusal{code: api.CodeUnavailable, msg: what + ": the store did not answer in time", cause: err}
	default:
		return &refusal{code: api.CodeInternal, msg: what + ": internal error", cause: err}
	}
	return &refusal{code: code, msg: what + ": " + err.Error(), cause: err}
}

// endpoint wraps a handler: it counts the request, waits for a request
// slot, and answers an error as the API's error body, counted and logged
// at a bounded rate.
func (s *Server) endpoint(name string, h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.metrics.add("requests." + name)
		if !s.acquire(r.Context()) {
			s.metrics.add("refused." + name + "." + string(api.CodeUnavailable))
			writeError(w, refuse(api.CodeUnavailable, "server busy"))
			return
		}
		defer func() { <-s.slots }()
		err := h(w, r)
		if err == nil {
			return
		}
		var rf *refusal
		if !errors.As(err, &rf) {
			rf = &refusal{code: api.CodeInternal, msg: "internal error", cause: err}
		}
		s.metrics.add("refused." + name + "." + string(rf.code))
		attrs := append([]any{"endpoint", name, "code", string(rf.code), "remote", r.RemoteAddr, "reason", rf.msg}, rf.attrs...)
		if rf.cause != nil && rf.code.Status() >= 500 {
			attrs = append(attrs, "err", rf.cause.Error())
		}
		level := slog.LevelWarn
		switch {
		case rf.code.Status() >= 500:
			level = slog.LevelError
		case name == "director" && rf.code == api.CodeNotFound:
			// A TUF client probes for the next root version at every
			// refresh: a 404 there is the normal answer.
			level = slog.LevelDebug
		}
		s.refusals.log(level, "request refused", attrs...)
		writeError(w, rf)
	})
}

// mounted wraps a handler that writes its own answers (the console) in
// the request slots and counters of the API's endpoints.
func (s *Server) mounted(name string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.metrics.add("requests." + name)
		if !s.acquire(r.Context()) {
			s.metrics.add("refused." + name + "." + string(api.CodeUnavailable))
			w.Header().Set("Retry-After", "5")
			http.Error(w, "server busy", http.StatusServiceUnavailable)
			return
		}
		defer func() { <-s.slots }()
		h.ServeHTTP(w, r)
	})
}

func (s *Server) acquire(ctx context.Context) bool {
	select {
	case s.slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(queueTimeout)
	defer t.Stop()
	select {
	case s.slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

func writeError(w http.ResponseWriter, rf *refusal) {
	msg := rf.msg
	if len(msg) > api.MaxErrorMessage {
		msg = msg[:api.MaxErrorMessage]
	}
	writeJSON(w, rf.code.Status(), api.ErrorBody{Error: &api.Error{Code: rf.code, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"encode answer"}}`)
	}
	w.Header().Set("Content-Type", api.ContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	// The client gone is not our error to report.
	_, _ = w.Write(append(b, '\n'))
}

// validator is a request body that checks itself.
type validator interface{ Validate() error }

// decode reads a JSON body of at most limit bytes into v, strictly, and
// validates it.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v validator) error {
	if err := checkJSON(r); err != nil {
		return err
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	if err := api.DecodeStrict(body, v); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return refuse(api.CodeTooLarge, "body over %d bytes", limit)
		}
		return refuse(api.CodeBadRequest, "body: %v", err)
	}
	if err := v.Validate(); err != nil {
		return refuse(api.CodeBadRequest, "%v", err)
	}
	return nil
}

// readBody reads a raw body of at most limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if err := checkJSON(r); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return nil, refuse(api.CodeTooLarge, "body over %d bytes", limit)
		}
		return nil, refuse(api.CodeBadRequest, "body: %v", err)
	}
	return b, nil
}

func checkJSON(r *http.Request) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != api.ContentType {
		return refuse(api.CodeBadRequest, "content type %.64q, want %s", r.Header.Get("Content-Type"), api.ContentType)
	}
	return nil
}

// rateLog logs at most burst lines per interval and counts the rest, so a
// flood of bad requests cannot flood the log.
type rateLog struct {
	l        *slog.Logger
	burst    int
	interval time.Duration

	mu         sync.Mutex // guards the fields below
	windowEnd  time.Time
	used       int
	suppressed int
}

func newRateLog(l *slog.Logger, burst int, interval time.Duration) *rateLog {
	return &rateLog{l: l, burst: burst, interval: interval}
}

func (r *rateLog) log(level slog.Level, msg string, attrs ...any) {
	now := time.Now()
	r.mu.Lock()
	if now.After(r.windowEnd) {
		if r.suppressed > 0 {
			attrs = append(attrs, "suppressed_before", r.suppressed)
		}
		r.windowEnd, r.used, r.suppressed = now.Add(r.interval), 0, 0
	}
	if r.used >= r.burst {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	r.used++
	r.mu.Unlock()
	r.l.Log(context.Background(), level, msg, attrs...)
}

// metrics are counters by name. Names come from the endpoint table and
// the api codes only, so the map stays small.
type metrics struct {
	mu sync.Mutex // guards c
	c  map[string]uint64
}

func newMetrics() *metrics { return &metrics{c: map[string]uint64{}} }

func (m *metrics) add(name string) {
	m.mu.Lock()
	m.c[name]++
	m.mu.Unlock()
}

func (m *metrics) snapshot() map[string]uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]uint64, len(m.c))
	for k, v := range m.c {
		out[k] = v
	}
	return out
}

// Metrics returns the counters, as /v1/admin/metrics does.
func (s *Server) Metrics() map[string]uint64 { return s.metrics.snapshot() }

func (s *Server) getMetrics(w http.ResponseWriter, r *http.Request, _ string) error {
	c := s.metrics.snapshot()
	if s.dir != nil {
		for k, v := range s.dir.Counters() {
			c["director."+k] = v
		}
	}
	writeJSON(w, http.StatusOK, api.Metrics{Counters: c})
	return nil
}
