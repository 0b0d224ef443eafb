package tufrepo

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// writeAtomic replaces path with data: a temporary file in the same
// directory, synced, renamed over path, and the directory synced, so a
// reader (an HTTP server) sees the old file or the new one, never part of
// one, and a crash leaves one of them.
func writeAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := newerMtime(tmp, path); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return syncDir(dir)
}

// newerMtime gives tmp a modification time at least one second after
// that of the file it replaces. Static servers derive their validators
// from it at one-second resolution (nginx's ETag is hex(mtime seconds) "-"
// hex(size)): a timestamp.json re-signed within the same second at the
// same length would otherwise keep its ETag, and a client asking with
// If-None-Match would be told, wrongly, that nothing changed.
func newerMtime(tmp, path string) error {
	old, err := os.Stat(path)
	if err != nil {
		return nil // nothing replaced
	}
	t := time.Now()
	if t.Unix() <= old.ModTime().Unix() {
		t = time.Unix(old.ModTime().Unix()+1, 0)
	}
	return os.Chtimes(tmp, t, t)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// readBounded reads a file of at most max bytes.
func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return b, nil
}

// Target names are TUF target paths (specification §4.5: "TARGETPATH ... a
// path to a file that is relative to a mirror's base URL of targets"). They
// become file names on servers and phones, so they are held to a safe form:
// 1..MaxTargetName bytes of slash-separated elements of [A-Za-z0-9._+-],
// no element empty, "." or "..", none starting with a dot.
const MaxTargetName = 200

var targetElem = regexp.MustCompile(`^[A-Za-z0-9_+-][A-Za-z0-9._+-]*$`)

// CheckTargetName says whether name is a target name this package writes
// and the phone accepts.
func CheckTargetName(name string) error {
	if name == "" || len(name) > MaxTargetName {
		return fmt.Errorf("%w: %q: want 1..%d bytes", errBadName, name, MaxTargetName)
	}
	for _, e := range strings.Split(name, "/") {
		if !targetElem.MatchString(e) {
			return fmt.Errorf("%w: %q: element %q", errBadName, name, e)
		}
	}
	return nil
}

// MaxDeviceID bounds a device ID; fleet/store's IDs ("dev-" and 32 hex)
// fit.
const MaxDeviceID = 64

// CheckDeviceID accepts 1..MaxDeviceID bytes of [A-Za-z0-9._-] starting
// with a letter or digit: it names a directory on the server.
func CheckDeviceID(id string) error {
	if id == "" || len(id) > MaxDeviceID {
		return fmt.Errorf("%w: %q: want 1..%d bytes", errBadDeviceID, id, MaxDeviceID)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return fmt.Errorf("%w: %q: byte %d (0x%02x)", errBadDeviceID, id, i, c)
		}
	}
	return nil
}

// consistentTargetPath is where a target file lives with consistent
// snapshots (specification §5.7.3 client side, §6.2 repository side):
// "targets/" + dir + "/" + hex(sha256) + "." + base name.
func consistentTargetPath(name string, sha256hex string) string {
	dir, base := "", name
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		dir, base = name[:i+1], name[i+1:]
	}
	return "targets/" + dir + sha256hex + "." + base
}
