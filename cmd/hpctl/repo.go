package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/hardphone/hardphone/fleet/tufrepo"
	"github.com/hardphone/hardphone/internal/cli"
	"github.com/hardphone/hardphone/update/bundle"
)

const repoUsage = `hpctl repo: the TUF repositories phones follow (image repository; the director's root)

  hpctl repo keygen FILE [--type ecdsa-p256|ed25519]
  hpctl repo init DIR --root-keys K1,K2 --root-threshold N --targets-key K[,K] [--targets-threshold N]
                      --snapshot-key K --timestamp-key K [--expires root=365d,targets=90d,snapshot=7d,timestamp=1d]
  hpctl repo add DIR BUNDLE --keyring CA.pem --key TARGETS_KEY [--name NAME] [--snapshot-key K --timestamp-key K]
  hpctl repo remove DIR NAME --key TARGETS_KEY [--snapshot-key K --timestamp-key K]
  hpctl repo sign DIR --role root|targets --key K [--renew] [--snapshot-key K --timestamp-key K]
  hpctl repo rotate-root DIR --new-keys K1,K2 [--threshold N] --old-keys O1,O2
                      [--set-targets K,K --set-targets-threshold N] [--set-snapshot K] [--set-timestamp K]
                      [--snapshot-key K --timestamp-key K]
  hpctl repo publish DIR --snapshot-key K --timestamp-key K
  hpctl repo timestamp DIR --key TIMESTAMP_KEY [--snapshot-key K]
  hpctl repo info DIR
  hpctl repo discard DIR --role root|targets

Key lists take files, comma-separated or repeated: a private key file (PKCS#8 PEM, mode 0600)
signs, a public one (FILE.pub) only names a role's key. DIR/public is the document root to serve.
Changes to root and targets are staged until they have their thresholds; each holder of a key adds
a signature with "sign", and the change is published (new snapshot and timestamp) as soon as the
thresholds are met and the snapshot and timestamp keys are given.`

func cmdRepo(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("repo: want a subcommand\n%s", repoUsage)
	}
	cmds := map[string]func([]string, io.Writer, io.Writer) error{
		"keygen": repoKeygen, "init": repoInit, "add": repoAdd, "remove": repoRemove, "sign": repoSign,
		"rotate-root": repoRotate, "publish": repoPublish, "timestamp": repoTimestamp, "info": repoInfo, "discard": repoDiscard,
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stdout, repoUsage)
		return nil
	}
	f, ok := cmds[args[0]]
	if !ok {
		return usagef("repo: unknown subcommand %q\n%s", args[0], repoUsage)
	}
	return f(args[1:], stdout, stderr)
}

// keyList collects key files from repeated, comma-separated flags.
type keyList []string

func (k *keyList) String() string { return strings.Join(*k, ",") }
func (k *keyList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*k = append(*k, p)
		}
	}
	return nil
}

// loadAny loads a key file as private when it holds a private key (the
// 0600 rule applies), else as public.
func loadAny(path string) (*tufrepo.Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	isPrivate := bytes.Contains(b, []byte("PRIVATE KEY"))
	clear(b)
	if isPrivate {
		return tufrepo.LoadKey(path)
	}
	return tufrepo.LoadPublicKey(path)
}

func loadKeys(paths []string, private bool) ([]*tufrepo.Key, error) {
	var ks []*tufrepo.Key
	for _, p := range paths {
		var (
			k   *tufrepo.Key
			err error
		)
		if private {
			k, err = tufrepo.LoadKey(p)
		} else {
			k, err = loadAny(p)
		}
		if err != nil {
			return nil, err
		}
		ks = append(ks, k)
	}
	return ks, nil
}

// publishFlags are the online keys a command publishes with.
type publishFlags struct {
	snapshot, timestamp keyList
}

func (p *publishFlags) register(fs *flag.FlagSet) {
	fs.Var(&p.snapshot, "snapshot-key", "snapshot key(s) to publish with (private; comma-separated or repeated)")
	fs.Var(&p.timestamp, "timestamp-key", "timestamp key(s) to publish with (private)")
}

func (p *publishFlags) keys() (tufrepo.SigningKeys, error) {
	s, err := loadKeys(p.snapshot, true)
	if err != nil {
		return tufrepo.SigningKeys{}, err
	}
	t, err := loadKeys(p.timestamp, true)
	if err != nil {
		return tufrepo.SigningKeys{}, err
	}
	return tufrepo.SigningKeys{Snapshot: s, Timestamp: t}, nil
}

