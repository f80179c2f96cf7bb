package ui

import (
	"strings"
	"testing"
)

// FuzzParseTypes: ?types= is outside input; whatever it holds, the answer
// is an error or at most 20 names of lower-case letters and colons, each
// 1 to 40 bytes, and never a panic.
func FuzzParseTypes(f *testing.F) {
	for _, s := range []string{"vto:offer", "rescue:alert,vto:offer", "", ",", "a,,b", "<x>", strings.Repeat("a,", 25)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		types, err := parseTypes(s)
		if err != nil {
			return
		}
		if len(types) == 0 || len(types) > 20 {
			t.Fatalf("%q: %d types", s, len(types))
		}
		for ty := range types {
			if len(ty) == 0 || len(ty) > 40 || strings.Trim(ty, "abcdefghijklmnopqrstuvwxyz:") != "" || !strings.Contains(s, ty) {
				t.Fatalf("%q: type %q", s, ty)
			}
		}
	})
}
