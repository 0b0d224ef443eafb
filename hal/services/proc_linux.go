package services

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// commLen is TASK_COMM_LEN less its NUL: the kernel cuts comm to 15 bytes.
const commLen = 15

// FindProcesses returns the processes whose comm or executable name is one
// of names. Comm is what the process calls itself (it can change it);
// the executable name is what it was started from; either one matching is
// enough.
func FindProcesses(names []string) ([]Process, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var out []Process
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		b, err := os.ReadFile(filepath.Join(dir, "comm"))
		if err != nil {
			continue // exited meanwhile
		}
		comm := strings.TrimSuffix(string(b), "\n")
		if zombie(dir) {
			continue // exited, not yet reaped: it runs nothing
		}
		exe, _ := os.Readlink(filepath.Join(dir, "exe")) // kernel threads have none
		exe = strings.TrimSuffix(filepath.Base(exe), " (deleted)")
		if slices.ContainsFunc(names, func(n string) bool {
			return comm == n || (len(n) > commLen && comm == n[:commLen]) || (exe != "." && exe == n)
		}) {
			out = append(out, Process{PID: pid, Comm: comm})
		}
	}
	return out, nil
}

// zombie reports whether /proc/PID/stat shows state Z (or X). The state
// follows the comm in parentheses, which may itself contain ") ".
func zombie(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] == 'Z' || b[i+2] == 'X'
}