// tryPublish publishes what is staged if it can: a missing threshold is
// reported as pending, not as a failure (strict makes it one).
func tryPublish(r *tufrepo.Repo, p *publishFlags, stdout io.Writer, strict bool) error {
	keys, err := p.keys()
	if err != nil {
		return err
	}
	pub, err := r.Publish(keys)
	var te *tufrepo.ThresholdError
	switch {
	case err == nil:
		fmt.Fprintf(stdout, "published %s\n", pub)
		return nil
	case errors.As(err, &te) && !strict:
		fmt.Fprintf(stdout, "staged, not published: %v\n", te)
		switch te.Role {
		case tufrepo.RoleRoot, tufrepo.RoleTargets:
			fmt.Fprintf(stdout, "  next: hpctl repo sign %s --role %s --key KEY (by another %s key holder)\n", r.Dir(), te.Role, te.Role)
		default:
			fmt.Fprintf(stdout, "  next: hpctl repo publish %s --snapshot-key K --timestamp-key K\n", r.Dir())
		}
		return nil
	case errors.Is(err, tufrepo.ErrNothingStaged) && !strict:
		return nil
	}
	return err
}

func repoKeygen(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("repo keygen", "hpctl repo keygen FILE [--type ecdsa-p256|ed25519]", stderr)
	typ := fs.String("type", tufrepo.AlgECDSAP256, "key type: ecdsa-p256 or ed25519")
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("repo keygen: want one FILE")
	}
	k, err := tufrepo.GenerateKey(pos[0], *typ)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (private, 0600) and %s.pub: key ID %s\n", pos[0], pos[0], k.ID())
	return nil
}

func repoInit(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("repo init", "hpctl repo init DIR --root-keys K1,K2 --root-threshold N --targets-key K --snapshot-key K --timestamp-key K", stderr)
	var root, targets, snapshot, timestamp keyList
	fs.Var(&root, "root-keys", "root key files (private ones sign root v1)")
	rootTh := fs.Int("root-threshold", 1, "root signatures required")
	fs.Var(&targets, "targets-key", "targets key files (private ones sign targets v1)")
	targetsTh := fs.Int("targets-threshold", 1, "targets signatures required")
	fs.Var(&snapshot, "snapshot-key", "snapshot key file(s)")
	snapTh := fs.Int("snapshot-threshold", 1, "snapshot signatures required")
	fs.Var(&timestamp, "timestamp-key", "timestamp key file(s)")
	tsTh := fs.Int("timestamp-threshold", 1, "timestamp signatures required")
	expires := fs.String("expires", "", "role lifetimes, e.g. root=365d,targets=90d,snapshot=7d,timestamp=1d")
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("repo init: want one DIR")
	}
	if len(root) == 0 || len(targets) == 0 || len(snapshot) == 0 || len(timestamp) == 0 {
		return usagef("repo init: --root-keys, --targets-key, --snapshot-key and --timestamp-key are required")
	}
	life, err := tufrepo.ParseLifetimes(*expires, tufrepo.DefaultLifetimes())
	if err != nil {
		return usagef("repo init: --expires: %v", err)
	}
	p := tufrepo.InitParams{Lifetimes: life}
	for _, x := range []struct {
		files keyList
		th    int
		dst   *tufrepo.RoleKeys
	}{{root, *rootTh, &p.Root}, {targets, *targetsTh, &p.Targets}, {snapshot, *snapTh, &p.Snapshot}, {timestamp, *tsTh, &p.Timestamp}} {
		ks, err := loadKeys(x.files, false)
		if err != nil {
			return err
		}
		*x.dst = tufrepo.RoleKeys{Keys: ks, Threshold: x.th}
	}
	r, err := tufrepo.Init(pos[0], p)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "initialised %s (serve %s)\n", r.Dir(), r.PublicDir())
	pf := onlyPrivate{publishFlags{snapshot: snapshot, timestamp: timestamp}}.flags()
	return tryPublish(r, &pf, stdout, false)
}

// onlyPrivate keeps the private files of a key list (init takes public
// and private files alike; only private ones can publish).
type onlyPrivate struct{ publishFlags }

func (o onlyPrivate) flags() publishFlags {
	filter := func(l keyList) keyList {
		var out keyList
		for _, p := range l {
			if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte("PRIVATE KEY")) {
				out = append(out, p)
			}
		}
		return out
	}
	return publishFlags{snapshot: filter(o.snapshot), timestamp: filter(o.timestamp)}
}

