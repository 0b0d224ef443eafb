package cli

import "flag"

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
