package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hardphone/hardphone/internal/cli"

	"github.com/hardphone/hardphone/update/bundle"
)

func cmdBundle(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("bundle: want create, info or verify")
	}
	switch args[0] {
	case "create":
		return bundleCreate(args[1:], stdout, stderr)
	case "info":
		return bundleInspect(args[1:], stdout, stderr, false)
	case "verify":
		return bundleInspect(args[1:], stdout, stderr, true)
	}
	return usagef("bundle: unknown subcommand %q, want create, info or verify", args[0])
}

func bundleCreate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bundle create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cert := fs.String("cert", "", "signer certificate (PEM; with EKU codeSigning)")
	key := fs.String("key", "", "signer private key (PEM)")
	var inter multiFlag
	fs.Var(&inter, "intermediate", "intermediate CA certificate to embed (PEM; repeatable)")
	compatible := fs.String("compatible", "", "board compatible string ([update] compatible)")
	version := fs.String("version", "", "bundle version ([update] version)")
	secver := fs.String("security-version", "", "anti-rollback security version ([meta.hardphone] security-version; a phone refuses bundles below its floor)")
	description := fs.String("description", "", "[update] description")
	build := fs.String("build", "", "[update] build")
	class := fs.String("slot-class", "rootfs", "slot class for an IMAGE given without CLASS=")
	out := fs.String("o", "", "output bundle file")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: hpctl bundle create --cert CERT --key KEY --compatible C --version V [--security-version N] [CLASS=]IMAGE... -o OUT")
		fs.PrintDefaults()
	}
	images, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	switch {
	case *cert == "" || *key == "":
		return usagef("bundle create: --cert and --key are required")
	case *compatible == "":
		return usagef("bundle create: --compatible is required")
	case *version == "":
		return usagef("bundle create: --version is required")
	case *out == "":
		return usagef("bundle create: -o is required")
	case len(images) == 0:
		return usagef("bundle create: at least one IMAGE is required")
	}
	m := &bundle.Manifest{Compatible: *compatible, Version: *version, Description: *description, Build: *build}
	if *secver != "" {
		n, err := strconv.ParseUint(*secver, 10, 64)
		if err != nil {
			return usagef("bundle create: --security-version %q: want a decimal integer", *secver)
		}
		m.SecurityVersion, m.HasSecurityVersion = n, true
	}
	files := map[string]string{}
	for _, arg := range images {
		c, path := *class, arg
		if k, v, ok := strings.Cut(arg, "="); ok {
			c, path = k, v
		}
		name := filepath.Base(path)
		if _, dup := files[name]; dup {
			return usagef("bundle create: two images named %s", name)
		}
		files[name] = path
		m.Images = append(m.Images, bundle.Image{SlotClass: c, Filename: name})
	}
	signer, err := bundle.LoadSigner(*cert, *key, inter...)
	if err != nil {
		return fmt.Errorf("bundle create: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bundle.Create(ctx, *out, m, files, signer); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created %s: compatible %q version %q security-version %d, %d image(s), verity root %x\n",
		*out, m.Compatible, m.Version, m.SecurityVersion, len(m.Images), m.Verity.Hash)
	return nil
}

// bundleReport is what info/verify print with --json.
type bundleReport struct {
	Path            string                       `json:"path"`
	Format          string                       `json:"format"`
	Compatible      string                       `json:"compatible"`
	Version         string                       `json:"version,omitempty"`
	Description     string                       `json:"description,omitempty"`
	Build           string                       `json:"build,omitempty"`
	SecurityVersion uint64                       `json:"security_version"`
	HasSecurityVer  bool                         `json:"security_version_set"`
	Verity          *verityReport                `json:"verity,omitempty"`
	Images          []imageReport                `json:"images"`
	Signer          string                       `json:"signer"`
	Chain           []string                     `json:"chain"`
	SigningTime     *time.Time                   `json:"signing_time,omitempty"`
	Purpose         string                       `json:"purpose"`
	PayloadChecked  bool                         `json:"payload_checked"`
	Meta            map[string]map[string]string `json:"meta,omitempty"`
}

type verityReport struct {
	Hash string `json:"hash"`
	Salt string `json:"salt"`
	Size int64  `json:"size"`
}

