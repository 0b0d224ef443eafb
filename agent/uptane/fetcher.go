package uptane

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// Fetcher gets one file of a repository. name is relative to the
// repository's base ("timestamp.json", "4.root.json",
// "targets/<sha256>.config.toml"). It must return at most max bytes: a
// longer file is an error wrapping ErrTooLarge, a file the server does not
// have one wrapping ErrNotFound. The transport is not trusted: every byte
// is verified against signed metadata, and the client checks the length
// again.
type Fetcher interface {
	Fetch(ctx context.Context, name string, max int64) ([]byte, error)
}

// HTTPFetcher fetches over HTTP(S) with the client it is given (the
// phone's mutual-TLS client; plain HTTP works too, the transport being
// untrusted by design). It remembers the ETag of timestamp.json and asks
// with If-None-Match, so an unchanged poll costs a 304 and no body.
type HTTPFetcher struct {
	client *http.Client
	base   *url.URL

	mu   sync.Mutex // guards etag and body
	etag string
	body []byte // timestamp.json as last received with etag
}

// NewHTTPFetcher fetches files under baseURL (http or https; a trailing
// slash is added).
func NewHTTPFetcher(client *http.Client, baseURL string) (*HTTPFetcher, error) {
	if client == nil {
		return nil, fmt.Errorf("http fetcher: nil client")
	}
	if !strings.HasSuffix(baseURL, "/") {
		baseURL += "/"
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("http fetcher: base URL: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("http fetcher: base URL %q: want http(s)://host/...", baseURL)
	}
	return &HTTPFetcher{client: client, base: u}, nil
}

const etagName = "timestamp.json"

// maxETag bounds a remembered ETag.
const maxETag = 256

// maxErrorBody bounds what is read of a non-200 response.
const maxErrorBody = 4 << 10

// Fetch implements Fetcher.
func (f *HTTPFetcher) Fetch(ctx context.Context, name string, max int64) ([]byte, error) {
	if err := checkFetchName(name); err != nil {
		return nil, fmt.Errorf("fetch %q: %w", name, err)
	}
	u := f.base.JoinPath(strings.Split(name, "/")...)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", name, err)
	}
	if name == etagName {
		f.mu.Lock()
		if f.etag != "" {
			req.Header.Set("If-None-Match", f.etag)
		}
		f.mu.Unlock()
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// A short error page is read to its end so the connection can
		// carry the next request; a long one is not worth it.
		_, _ = io.CopyN(io.Discard, resp.Body, maxErrorBody) // best effort: it only decides connection reuse
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified:
		f.mu.Lock()
		body := f.body
		f.mu.Unlock()
		if name != etagName || body == nil {
			return nil, fmt.Errorf("fetch %s: 304 Not Modified to a request without If-None-Match", name)
		}
		if int64(len(body)) > max {
			return nil, fmt.Errorf("fetch %s: %d bytes, want at most %d: %w", name, len(body), max, ErrTooLarge)
		}
		return append([]byte(nil), body...), nil
	case http.StatusNotFound, http.StatusGone:
		return nil, fmt.Errorf("fetch %s: %s: %w", name, resp.Status, ErrNotFound)
	default:
		return nil, fmt.Errorf("fetch %s: %s", name, resp.Status)
	}
	if cl := resp.Header.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n > max {
			return nil, fmt.Errorf("fetch %s: Content-Length %d, want at most %d: %w", name, n, max, ErrTooLarge)
		}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", name, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("fetch %s: more than %d bytes: %w", name, max, ErrTooLarge)
	}
	if name == etagName {
		tag := resp.Header.Get("ETag")
		f.mu.Lock()
		if tag != "" && len(tag) <= maxETag {
			f.etag, f.body = tag, append([]byte(nil), b...)
		} else {
			f.etag, f.body = "", nil
		}
		f.mu.Unlock()
	}
	return b, nil
}

// checkFetchName accepts the names the client asks for: slash-separated
// elements of [A-Za-z0-9._+-], none empty, "." or "..".
func checkFetchName(name string) error {
	if name == "" || len(name) > maxTargetName+80 {
		return errBadName
	}
	for _, e := range strings.Split(name, "/") {
		if e == "" || e == "." || e == ".." {
			return errBadName
		}
		for i := 0; i < len(e); i++ {
			if !nameByte(e[i]) {
				return errBadName
			}
		}
	}
	return nil
}
