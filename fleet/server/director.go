package server

import (
	"context"
	"encoding/hex"
	"errors"

	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/configdoc"
	"github.com/hardphone/hardphone/fleet/director"
	"github.com/hardphone/hardphone/fleet/store"
)

// maxDirectorFileName bounds the file part of a director path.
const maxDirectorFileName = 160

// directorFile serves one file of a device's director repository to that
// device only: mutual TLS with its certificate, the ID in the path its
// own (another device is refused with 403 before anything is read). The
// ETag is the content's hash; If-None-Match with it answers 304 and no
// body, so an unchanged poll costs headers only.
func (s *Server) directorFile(w http.ResponseWriter, r *http.Request) error {
	p, err := s.device(r)
	if err != nil {
		return err
	}
	if err := p.live(); err != nil {
		return err
	}
	if s.dir == nil {
		return refuse(api.CodeNotConfigured, "this fleet server runs without a director")
	}
	if id := r.PathValue("id"); id != string(p.device.ID) {
		return refuse(api.CodeForbidden, "device %s may read only its own director repository", p.device.ID).with("device", string(p.device.ID), "asked", trunc(id, 40))
	}
	name := r.PathValue("file")
	if len(name) == 0 || len(name) > maxDirectorFileName || path.Clean(name) != name || strings.HasPrefix(name, "/") || strings.Contains(name, "..") {
		return refuse(api.CodeNotFound, "no such file")
	}
	data, etag, err := s.dir.File(r.Context(), p.device.ID, name)
	if errors.Is(err, director.ErrNotFound) {
		return refuse(api.CodeNotFound, "%v", err)
	}
	if err != nil {
		return &refusal{code: api.CodeInternal, msg: "director: internal error", cause: err}
	}
	s.metrics.add("director_files")
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", "no-cache")
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, etag) {
		s.metrics.add("director_not_modified")
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	ct := "application/json"
	if strings.HasSuffix(name, ".toml") {
		ct = "application/toml"
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	// The client gone is not our error to report.
	_, _ = w.Write(data)
	return nil
}

// etagMatch applies If-None-Match's weak comparison (RFC 9110 §13.1.2) to
// a bounded list.
func etagMatch(header, etag string) bool {
	if len(header) > 1024 {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// enrolled publishes a new or re-enrolled device's director repository,
// so its first poll finds it; a failure is logged and left to the
// worker's next pass or the next assignment change.
func (s *Server) enrolled(r *http.Request, id store.DeviceID) {
	if s.dir == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 30*time.Second)
	defer cancel()
	if _, err := s.dir.Publish(ctx, id); err != nil {
		s.log.Warn("director: publish after enrolment", "device", string(id), "err", err)
	}
}

// scope reads {kind} and {name} of an admin assignment path.
func scope(r *http.Request) (store.Scope, error) {
	sc := store.Scope{Kind: store.ScopeKind(r.PathValue("kind")), Name: r.PathValue("name")}
	if err := sc.Validate(); err != nil {
		return sc, refuse(api.CodeBadRequest, "%v", err)
	}
	return sc, nil
}

func (s *Server) needDirector() error {
	if s.dir == nil {
		return refuse(api.CodeNotConfigured, "this fleet server runs without a director")
	}
	return nil
}

func assignmentView(a store.Assignment) api.AssignmentResponse {
	out := api.AssignmentResponse{Kind: string(a.Scope.Kind), Name: a.Scope.Name, Revision: a.Revision, TOML: string(a.Config),
		UpdatedAt: a.UpdatedAt, UpdatedBy: a.UpdatedBy}
	if f := a.Firmware; f != nil {
		out.Firmware = &api.FirmwareTarget{Name: f.Name, Length: f.Length, SHA256: hex.EncodeToString(f.SHA256[:]),
			Compatible: f.Compatible, Version: f.Version, SecurityVersion: f.SecurityVersion}
	}
	return out
}

func changeView(ch director.Change) api.AssignmentResponse {
	out := assignmentView(ch.Assignment)
	for _, p := range ch.Published {
		out.Published = append(out.Published, api.PublishedDevice{DeviceID: p.DeviceID, ConfigVersion: p.ConfigVersion, TargetsVersion: p.TargetsVersion})
	}
	out.Failed = ch.Failed
	return out
}

// directorError maps the director's refusals.
func directorError(what string, err error) error {
	var rf *refusal
	switch {
	case errors.As(err, &rf):
		return rf
	case errors.Is(err, director.ErrConfig), errors.Is(err, configdoc.ErrInvalid):
		return refuse(api.CodeBadRequest, "%s: %v", what, err)
	case errors.Is(err, director.ErrNotListed):
		return refuse(api.CodeNotListed, "%s: %v", what, err)
	case errors.Is(err, director.ErrDevice):
		return refuse(api.CodeConflict, "%s: %v", what, err)
	}
	return storeError(what, err)
}

func (s *Server) getAssignment(w http.ResponseWriter, r *http.Request, _ string) error {
	if err := s.needDirector(); err != nil {
		return err
	}
	sc, err := scope(r)
	if err != nil {
		return err
	}
	a, err := s.dir.Assignment(r.Context(), sc)
	if err != nil {
		return storeError("assignment", err)
	}
	writeJSON(w, http.StatusOK, assignmentView(a))
	return nil
}

func (s *Server) putConfig(w http.ResponseWriter, r *http.Request, admin string) error {
	if err := s.needDirector(); err != nil {
		return err
	}
	sc, err := scope(r)
	if err != nil {
		return err
	}
	var req api.ConfigRequest
	if err := decode(w, r, api.MaxConfigRequest+4096, &req); err != nil {
		return err
	}
	if err := s.directChange(r, sc, []byte(req.TOML)); err != nil {
		return err
	}
	ch, err := s.dir.SetConfig(r.Context(), sc, []byte(req.TOML), admin)
	if err != nil {
		return directorError("config", err)
	}
	note(r, "revision", strconv.FormatUint(ch.Assignment.Revision, 10))
	writeJSON(w, http.StatusOK, changeView(ch))
	return nil
}

func (s *Server) deleteConfig(w http.ResponseWriter, r *http.Request, admin string) error {
	if err := s.needDirector(); err != nil {
		return err
	}
	sc, err := scope(r)
	if err != nil {
		return err
	}
	if err := s.directChange(r, sc, nil); err != nil {
		return err
	}
	ch, err := s.dir.DeleteConfig(r.Context(), sc, admin)
	if err != nil {
		return directorError("config", err)
	}
	writeJSON(w, http.StatusOK, changeView(ch))
	return nil
}

func (s *Server) putFirmware(w http.ResponseWriter, r *http.Request, admin string) error {
	if err := s.needDirector(); err != nil {
		return err
	}
	sc, err := scope(r)
	if err != nil {
		return err
	}
	var req api.FirmwareRequest
	if err := decode(w, r, api.MaxRequestBody, &req); err != nil {
		return err
	}
	if err := s.directChange(r, sc, nil); err != nil {
		return err
	}
	note(r, "firmware", req.Target)
	ch, err := s.dir.AssignFirmware(r.Context(), sc, req.Target, admin)
	if err != nil {
		return directorError("firmware", err)
	}
	writeJSON(w, http.StatusOK, changeView(ch))
	return nil
}

func (s *Server) deleteFirmware(w http.ResponseWriter, r *http.Request, admin string) error {
	if err := s.needDirector(); err != nil {
		return err
	}
	sc, err := scope(r)
	if err != nil {
		return err
	}
	if err := s.directChange(r, sc, nil); err != nil {
		return err
	}
	ch, err := s.dir.ClearFirmware(r.Context(), sc, admin)
	if err != nil {
		return directorError("firmware", err)
	}
	writeJSON(w, http.StatusOK, changeView(ch))
	return nil
}

func (s *Server) getProvision(w http.ResponseWriter, r *http.Request, _ string) error {
	if err := s.needDirector(); err != nil {
		return err
	}
	id, err := deviceID(r)
	if err != nil {
		return err
	}
	if _, err := s.st.GetDevice(r.Context(), id); err != nil {
		return storeError("device", err)
	}
	st, err := s.dir.Status(r.Context(), id)
	if err != nil {
		return storeError("provision", err)
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) rotate(w http.ResponseWriter, r *http.Request, admin string) error {
	if err := s.needDirector(); err != nil {
		return err
	}
	id, err := deviceID(r)
	if err != nil {
		return err
	}
	if _, err := s.dir.Rotate(r.Context(), id); err != nil {
		return directorError("rotate", err)
	}
	s.log.Info("password rotation asked for", "device", string(id), "admin", admin)
	st, err := s.dir.Status(r.Context(), id)
	if err != nil {
		return storeError("provision", err)
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}
