package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hardphone/hardphone/board"
)

// listsMaxAge is how old the private apt lists may be before a build runs
// apt-get update again. The kernel package is resolved from them every
// build: its ABI number changes with every security update.
const listsMaxAge = 6 * time.Hour

// kernel is an unpacked Debian kernel package in the cache.
type kernel struct {
	version string // the kernel release, e.g. 6.1.0-57-cloud-arm64
	root    string // where the .deb is unpacked
	image   string // the arm64 Image (Debian's vmlinuz is uncompressed)
	modDir  string // root/lib/modules/VERSION
}

// aptOptions keep apt away from the host's own state: a foreign
// architecture, lists and archives in the cache, no dpkg change.
func aptOptions(cache, arch string) []string {
	return []string{
		"-o", "APT::Architecture=" + arch, "-o", "APT::Architectures=" + arch,
		"-o", "Dir::State::Lists=" + filepath.Join(cache, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(cache, "apt"),
		// The cache belongs to the build user; apt's _apt sandbox user
		// cannot write it.
		"-o", "APT::Sandbox::User=root",
		"-o", "Debug::NoLocking=1",
	}
}

// errKernelNotCached: an offline build found no complete kernel in the
// cache. The QEMU tests build images inside a network namespace with no way
// out, so the kernel must be fetched before, from the host's namespace.
var errKernelNotCached = errors.New("the board's kernel is not in the cache: run `make kernel` (or `make image`) first: " +
	"the kernel is fetched outside the test's network namespace, which has no network")

// currentFile, in the board's apt cache, names the kernel release the last
// online fetch of the board's own kernel package resolved and unpacked: what
// an offline build uses. Another package of the same architecture (see
// kernelPackage) records its release in currentFile-PACKAGE.
const currentFile = "current"

// maxPackageName bounds a kernel package name given on the command line.
const maxPackageName = 64

// kernelPackage checks a kernel meta package named on the command line (a
// Debian package name: Debian Policy §5.6.1 allows lower-case
// letters, digits, '+', '-' and '.') and that it is a linux-image package,
// so it can name a file in the cache and nothing else.
func kernelPackage(name string) error {
	if len(name) > maxPackageName || !strings.HasPrefix(name, "linux-image-") {
		return fmt.Errorf("kernel package %q: want linux-image-..., at most %d characters", name, maxPackageName)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return fmt.Errorf("kernel package %q: %q is not in a Debian package name", name, c)
		}
	}
	return nil
}

// currentName is the file recording the release of package pkg: the
// board's own package keeps currentFile (the name caches already hold).
func currentName(k *board.Kernel, pkg string) string {
	if pkg == k.Package {
		return currentFile
	}
	return currentFile + "-" + pkg
}

// fetchKernel resolves the board's kernel meta package to its versioned
// package, downloads and unpacks it into the cache unless it is there, and
// runs depmod on it (the .deb ships no modules.dep). Offline, it never runs
// apt: it takes the kernel the last online fetch left, or fails with
// errKernelNotCached. pkg is the meta package: "" is the board's own, and
// another one (a kernel of the same architecture with drivers the board's
// lacks, for a test) is cached beside it.
func fetchKernel(ctx context.Context, cacheDir string, k *board.Kernel, pkg string, refresh, offline bool, log io.Writer) (*kernel, error) {
	if pkg == "" {
		pkg = k.Package
	}
	if err := kernelPackage(pkg); err != nil {
		return nil, err
	}
	cache, err := filepath.Abs(filepath.Join(cacheDir, "apt-"+k.DebArch))
	if err != nil {
		return nil, err
	}
	current := currentName(k, pkg)
	if offline {
		b, err := os.ReadFile(filepath.Join(cache, current))
		if err != nil && pkg != k.Package {
			return nil, fmt.Errorf("kernel %s in %s: %w (this one: hpctl image kernel --package %s, without --offline; make kernel-audio fetches linux-image-arm64)",
				pkg, cache, errKernelNotCached, pkg)
		}
		if err != nil {
			return nil, fmt.Errorf("kernel %s in %s: %w", pkg, cache, errKernelNotCached)
		}
		release := strings.TrimSpace(string(b))
		if release == "" || strings.ContainsAny(release, "/\\") || strings.HasPrefix(release, ".") {
			return nil, fmt.Errorf("kernel cache %s: %s holds %q, not a kernel release", cache, current, release)
		}
		kk := unpackedKernel(cache, release)
		if _, err := os.Stat(filepath.Join(kk.root, ".complete")); err != nil {
			return nil, fmt.Errorf("kernel %s in %s: %w", kk.version, cache, errKernelNotCached)
		}
		return kk, nil
	}
	for _, d := range []string{"lists/partial", "apt/archives/partial", "debs"} {
		if err := os.MkdirAll(filepath.Join(cache, d), 0o755); err != nil {
			return nil, fmt.Errorf("kernel cache: %w", err)
		}
	}
	opts := aptOptions(cache, k.DebArch)
	stamp := filepath.Join(cache, "lists", ".updated")
	if st, err := os.Stat(stamp); refresh || err != nil || time.Since(st.ModTime()) > listsMaxAge {
		fmt.Fprintf(log, "kernel: apt-get update (%s lists in %s)\n", k.DebArch, cache)
		if err := runTool(ctx, cache, nil, "apt-get", append(opts, "update")...); err != nil {
			return nil, fmt.Errorf("kernel: %w", err)
		}
		if err := os.WriteFile(stamp, nil, 0o644); err != nil {
			return nil, fmt.Errorf("kernel cache: %w", err)
		}
	}
	out, err := exec.CommandContext(ctx, "apt-cache", append(opts, "depends", pkg)...).Output()
	if err != nil {
		// apt-get update exits 0 without a network and leaves no lists.
		return nil, fmt.Errorf("kernel: apt-cache depends %s: %w (no package lists: is Debian's archive reachable from here?)", pkg, err)
	}
	meta := pkg
	pkg = ""
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Depends: "); ok && strings.HasPrefix(v, "linux-image-") {
			pkg = strings.TrimSpace(v)
			break
		}
	}
	if pkg == "" {
		return nil, fmt.Errorf("kernel: %s depends on no linux-image package:\n%s", meta, out)
	}
	if err := kernelPackage(pkg); err != nil {
		return nil, fmt.Errorf("kernel: %s: %w", meta, err)
	}
	kk := unpackedKernel(cache, strings.TrimPrefix(pkg, "linux-image-"))
	root, release := kk.root, kk.version
	if _, err := os.Stat(filepath.Join(root, ".complete")); err == nil {
		return kk, writeCurrent(cache, current, release)
	}
	fmt.Fprintf(log, "kernel: downloading %s\n", pkg)
	debs := filepath.Join(cache, "debs")
	if err := runTool(ctx, debs, nil, "apt-get", append(opts, "download", pkg)...); err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	matches, err := filepath.Glob(filepath.Join(debs, pkg+"_*.deb"))
	if err != nil || len(matches) == 0 {
		return nil, fmt.Errorf("kernel: apt-get download left no %s_*.deb in %s", pkg, debs)
	}
	if err := os.RemoveAll(root); err != nil {
		return nil, fmt.Errorf("kernel cache: %w", err)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("kernel cache: %w", err)
	}
	if err := runTool(ctx, "", nil, "dpkg-deb", "-x", matches[len(matches)-1], root); err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	if err := runTool(ctx, "", nil, "depmod", "-b", root, release); err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	if _, err := os.Stat(kk.image); err != nil {
		return nil, fmt.Errorf("kernel: %s holds no kernel image: %w", pkg, err)
	}
	if err := os.WriteFile(filepath.Join(root, ".complete"), nil, 0o644); err != nil {
		return nil, fmt.Errorf("kernel cache: %w", err)
	}
	return kk, writeCurrent(cache, current, release)
}

