package cli

import (
	"flag"
	"io"
)

// ErrHelp is returned by Parse when the user asked for help; the usage went
// to stdout and the command should exit 0.
var ErrHelp = flag.ErrHelp

// Parse parses fs's flags, which may come before, between or after the
// positional arguments (`install BUNDLE --force`), and returns the
// positional arguments; "--" ends the flags. -h, -help or --help anywhere
// before "--" prints fs.Usage to stdout and returns ErrHelp. Any other
// mistake prints the flag package's message and the usage to fs's output.
func Parse(fs *flag.FlagSet, args []string, stdout io.Writer) ([]string, error) {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			out := fs.Output()
			fs.SetOutput(stdout)
			fs.Usage()
			fs.SetOutput(out)
			return nil, ErrHelp
		}
	}
	return ParseInterleaved(fs, args)
}

// ParseInterleaved parses flags that may come before, between or after the
// positional arguments (`create IMAGE... -o OUT`, `install BUNDLE --force`),
// which flag.Parse alone does not allow; "--" ends the flags.
func ParseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

// NewFlagSet returns a flag set that reports mistakes to stderr and whose
// usage is the line usage followed by the flags' defaults.
func NewFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		io.WriteString(fs.Output(), "usage: "+usage+"\n")
		fs.PrintDefaults()
	}
	return fs
}
