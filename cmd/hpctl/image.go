package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/hardphone/hardphone/board"
	"github.com/hardphone/hardphone/internal/cli"
	"github.com/hardphone/hardphone/update/bundle"
)

// `hpctl image build` makes everything a board needs to boot, from parts
// that are all on the build host: Debian's kernel for the board (fetched
// with private apt options into a cache), the phone binary, a root
// filesystem (an initramfs inside an ext4 slot image), the U-Boot boot
// script, the GPT disk and a signed bundle of the slot image. No step
// needs root, a loop device or a mount.

func cmdImage(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("image: want build or kernel")
	}
	switch args[0] {
	case "build":
		return imageBuild(args[1:], stdout, stderr)
	case "kernel":
		return imageKernel(args[1:], stdout, stderr)
	}
	return usagef("image: want build or kernel, not %q", args[0])
}

// imageKernel is `hpctl image kernel`: fetch the board's kernel into the
// cache and nothing else, the one step of an image build that needs the
// network (make kernel runs it before tests that build images inside a
// network namespace).
func imageKernel(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("image kernel", flag.ContinueOnError)
	fs.SetOutput(stderr)
	boardName := fs.String("board", "", "board whose kernel to fetch ("+strings.Join(board.Names(), ", ")+")")
	cache := fs.String("cache", ".cache/hpctl", "cache for the kernel package and apt lists")
	refresh := fs.Bool("refresh", false, "refresh the apt lists even if they are recent")
	offline := fs.Bool("offline", false, "run no apt: only check that the cache holds the kernel")
	pkg := fs.String("package", "", "kernel meta package to fetch instead of the board's (same architecture), e.g. linux-image-arm64 for the ALSA loopback test")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: hpctl image kernel --board NAME [--package PKG] [--cache DIR] [--refresh] [--offline]")
		fs.PrintDefaults()
	}
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("image kernel: unexpected argument %q", pos[0])
	}
	b, err := board.Lookup(*boardName)
	if err != nil {
		return usagef("image kernel: %v", err)
	}
	if b.Kernel == nil {
		return usagef("image kernel: board %s has no kernel to fetch (it runs as an ordinary program)", b.Name)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *pkg != "" {
		if err := kernelPackage(*pkg); err != nil {
			return usagef("image kernel: %v", err)
		}
	}
	k, err := fetchKernel(ctx, *cache, b.Kernel, *pkg, *refresh, *offline, stdout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "kernel: %s in %s\n", k.version, k.root)
	return nil
}

// imageOptions are the flags of `image build`.
type imageOptions struct {
	board      *board.Board
	out        string
	hardphone  string // the phone binary for the board's architecture
	cache      string // kernel cache
	refresh    bool   // apt-get update even when the lists are fresh
	offline    bool   // no apt: the kernel must be in the cache already
	config     string // agent config to ship; "" generates one
	ca         string // SIP trust anchor for a generated config
	keyring    string
	signerCert string
	signerKey  string
	user       string
	version    string
	secVersion uint64
	data       string // contents of the data partition
	slotOnly   bool
	// The fleet the generated config enrols with: server URL, the name its
	// certificate carries, its CA and the device CA (both shipped in the
	// image), and the model the vendor's manifest names.
	fleet, fleetName, fleetCA, fleetDeviceCA, fleetModel string
	// The fleet's two repositories (Uptane): the pinned root.json of the
	// vendor's image repository and of the director (both shipped in the
	// image), and where the image repository is served.
	imageRoot, directorRoot, imageRepo string
}

