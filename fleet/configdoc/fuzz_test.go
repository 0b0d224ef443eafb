package configdoc

import (
	"bytes"
	"testing"
)

// FuzzParse: no document panics Parse, Compose, Accounts or Encode, and a
// document that parses encodes to bytes that parse again to the same
// encoding (composition is stable, so an unchanged document is never
// republished as a new version).
//
//fuzz:budget 80000
func FuzzParse(f *testing.F) {
	f.Add([]byte(groupDoc))
	f.Add([]byte(deviceDoc))
	f.Add([]byte("account = 1\n"))
	f.Add([]byte("[[account]]\nname = \"x\"\n[[account]]\nuser = \"y\"\npassword_file = \"/p\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b)
		if err != nil {
			return
		}
		c, err := Compose(mustParseF(t, groupDoc), d)
		if err != nil {
			return
		}
		if _, err := c.Accounts(); err != nil {
			return
		}
		enc, err := c.Encode()
		if err != nil {
			return
		}
		again, err := Parse(enc)
		if err != nil {
			t.Fatalf("Parse(Encode(doc)) = %v\n%s", err, enc)
		}
		enc2, err := again.Encode()
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("Encode is not stable:\n%s\n---\n%s", enc, enc2)
		}
	})
}

func mustParseF(t *testing.T, s string) *Doc {
	d, err := Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return d
}
