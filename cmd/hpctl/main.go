package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprintln(w, `usage: hpctl <command> [flags]

commands:
  bundle create   make a signed RAUC verity bundle from images
  bundle info     show a bundle's verified manifest and signer
  bundle verify   check a bundle's signature and every payload byte
  image build     make a board's disk image, slot image and bundle
  image kernel    fetch a board's kernel into the cache (the only step that needs the network)
  enrol           factory station: enrol a phone in the fleet over its TPM
  fleet           the fleet: init its PKI, import devices, inventory, show,
                  revoke, retire (hpctl fleet help)
  repo ...        the TUF repositories phones follow: keys, targets, signatures, rotation (hpctl repo help)`)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	var err error
	switch args[0] {
	case "bundle":
		err = cmdBundle(args[1:], stdout, stderr)
	case "image":
		err = cmdImage(args[1:], stdout, stderr)
	case "fleet":
		err = cmdFleet(args[1:], stdout, stderr)
	case "enrol":
		err = cmdEnrol(args[1:], stdout, stderr)
	case "repo":
		err = cmdRepo(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "hpctl: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "hpctl: %v\n", err)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "hpctl: %v\n", err)
		return 1
	}
	return 0
}

// usageError is a mistake on the command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// multiFlag collects a repeated string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return fmt.Sprint(*m) }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
