package history

import (
	"strings"
	"testing"
)

// FuzzParseVCards: any input parses without panic within the bounds, and
// every contact kept has a name and a number of bounded, printable text.
//
//fuzz:budget 150000
func FuzzParseVCards(f *testing.F) {
	f.Add(cards)
	f.Add("BEGIN:VCARD\nFN:a\nTEL:1\nEND:VCARD\n")
	f.Add("BEGIN:VCARD\r\n FN:x\r\n\tTEL:\\,\\;\\n\r\nEND:VCARD")
	f.Fuzz(func(t *testing.T, in string) {
		cs, err := ParseVCards(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, c := range cs {
			if c.Name == "" || len(c.Numbers) == 0 || len(c.Numbers) > maxNumbers || len(c.Name) > maxField+4 {
				t.Fatalf("contact %+v breaks the bounds", c)
			}
			for _, r := range c.Name {
				if r < 0x20 {
					t.Fatalf("control character in name %q", c.Name)
				}
			}
		}
	})
}