func openRepo(dir string) (*tufrepo.Repo, error) { return tufrepo.Open(dir) }

func repoAdd(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("repo add", "hpctl repo add DIR BUNDLE --keyring CA.pem --key TARGETS_KEY [--name NAME] [--snapshot-key K --timestamp-key K]", stderr)
	var keys keyList
	fs.Var(&keys, "key", "targets key(s) that sign (private)")
	keyring := fs.String("keyring", "", "the bundle keyring (PEM CA certificates, as the phones have it)")
	purpose := fs.String("check-purpose", "", "certificate purpose: codesign (default) or smimesign")
	name := fs.String("name", "", "target name (default: the bundle's file name)")
	var pf publishFlags
	pf.register(fs)
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("repo add: want DIR and BUNDLE")
	}
	if *keyring == "" {
		return usagef("repo add: --keyring is required: the bundle is verified before it is listed")
	}
	pp, err := bundle.ParsePurpose(*purpose)
	if err != nil {
		return usagef("repo add: %v", err)
	}
	kr, err := bundle.LoadKeyring(*keyring)
	if err != nil {
		return err
	}
	signers, err := loadKeys(keys, true)
	if err != nil {
		return err
	}
	r, err := openRepo(pos[0])
	if err != nil {
		return err
	}
	fw, err := r.AddBundle(pos[1], *name, kr, signers, bundle.WithPurpose(pp))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "staged target %s: %d bytes, sha256 %x, compatible %q, version %q, security version %d (served at %s)\n",
		fw.Name, fw.Length, fw.SHA256, fw.Compatible, fw.Version, fw.SecurityVersion, fw.Path())
	return tryPublish(r, &pf, stdout, false)
}

func repoRemove(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("repo remove", "hpctl repo remove DIR NAME --key TARGETS_KEY [--snapshot-key K --timestamp-key K]", stderr)
	var keys keyList
	fs.Var(&keys, "key", "targets key(s) that sign (private)")
	var pf publishFlags
	pf.register(fs)
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("repo remove: want DIR and NAME")
	}
	signers, err := loadKeys(keys, true)
	if err != nil {
		return err
	}
	r, err := openRepo(pos[0])
	if err != nil {
		return err
	}
	if err := r.RemoveTarget(pos[1], signers); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "staged removal of %s\n", pos[1])
	return tryPublish(r, &pf, stdout, false)
}

func repoSign(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("repo sign", "hpctl repo sign DIR --role root|targets --key K [--renew] [--snapshot-key K --timestamp-key K]", stderr)
	role := fs.String("role", "", "root or targets")
	var keys keyList
	fs.Var(&keys, "key", "key(s) that sign (private)")
	renew := fs.Bool("renew", false, "stage the next version of the published role with a fresh expiry first")
	var pf publishFlags
	pf.register(fs)
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *role == "" || len(keys) == 0 {
		return usagef("repo sign: want DIR, --role and --key")
	}
	signers, err := loadKeys(keys, true)
	if err != nil {
		return err
	}
	r, err := openRepo(pos[0])
	if err != nil {
		return err
	}
	if *renew {
		if err := r.Renew(*role, signers); err != nil {
			return err
		}
	} else {
		for _, k := range signers {
			if err := r.Sign(*role, k); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(stdout, "signed staged %s with %d key(s)\n", *role, len(signers))
	return tryPublish(r, &pf, stdout, false)
}

func repoRotate(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("repo rotate-root", "hpctl repo rotate-root DIR --new-keys K1,K2 [--threshold N] --old-keys O1,O2 [--set-targets K ...]", stderr)
	var newKeys, oldKeys, setTargets, setSnapshot, setTimestamp keyList
	fs.Var(&newKeys, "new-keys", "the new root keys (private ones sign the new root)")
	threshold := fs.Int("threshold", 0, "root signatures the new root requires (default: as many as now, at most the new keys)")
	fs.Var(&oldKeys, "old-keys", "current root keys that sign the new root (private)")
	fs.Var(&setTargets, "set-targets", "replace the targets keys")
	targetsTh := fs.Int("set-targets-threshold", 1, "threshold for --set-targets")
	fs.Var(&setSnapshot, "set-snapshot", "replace the snapshot keys")
	snapTh := fs.Int("set-snapshot-threshold", 1, "threshold for --set-snapshot")
	fs.Var(&setTimestamp, "set-timestamp", "replace the timestamp keys")
	tsTh := fs.Int("set-timestamp-threshold", 1, "threshold for --set-timestamp")
	var pf publishFlags
	pf.register(fs)
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("repo rotate-root: want one DIR")
	}
	r, err := openRepo(pos[0])
	if err != nil {
		return err
	}
	var rot tufrepo.Rotation
	var signers []*tufrepo.Key
	if len(newKeys) > 0 {
		ks, err := loadKeys(newKeys, false)
		if err != nil {
			return err
		}
		th := *threshold
		if th == 0 {
			th = currentRootThreshold(r)
			th = min(max(th, 1), len(ks))
		}
		rot.Root = &tufrepo.RoleKeys{Keys: ks, Threshold: th}
		for _, k := range ks {
			if k.Private() {
				signers = append(signers, k)
			}
		}
	}
	old, err := loadKeys(oldKeys, true)
	if err != nil {
		return err
	}
	signers = append(signers, old...)
	for _, x := range []struct {
		files keyList
		th    int
		dst   **tufrepo.RoleKeys
	}{{setTargets, *targetsTh, &rot.Targets}, {setSnapshot, *snapTh, &rot.Snapshot}, {setTimestamp, *tsTh, &rot.Timestamp}} {
		if len(x.files) == 0 {
			continue
		}
		ks, err := loadKeys(x.files, false)
		if err != nil {
			return err
		}
		*x.dst = &tufrepo.RoleKeys{Keys: ks, Threshold: x.th}
	}
	if err := r.RotateRoot(rot, signers); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "staged the next root, signed by %d key(s)\n", len(signers))
	return tryPublish(r, &pf, stdout, false)
}

