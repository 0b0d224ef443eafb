package console

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzSafeNext: whatever a request names as the page to return to after
// a second factor, the redirect stays on the console: a path under
// /console/ with no host, no scheme and no way to be read as another
// origin ("//host", backslashes, control characters).
//
//fuzz:budget 40000
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/console/approvals", "//evil.test/", "/console//evil.test", "https://evil.test/console/",
		"/console/\\evil", "/console/%2f%2fevil", "/console/x?y=1", "/console/\r\nx", "/console/login", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := safeNext(in)
		if got != in && got != "/console/inventory" {
			t.Fatalf("safeNext(%q) = %q: neither the input nor the home page", in, got)
		}
		u, err := url.Parse(got)
		if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Path != got {
			t.Fatalf("safeNext(%q) = %q: parses as %+v, %v", in, got, u, err)
		}
		if !strings.HasPrefix(got, WebPrefix) || strings.Contains(got, "//") || strings.ContainsAny(got, "\\\r\n\t ") {
			t.Fatalf("safeNext(%q) = %q: leaves the console or holds a dangerous character", in, got)
		}
	})
}
