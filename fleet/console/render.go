package console

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/console/consoleapi"
)

// The console's pages are html/template files and its static files are
// plain CSS and one script, embedded: no build step, nothing fetched from
// elsewhere, no inline script or style anywhere (the CSP forbids them).
//
//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pageNames are the pages; each is parsed with layout.html.
var pageNames = []string{"login", "factor", "enrol", "enrol_totp", "inventory", "device", "events", "rollouts", "rollout", "rollout_new",
	"audit", "admins", "approvals", "error"}

var funcs = template.FuncMap{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"ptime": func(t *time.Time) string {
		if t == nil || t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"roles": adminauth.Roles,
	"join":  strings.Join,
	"short": func(s string, n int) string {
		if len(s) <= n {
			return s
		}
		return s[:n] + "…"
	},
	"severity": func(s uint8) string {
		return [...]string{"emergency", "alert", "critical", "error", "warning", "notice", "info", "debug"}[min(s, 7)]
	},
}

func parsePages() (map[string]*template.Template, error) {
	layout, err := fs.ReadFile(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	tables, err := fs.ReadFile(templateFS, "templates/tables.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, p := range pageNames {
		body, err := fs.ReadFile(templateFS, "templates/"+p+".html")
		if err != nil {
			return nil, err
		}
		t, err := template.New("layout").Funcs(funcs).Parse(string(layout))
		if err != nil {
			return nil, fmt.Errorf("layout: %w", err)
		}
		if _, err := t.New("tables").Parse(string(tables)); err != nil {
			return nil, fmt.Errorf("tables: %w", err)
		}
		if _, err := t.New(p).Parse(string(body)); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out[p] = t
	}
	return out, nil
}

// navItem is a link of the navigation bar, shown when the role holds its
// permission.
type navItem struct {
	Href, Label string
	Active      bool
}

var nav = []struct {
	href, label string
	perm        adminauth.Permission
}{
	{"/console/inventory", "Inventory", adminauth.PermInventoryRead},
	{"/console/events", "Security events", adminauth.PermEventsRead},
	{"/console/rollouts", "Rollouts", adminauth.PermRolloutRead},
	{"/console/approvals", "Approvals", adminauth.PermAdminRead},
	{"/console/admins", "Admins", adminauth.PermAdminRead},
	{"/console/audit", "Audit trail", adminauth.PermAuditRead},
}

// view is what every page template gets.
type view struct {
	Page    string
	Session *adminauth.SessionInfo
	// CSRF is the session's CSRF token for forms and the script.
	CSRF  string
	Nav   []navItem
	Error string
	Data  any
}

// can reports whether the page's admin holds p (to show or hide forms;
// every action is authorized again when it comes).
func (v view) Can(p string) bool {
	return v.Session != nil && adminauth.Check(v.Session.Role, adminauth.Permission(p), time.Now()) == nil
}

// render writes page name with data. msg, when given, is shown as an
// error.
func (c *Console) render(q *req, status int, name string, data any, msg ...string) {
	t, ok := c.pages[name]
	if !ok {
		http.Error(q.w, "internal error", http.StatusInternalServerError)
		return
	}
	v := view{Page: name, Session: q.info, Data: data}
	if q.token != "" {
		v.CSRF = csrfToken(q.token)
	}
	if len(msg) > 0 {
		v.Error = msg[0]
	}
	if q.info != nil {
		for _, n := range nav {
			if adminauth.Check(q.info.Role, n.perm, c.o.now()) == nil {
				v.Nav = append(v.Nav, navItem{Href: n.href, Label: n.label, Active: strings.HasPrefix(q.r.URL.Path, n.href)})
			}
		}
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, "layout", v); err != nil {
		c.logger.Error("render", "page", name, "err", err)
		http.Error(q.w, "internal error", http.StatusInternalServerError)
		return
	}
	q.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	q.w.WriteHeader(status)
	// A failed write is the client gone: nothing to do.
	_, _ = q.w.Write(b.Bytes())
}

type errorView struct {
	Status  int
	Code    string
	Message string
	Login   bool
}

func (c *Console) renderError(q *req, rf *refusal) {
	st := rf.code.Status()
	c.render(q, st, "error", errorView{Status: st, Code: string(rf.code), Message: rf.msg,
		Login: rf.code == consoleapi.CodeUnauthenticated || rf.code == consoleapi.CodeSecondFactor})
}

// webStatic serves the embedded CSS and script.
func (c *Console) webStatic(q *req) error {
	name := q.r.PathValue("file")
	if name == "" || strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, ".") {
		return refuse(consoleapi.CodeNotFound, "not_found", "no such file")
	}
	b, err := fs.ReadFile(staticFS, "static/"+name)
	if err != nil {
		return refuse(consoleapi.CodeNotFound, "not_found", "no such file")
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	q.w.Header().Set("Content-Type", ct)
	q.w.Header().Set("Cache-Control", "no-cache")
	_, err = q.w.Write(b)
	return err
}