func currentRootThreshold(r *tufrepo.Repo) int {
	st, err := r.Status()
	if err != nil {
		return 1
	}
	for _, s := range st {
		if s.Role == tufrepo.RoleRoot {
			return s.Threshold
		}
	}
	return 1
}

func repoPublish(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("repo publish", "hpctl repo publish DIR --snapshot-key K --timestamp-key K", stderr)
	var pf publishFlags
	pf.register(fs)
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("repo publish: want one DIR")
	}
	r, err := openRepo(pos[0])
	if err != nil {
		return err
	}
	return tryPublish(r, &pf, stdout, true)
}

func repoTimestamp(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("repo timestamp", "hpctl repo timestamp DIR --key TIMESTAMP_KEY [--snapshot-key K]", stderr)
	var keys, snap keyList
	fs.Var(&keys, "key", "timestamp key(s) (private)")
	fs.Var(&snap, "snapshot-key", "also renew the snapshot with these key(s)")
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 || len(keys) == 0 {
		return usagef("repo timestamp: want DIR and --key")
	}
	pf := publishFlags{snapshot: snap, timestamp: keys}
	sk, err := pf.keys()
	if err != nil {
		return err
	}
	r, err := openRepo(pos[0])
	if err != nil {
		return err
	}
	pub, err := r.Timestamp(sk)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "published %s\n", pub)
	return nil
}

func repoInfo(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("repo info", "hpctl repo info DIR", stderr)
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("repo info: want one DIR")
	}
	r, err := openRepo(pos[0])
	if err != nil {
		return err
	}
	st, err := r.Status()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%-10s %8s  %-21s %s\n", "role", "version", "expires", "keys")
	for _, s := range st {
		v := "-"
		if s.Version > 0 {
			v = strconv.FormatInt(s.Version, 10)
		}
		line := fmt.Sprintf("%-10s %8s  %-21s %d of %d", s.Role, v, s.Expires, s.Threshold, s.Keys)
		if s.Staged {
			line += fmt.Sprintf("  (staged: %d signature(s))", s.Signatures)
		}
		fmt.Fprintln(stdout, line)
	}
	ts, err := r.Targets()
	if err == nil {
		for _, fw := range ts {
			fmt.Fprintf(stdout, "target %s: %d bytes, sha256 %x, compatible %q, version %q, security version %d\n",
				fw.Name, fw.Length, fw.SHA256, fw.Compatible, fw.Version, fw.SecurityVersion)
		}
	}
	return nil
}

func repoDiscard(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("repo discard", "hpctl repo discard DIR --role root|targets", stderr)
	role := fs.String("role", "", "root or targets")
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *role == "" {
		return usagef("repo discard: want DIR and --role")
	}
	r, err := openRepo(pos[0])
	if err != nil {
		return err
	}
	if err := r.Discard(*role); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "discarded staged %s\n", *role)
	return nil
}
