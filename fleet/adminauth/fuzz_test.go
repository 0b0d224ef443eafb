package adminauth

import "testing"

// FuzzParseHash feeds the PHC parser with what a database holds (and an
// attacker with write access to it could put there). Oracle: a parsed
// hash re-encodes to its input, and its parameters are within bounds.
//
//fuzz:budget 80000
func FuzzParseHash(f *testing.F) {
	for _, v := range referenceVectors {
		f.Add(v.phc)
	}
	f.Add("$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		p, salt, key, err := parseHash(s)
		if err != nil {
			return
		}
		if err := p.check(); err != nil {
			t.Fatalf("parseHash(%q) accepted out-of-bounds parameters %+v: %v", s, p, err)
		}
		if back := encodeHash(p, salt, key); back != s {
			t.Fatalf("encodeHash(parseHash(%q)) = %q", s, back)
		}
	})
}
