package lockdown

import (
	"strconv"
	"strings"
)

// The TOML decoder reports lines for syntax errors only. Every other error
// in a policy names a key path ("listener[1].port"), and keyLines maps those
// paths back to the line that defines them, so that an error can say where
// to look. It is a small scanner of its own: it knows table headers, arrays
// of tables, dotted and quoted keys, and skips over multi-line strings and
// arrays; keys inside inline tables resolve to the line of the table's key.
// It only ever runs on input the TOML decoder has already accepted.

// bareKey reports whether s can be written as a bare TOML key.
func bareKey(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// seg renders one key segment the way paths are written in messages.
func seg(s string) string {
	if bareKey(s) {
		return s
	}
	return strconv.Quote(s)
}

// join appends key segments to a path.
func join(path string, segs ...string) string {
	for _, s := range segs {
		if path != "" {
			path += "."
		}
		path += seg(s)
	}
	return path
}

// index appends an array index to a path.
func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// parent strips the last segment or index of a path; "" at the top.
func parent(path string) string {
	depth := 0
	inQuote := false
	for i := len(path) - 1; i >= 0; i-- {
		c := path[i]
		switch {
		case c == '"' && (i == 0 || path[i-1] != '\\'):
			inQuote = !inQuote
		case inQuote:
		case c == ']':
			depth++
		case c == '[':
			depth--
			if depth == 0 {
				return path[:i]
			}
		case c == '.' && depth == 0:
			return path[:i]
		}
	}
	return ""
}

// lineOf returns the line that defines path, or of its nearest ancestor
// that has one; 0 when none has.
func lineOf(lines map[string]int, path string) int {
	for p := path; p != ""; p = parent(p) {
		if n, ok := lines[p]; ok {
			return n
		}
	}
	return 0
}

// scanner carries multi-line state from one line to the next.
type scanner struct {
	multi string // `"""` or `'''` while inside a multi-line string
	depth int    // open [ and { outside strings
}

// scan consumes one line (or the rest of one) of value text.
func (s *scanner) scan(line string) {
	for i := 0; i < len(line); i++ {
		if s.multi != "" {
			if strings.HasPrefix(line[i:], s.multi) {
				if s.multi == `"""` && backslashes(line, i)%2 == 1 {
					continue // \" is an escaped quote
				}
				i += len(s.multi) - 1
				// A closing delimiter may carry up to two more quotes.
				for i+1 < len(line) && line[i+1] == s.multi[0] {
					i++
				}
				s.multi = ""
			}
			continue
		}
		switch c := line[i]; c {
		case '#':
			return
		case '[', '{':
			s.depth++
		case ']', '}':
			if s.depth > 0 {
				s.depth--
			}
		case '"', '\'':
			delim := strings.Repeat(string(c), 3)
			if strings.HasPrefix(line[i:], delim) {
				s.multi = delim
				i += 2
				continue
			}
			j := i + 1
			for ; j < len(line); j++ {
				if c == '"' && line[j] == '\\' {
					j++
					continue
				}
				if line[j] == c {
					break
				}
			}
			i = j
		}
	}
}

// backslashes counts the backslashes right before line[i].
func backslashes(line string, i int) int {
	n := 0
	for i--; i >= 0 && line[i] == '\\'; i-- {
		n++
	}
	return n
}

// parseKey reads a dotted key from the start of s up to the terminator
// (`=`, `]` or `]]`) and returns its segments and the text after the
// terminator.
func parseKey(s, term string) ([]string, string, bool) {
	var segs []string
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return nil, "", false
		}
		var k string
		switch s[0] {
		case '"':
			j := 1
			for ; j < len(s); j++ {
				if s[j] == '\\' {
					j++
					continue
				}
				if s[j] == '"' {
					break
				}
			}
			if j >= len(s) {
				return nil, "", false
			}
			u, err := strconv.Unquote(s[:j+1])
			if err != nil {
				// TOML escapes Go does not know (\e, \U with 8 digits are
				// shared); fall back to the raw text.
				u = s[1:j]
			}
			k, s = u, s[j+1:]
		case '\'':
			j := strings.IndexByte(s[1:], '\'')
			if j < 0 {
				return nil, "", false
			}
			k, s = s[1:j+1], s[j+2:]
		default:
			j := 0
			for j < len(s) && (s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9' || s[j] == '_' || s[j] == '-') {
				j++
			}
			if j == 0 {
				return nil, "", false
			}
			k, s = s[:j], s[j:]
		}
		segs = append(segs, k)
		s = strings.TrimLeft(s, " \t")
		switch {
		case strings.HasPrefix(s, "."):
			s = s[1:]
		case strings.HasPrefix(s, term):
			return segs, s[len(term):], true
		default:
			return nil, "", false
		}
	}
}

// keyLines maps every key path in src to its 1-based line.
func keyLines(src string) map[string]int {
	lines := map[string]int{}
	arrays := map[string]int{} // array-of-tables path -> elements so far
	// headerPath renders a header's segments, putting in the current index
	// of every array of tables it passes through.
	headerPath := func(segs []string) (string, string) {
		p, plain := "", ""
		for _, s := range segs {
			plain = join(plain, s)
			p = join(p, s)
			if n, ok := arrays[plain]; ok {
				p = index(p, n-1)
			}
		}
		return p, plain
	}
	var sc scanner
	prefix := ""
	for n, line := range strings.Split(src, "\n") {
		no := n + 1
		if sc.multi != "" || sc.depth > 0 {
			sc.scan(line)
			continue
		}
		t := strings.TrimLeft(line, " \t")
		switch {
		case t == "" || t[0] == '#':
			continue
		case strings.HasPrefix(t, "[["):
			segs, _, ok := parseKey(t[2:], "]]")
			if !ok {
				continue
			}
			// The element's own index is the new count, so resolve the
			// parents first, then count this one.
			_, plain := headerPath(segs)
			arrays[plain]++
			p, _ := headerPath(segs)
			if _, ok := lines[plain]; !ok {
				lines[parentIndexless(p)] = no
			}
			lines[p] = no
			prefix = p
		case t[0] == '[':
			segs, _, ok := parseKey(t[1:], "]")
			if !ok {
				continue
			}
			p, _ := headerPath(segs)
			lines[p] = no
			prefix = p
		default:
			segs, rest, ok := parseKey(t, "=")
			if !ok {
				continue
			}
			p := prefix
			for _, s := range segs {
				p = join(p, s)
				if _, ok := lines[p]; !ok {
					lines[p] = no
				}
			}
			sc.scan(rest)
		}
	}
	return lines
}

// parentIndexless strips a trailing [N] from an array element's path.
func parentIndexless(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i > 0 {
			return p[:i]
		}
	}
	return p
}