// unpackedKernel is where a kernel release lies in the cache.
func unpackedKernel(cache, release string) *kernel {
	root := filepath.Join(cache, "kernels", release)
	return &kernel{version: release, root: root, image: filepath.Join(root, "boot", "vmlinuz-"+release),
		modDir: filepath.Join(root, "lib", "modules", release)}
}

// writeCurrent records the release an online fetch resolved, for offline
// builds (write to a temporary name, then rename: a reader never sees half).
func writeCurrent(cache, name, release string) error {
	tmp := filepath.Join(cache, name+".tmp")
	if err := os.WriteFile(tmp, []byte(release+"\n"), 0o644); err != nil {
		return fmt.Errorf("kernel cache: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(cache, name)); err != nil {
		return fmt.Errorf("kernel cache: %w", err)
	}
	return nil
}

// module is one module file to put into the root filesystem.
type module struct {
	name string // as the board names it
	path string // the file in the unpacked package
	file string // its base name: NAME.ko or NAME.ko.xz
}

// moduleName is the kernel's name for a module file: the base name without
// .ko and compression suffix, with '-' read as '_'.
func moduleName(file string) string {
	base := filepath.Base(file)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// resolveModules finds the board's modules in modules.dep and checks that
// every dependency of each is loaded before it: PID 1 loads them in the
// board's order with finit_module, which resolves nothing.
func (k *kernel) resolveModules(want []board.Module) ([]module, error) {
	f, err := os.ReadFile(filepath.Join(k.modDir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("kernel modules: %w", err)
	}
	paths := map[string]string{}
	deps := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(f))
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n := moduleName(mod)
		paths[n] = mod
		for _, d := range strings.Fields(rest) {
			deps[n] = append(deps[n], moduleName(d))
		}
	}
	builtin, err := os.ReadFile(filepath.Join(k.modDir, "modules.builtin"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("kernel modules: %w", err)
	}
	isBuiltin := map[string]bool{}
	for _, l := range strings.Fields(string(builtin)) {
		isBuiltin[moduleName(l)] = true
	}
	loaded := map[string]bool{}
	var out []module
	for _, m := range want {
		n := moduleName(m.Name)
		if isBuiltin[n] {
			return nil, fmt.Errorf("kernel %s: module %s is built in; drop it from the board's list", k.version, m.Name)
		}
		p, ok := paths[n]
		if !ok {
			return nil, fmt.Errorf("kernel %s has no module %s", k.version, m.Name)
		}
		for _, d := range deps[n] {
			if !loaded[d] {
				return nil, fmt.Errorf("kernel %s: module %s needs %s loaded before it", k.version, m.Name, d)
			}
		}
		loaded[n] = true
		file := m.Name + strings.TrimPrefix(filepath.Base(p), strings.SplitN(filepath.Base(p), ".ko", 2)[0])
		out = append(out, module{name: m.Name, path: filepath.Join(k.modDir, p), file: file})
	}
	return out, nil
}
