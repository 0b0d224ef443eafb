package lockdown

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// loadedModules returns the names in /proc/modules, in the kernel's
// spelling.
func loadedModules() ([]string, error) {
	f, err := os.Open("/proc/modules")
	if err != nil {
		if os.IsNotExist(err) { // a kernel without module support
			return nil, nil
		}
		return nil, fmt.Errorf("read /proc/modules: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name, _, ok := strings.Cut(sc.Text(), " "); ok {
			out = append(out, name)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read /proc/modules: %w", err)
	}
	return out, nil
}

// unloadModule removes a module, failing rather than waiting when it is in
// use (O_NONBLOCK, as rmmod does).
func unloadModule(name string) error {
	if err := unix.DeleteModule(name, unix.O_NONBLOCK); err != nil {
		return fmt.Errorf("unload module %s: %w", name, err)
	}
	return nil
}
