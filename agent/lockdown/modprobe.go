package lockdown

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// modprobeConf is the modprobe.d(5) file that blocks the policy's modules.
// "blacklist" only stops loading by alias (hotplug); "install NAME
// /bin/false" makes an explicit modprobe fail too.
func modprobeConf(mods []string) []byte {
	if len(mods) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("# Written by hardphone lockdown from its policy; the next apply rewrites it.\n")
	for _, m := range mods {
		fmt.Fprintf(&b, "blacklist %s\ninstall %s /bin/false\n", m, m)
	}
	return []byte(b.String())
}

func (l *Lockdown) observeModprobe() (modprobeObs, error) {
	o := modprobeObs{path: l.modprobe, want: modprobeConf(l.policy.BlockModules)}
	if o.path == "" {
		return o, nil
	}
	b, err := os.ReadFile(o.path)
	switch {
	case err == nil:
		o.got, o.present = b, true
	case os.IsNotExist(err):
	default:
		return o, fmt.Errorf("observe %s: %w", o.path, err)
	}
	return o, nil
}

func (o modprobeObs) inSync() bool {
	if o.path == "" {
		return true
	}
	if o.want == nil {
		return !o.present
	}
	return o.present && bytes.Equal(o.got, o.want)
}

// writeModprobe writes (or, with no modules, removes) the block file,
// through a temporary file and a rename so modprobe never reads half of it.
func writeModprobe(path string, content []byte) error {
	if content == nil {
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("remove %s: %w", path, err)
		}
		return nil
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, ".hardphone-lockdown-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, werr := f.Write(content)
	if werr == nil {
		werr = f.Chmod(0o644)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		// The temporary file is ours and useless now.
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, werr)
	}
	return nil
}