type imageReport struct {
	SlotClass string `json:"slot_class"`
	Filename  string `json:"filename"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
	Checked   bool   `json:"checked"`
}

func bundleInspect(args []string, stdout, stderr io.Writer, verify bool) error {
	name := "info"
	if verify {
		name = "verify"
	}
	fs := flag.NewFlagSet("bundle "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyring := fs.String("keyring", "", "trusted CA certificates (PEM)")
	purpose := fs.String("check-purpose", "codesign", "signer certificate rule: codesign (RAUC check-purpose=codesign) or smimesign (RAUC's default)")
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: hpctl bundle %s --keyring CA.pem [--check-purpose codesign] [--json] BUNDLE\n", name)
		fs.PrintDefaults()
	}
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	if *keyring == "" {
		return usagef("bundle %s: --keyring is required", name)
	}
	if len(pos) != 1 {
		return usagef("bundle %s: want exactly one BUNDLE", name)
	}
	p, err := bundle.ParsePurpose(*purpose)
	if err != nil {
		return usagef("bundle %s: %v", name, err)
	}
	kr, err := bundle.LoadKeyring(*keyring)
	if err != nil {
		return err
	}
	// The host's own file: no private copy of a plain payload is needed.
	b, err := bundle.OpenFile(pos[0], kr, bundle.WithPurpose(p), bundle.WithPlainInPlace())
	if err != nil {
		return err
	}
	defer b.Close()
	rep := report(pos[0], b, p)
	if verify {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := b.CheckPayload(ctx, nil); err != nil {
			return err
		}
		for i, im := range b.Manifest.Images {
			r, err := b.OpenImage(im)
			if err != nil {
				return err
			}
			_, err = r.WriteTo(io.Discard)
			r.Close()
			if err != nil {
				return err
			}
			rep.Images[i].Checked = true
		}
		rep.PayloadChecked = true
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printReport(stdout, rep)
	return nil
}

func report(path string, b *bundle.Bundle, p bundle.Purpose) bundleReport {
	m := b.Manifest
	rep := bundleReport{Path: path, Format: m.Format.String(), Compatible: m.Compatible, Version: m.Version,
		Description: m.Description, Build: m.Build, SecurityVersion: m.SecurityVersion, HasSecurityVer: m.HasSecurityVersion,
		Signer: b.Signature.Signer.Subject.String(), Purpose: p.String(), Meta: m.Meta, Images: []imageReport{}}
	if !b.Signature.SigningTime.IsZero() {
		st := b.Signature.SigningTime.UTC()
		rep.SigningTime = &st
	}
	for _, c := range b.Signature.Chain {
		rep.Chain = append(rep.Chain, c.Subject.String())
	}
	if v := m.Verity; v != nil {
		rep.Verity = &verityReport{Hash: hex.EncodeToString(v.Hash[:]), Salt: hex.EncodeToString(v.Salt), Size: v.Size}
	}
	for _, im := range m.Images {
		rep.Images = append(rep.Images, imageReport{SlotClass: im.SlotClass, Filename: im.Filename, Size: im.Size,
			SHA256: hex.EncodeToString(im.SHA256[:])})
	}
	return rep
}

func printReport(w io.Writer, r bundleReport) {
	fmt.Fprintf(w, "Bundle:           %s\n", r.Path)
	fmt.Fprintf(w, "Format:           %s\n", r.Format)
	fmt.Fprintf(w, "Compatible:       %s\n", r.Compatible)
	fmt.Fprintf(w, "Version:          %s\n", r.Version)
	if r.HasSecurityVer {
		fmt.Fprintf(w, "Security version: %d\n", r.SecurityVersion)
	} else {
		fmt.Fprintf(w, "Security version: 0 (no [meta.hardphone] security-version)\n")
	}
	if r.Verity != nil {
		fmt.Fprintf(w, "Verity:           hash %s, %d bytes of tree\n", r.Verity.Hash, r.Verity.Size)
	}
	fmt.Fprintf(w, "Signer:           %s (purpose %s)\n", r.Signer, r.Purpose)
	for i, c := range r.Chain {
		fmt.Fprintf(w, "  chain %d:        %s\n", i, c)
	}
	if r.SigningTime != nil {
		fmt.Fprintf(w, "Signed at:        %s\n", r.SigningTime.Format(time.RFC3339))
	}
	for _, im := range r.Images {
		state := ""
		if im.Checked {
			state = "  ok"
		}
		fmt.Fprintf(w, "Image [%s]:  %s, %d bytes, sha256 %s%s\n", im.SlotClass, im.Filename, im.Size, im.SHA256, state)
	}
	if r.PayloadChecked {
		fmt.Fprintln(w, "Payload:          verified")
	}
}