func imageBuild(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("image build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o imageOptions
	boardName := fs.String("board", "", "board to build for ("+strings.Join(board.Names(), ", ")+")")
	fs.StringVar(&o.out, "o", "", "output directory")
	fs.StringVar(&o.hardphone, "hardphone", "", "hardphone binary built for the board (CGO_ENABLED=0 GOARCH=...)")
	fs.StringVar(&o.cache, "cache", ".cache/hpctl", "cache for the kernel package and apt lists")
	fs.BoolVar(&o.refresh, "refresh", false, "refresh the apt lists even if they are recent")
	fs.BoolVar(&o.offline, "offline", false, "run no apt: use the kernel `hpctl image kernel` left in the cache")
	fs.StringVar(&o.config, "config", "", "agent config (TOML) to ship; default: generated for the board")
	fs.StringVar(&o.ca, "ca", "", "SIP trust anchors (PEM) for the generated config; default: the development PKI in OUT/pki")
	fs.StringVar(&o.keyring, "keyring", "", "bundle keyring (PEM); default: the development PKI's update CA")
	fs.StringVar(&o.signerCert, "signer-cert", "", "bundle signer certificate (codeSigning); default: the development PKI's")
	fs.StringVar(&o.signerKey, "signer-key", "", "bundle signer key; default: the development PKI's")
	fs.StringVar(&o.user, "user", "alice", "SIP user of the generated config (its password is the credential sip/USER)")
	fs.StringVar(&o.version, "version", "dev", "version of the slot image and its bundle")
	secver := fs.String("security-version", "1", "anti-rollback security version of the bundle")
	fs.StringVar(&o.data, "data", "", "directory whose contents become the data partition (e.g. a provisioned hardphone/ state dir)")
	fs.BoolVar(&o.slotOnly, "slot-only", false, "build only the slot image and its bundle, no disk")
	fs.StringVar(&o.fleet, "fleet", "", "fleet server the generated config enrols with (https://NAME[:PORT]); needs --fleet-ca and --fleet-device-ca")
	fs.StringVar(&o.fleetName, "fleet-server-name", "", "name the fleet server's certificate carries (default: --fleet's host)")
	fs.StringVar(&o.fleetCA, "fleet-ca", "", "the fleet server's CA (PEM), pinned in the image")
	fs.StringVar(&o.fleetDeviceCA, "fleet-device-ca", "", "the fleet's device CA (PEM), pinned in the image")
	fs.StringVar(&o.imageRoot, "image-root", "", "the image repository's root.json, pinned in the image (with --fleet, --director-root and --image-repo)")
	fs.StringVar(&o.directorRoot, "director-root", "", "the fleet director's root.json, pinned in the image")
	fs.StringVar(&o.imageRepo, "image-repo", "", "URL the phone fetches the image repository from (http(s)://HOST[:PORT]/PATH/; any server)")
	fs.StringVar(&o.fleetModel, "fleet-model", "", "the phone's model as the vendor's manifest names it (default: the board's name)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: hpctl image build --board NAME --hardphone BIN -o DIR [flags]")
		fs.PrintDefaults()
	}
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("image build: unexpected argument %q", pos[0])
	}
	if *boardName == "" || o.out == "" || o.hardphone == "" {
		return usagef("image build: --board, --hardphone and -o are required")
	}
	b, err := board.Lookup(*boardName)
	if err != nil {
		return usagef("image build: %v", err)
	}
	if b.Disk == nil || b.Kernel == nil {
		return usagef("image build: board %s has no disk image (it runs as an ordinary program)", b.Name)
	}
	o.board = b
	if o.secVersion, err = strconv.ParseUint(*secver, 10, 64); err != nil {
		return usagef("image build: --security-version %q: want a decimal integer", *secver)
	}
	if (o.signerCert == "") != (o.signerKey == "") {
		return usagef("image build: --signer-cert and --signer-key go together")
	}
	if (o.fleet != "") != (o.fleetCA != "") || (o.fleet != "") != (o.fleetDeviceCA != "") {
		return usagef("image build: --fleet, --fleet-ca and --fleet-device-ca go together")
	}
	if n := countSet(o.imageRoot, o.directorRoot, o.imageRepo); n != 0 && (n != 3 || o.fleet == "") {
		return usagef("image build: --image-root, --director-root and --image-repo go together, with --fleet")
	}
	for flag, path := range map[string]string{"--image-root": o.imageRoot, "--director-root": o.directorRoot} {
		if path == "" {
			continue
		}
		if err := checkRoot(path); err != nil {
			return fmt.Errorf("image build: %s: %w", flag, err)
		}
	}
	if o.fleet != "" && o.config != "" {
		return usagef("image build: --fleet goes into the generated config; with --config, put [provision] in it")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return buildImage(ctx, &o, stdout)
}

// imageManifest is OUT/image.json: what was built and where it lies on the
// disk, for `make qemu` and the QEMU tests.
type imageManifest struct {
	Board         string          `json:"board"`
	Compatible    string          `json:"compatible"`
	Version       string          `json:"version"`
	Security      uint64          `json:"security_version"`
	Kernel        string          `json:"kernel"`
	Disk          string          `json:"disk,omitempty"`
	Flash         string          `json:"uboot_env_flash,omitempty"`
	Slot          string          `json:"slot_image"`
	Bundle        string          `json:"bundle"`
	Keyring       string          `json:"keyring"`
	CA            string          `json:"ca,omitempty"`
	Partitions    []partitionInfo `json:"partitions,omitempty"`
	BuildSeconds  float64         `json:"build_seconds"`
	InitrdBytes   int64           `json:"initrd_bytes"`
	SlotImageSize int64           `json:"slot_image_bytes"`
}

