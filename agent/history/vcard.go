package history

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Bounds on vCard input.
const (
	// MaxVCardBytes bounds one import.
	MaxVCardBytes = 4 << 20
	maxLine       = 8 << 10
	maxCardLines  = 256
	maxNumbers    = 16
	maxField      = 256
)

// ParseVCards reads vCards (RFC 6350; 3.0 and 2.1 cards are read the same
// way for the properties kept): FN (or N), TEL and IMPP/X-SIP URIs. Lines
// are unfolded (§3.2), property parameters and groups ignored, values
// unescaped (§3.4); a card without a name or a number is skipped. The ID
// of a contact is derived from its UID, or from its name and numbers, so
// importing the same file twice changes nothing.
func ParseVCards(r io.Reader) ([]Contact, error) {
	sc := bufio.NewScanner(io.LimitReader(r, MaxVCardBytes+1))
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	var (
		lines []string
		cards []Contact
		read  int
	)
	var cur *card
	flush := func() {
		if cur != nil {
			if c, ok := cur.contact(); ok && len(cards) < MaxContacts {
				cards = append(cards, c)
			}
		}
		cur = nil
	}
	handle := func(line string) {
		if cur == nil {
			if strings.EqualFold(strings.TrimSpace(line), "BEGIN:VCARD") {
				cur = &card{}
			}
			return
		}
		if strings.EqualFold(strings.TrimSpace(line), "END:VCARD") {
			flush()
			return
		}
		cur.lines++
		if cur.lines > maxCardLines {
			return
		}
		cur.property(line)
	}
	for sc.Scan() {
		raw := sc.Text()
		read += len(raw) + 1
		if read > MaxVCardBytes {
			return nil, fmt.Errorf("vcard: more than %d bytes", MaxVCardBytes)
		}
		raw = strings.TrimRight(raw, "\r")
		// §3.2: a line starting with a space or tab continues the previous.
		if len(raw) > 0 && (raw[0] == ' ' || raw[0] == '\t') && len(lines) > 0 {
			lines[len(lines)-1] += raw[1:]
			if len(lines[len(lines)-1]) > maxLine {
				return nil, fmt.Errorf("vcard: a folded line longer than %d bytes", maxLine)
			}
			continue
		}
		if len(lines) > 0 {
			handle(lines[0])
			lines = lines[:0]
		}
		lines = append(lines, raw)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("vcard: a line longer than %d bytes", maxLine)
		}
		return nil, fmt.Errorf("vcard: %w", err)
	}
	if len(lines) > 0 {
		handle(lines[0])
	}
	return cards, nil
}

type card struct {
	lines         int
	uid, fn, name string
	numbers       []string
}

func (c *card) property(line string) {
	nameParams, value, ok := strings.Cut(line, ":")
	if !ok {
		return
	}
	name, _, _ := strings.Cut(nameParams, ";")
	if _, after, grouped := strings.Cut(name, "."); grouped {
		name = after
	}
	value = unescape(value)
	switch strings.ToUpper(name) {
	case "UID":
		c.uid = clean(value)
	case "FN":
		c.fn = clean(value)
	case "N":
		// family;given;additional;prefixes;suffixes
		parts := strings.Split(value, ";")
		if len(parts) >= 2 {
			c.name = clean(strings.TrimSpace(parts[1] + " " + parts[0]))
		} else {
			c.name = clean(value)
		}
	case "TEL", "IMPP", "X-SIP":
		v := clean(value)
		if v != "" && len(c.numbers) < maxNumbers {
			c.numbers = append(c.numbers, v)
		}
	}
}

func (c *card) contact() (Contact, bool) {
	name := c.fn
	if name == "" {
		name = c.name
	}
	if name == "" || len(c.numbers) == 0 {
		return Contact{}, false
	}
	h := sha256.New()
	if c.uid != "" {
		h.Write([]byte("uid\x00" + c.uid))
	} else {
		h.Write([]byte(name))
		for _, n := range c.numbers {
			h.Write([]byte("\x00" + n))
		}
	}
	return Contact{ID: hex.EncodeToString(h.Sum(nil)[:12]), Name: name, Numbers: c.numbers}, true
}

// unescape undoes RFC 6350 §3.4 value escaping.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	r := strings.NewReplacer(`\n`, " ", `\N`, " ", `\,`, ",", `\;`, ";", `\\`, `\`)
	return r.Replace(s)
}

// clean keeps a field printable and bounded.
func clean(s string) string {
	var b strings.Builder
	for _, r := range strings.TrimSpace(s) {
		if b.Len() >= maxField {
			break
		}
		if r < 0x20 || r == 0x7f || r == '\uFFFD' || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