type partitionInfo struct {
	Number int    `json:"number"`
	Name   string `json:"name"`
	Role   string `json:"role"`
	Offset int64  `json:"offset"`
	Size   int64  `json:"size"`
}

func buildImage(ctx context.Context, o *imageOptions, stdout io.Writer) error {
	start := time.Now()
	b := o.board
	// image.json names files by absolute path: make qemu and the tests
	// read it from elsewhere.
	out, err := filepath.Abs(o.out)
	if err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	o.out = out
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	for _, tool := range []string{"apt-get", "dpkg-deb", "depmod", "mkfs.ext4", "mksquashfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("image build: %s not found (make deps-qemu installs it): %w", tool, err)
		}
	}
	if err := o.defaultPKI(); err != nil {
		return err
	}
	k, err := fetchKernel(ctx, o.cache, b.Kernel, "", o.refresh, o.offline, stdout)
	if err != nil {
		return err
	}
	mods, err := k.resolveModules(b.Modules)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp(o.out, ".build-")
	if err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	defer os.RemoveAll(work)

	initrd := filepath.Join(work, "initrd")
	rootfs, err := o.rootfsFiles(mods)
	if err != nil {
		return err
	}
	if err := writeCpio(initrd, rootfs); err != nil {
		return fmt.Errorf("image build: initramfs: %w", err)
	}
	st, err := os.Stat(initrd)
	if err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	m := imageManifest{Board: b.Name, Compatible: b.Compatible, Version: o.version, Security: o.secVersion,
		Kernel: k.version, Keyring: o.keyring, CA: o.ca, InitrdBytes: st.Size()}
	slot := filepath.Join(o.out, "rootfs.ext4")
	if m.SlotImageSize, err = makeSlotImage(ctx, work, slot, k.image, initrd, b); err != nil {
		return err
	}
	m.Slot = slot
	m.Bundle = filepath.Join(o.out, "update.raucb")
	if err := o.makeBundle(ctx, slot, m.Bundle); err != nil {
		return err
	}
	if !o.slotOnly {
		if err := o.makeDisk(ctx, work, slot, &m); err != nil {
			return err
		}
	}
	m.BuildSeconds = time.Since(start).Seconds()
	j, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.out, "image.json"), append(j, '\n'), 0o644); err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	what := "disk " + m.Disk
	if o.slotOnly {
		what = "slot image " + slot
	}
	fmt.Fprintf(stdout, "built %s for %s (kernel %s, version %s, security version %d) and bundle %s in %.1fs\n",
		what, b.Name, k.version, o.version, o.secVersion, m.Bundle, m.BuildSeconds)
	return nil
}

func (o *imageOptions) makeBundle(ctx context.Context, slot, out string) error {
	signer, err := bundle.LoadSigner(o.signerCert, o.signerKey)
	if err != nil {
		return fmt.Errorf("image build: bundle signer: %w", err)
	}
	m := &bundle.Manifest{Compatible: o.board.Compatible, Version: o.version,
		Description:     "hardphone " + o.board.Name + " root slot",
		Images:          []bundle.Image{{SlotClass: "rootfs", Filename: filepath.Base(slot)}},
		SecurityVersion: o.secVersion, HasSecurityVersion: true}
	if err := bundle.Create(ctx, out, m, map[string]string{filepath.Base(slot): slot}, signer); err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	return nil
}

// run runs a build tool and returns its error with its output.
func runTool(ctx context.Context, dir string, stdin io.Reader, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// countSet is how many of vs are not "".
func countSet(vs ...string) int {
	n := 0
	for _, v := range vs {
		if v != "" {
			n++
		}
	}
	return n
}

// maxRootBytes bounds a pinned root.json read at build time.
const maxRootBytes = 1 << 20

// checkRoot refuses a pinned root that is not TUF root metadata meeting
// its own threshold of signatures (a phone would refuse it at every boot).
// Expiry is not checked: the phone's clock and its first update decide.
func checkRoot(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRootBytes+1))
	if err != nil {
		return err
	}
	if len(b) > maxRootBytes {
		return fmt.Errorf("%s: larger than %d bytes", path, maxRootBytes)
	}
	root, err := metadata.Root().FromBytes(b)
	if err != nil {
		return fmt.Errorf("%s: not TUF root metadata: %w", path, err)
	}
	if err := root.VerifyDelegate(metadata.ROOT, root); err != nil {
		return fmt.Errorf("%s: not signed by its own root keys: %w", path, err)
	}
	return nil
}
