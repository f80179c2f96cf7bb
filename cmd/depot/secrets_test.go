package main

import (
	"strings"
	"testing"
)

func TestParseFeedCredentials(t *testing.T) {
	t.Parallel()
	h, err := parseFeedCredentials("# feed\nfeeduser:pa ss:word\r\n\nx-api-key: k1\n")
	if err != nil {
		t.Fatal(err)
	}
	if h.Get("X-Api-Key") != "k1" || !strings.HasPrefix(h.Get("Authorization"), "Basic ") {
		t.Fatalf("headers %v", h)
	}
	for _, bad := range []string{"", "# only a comment", "nocolon", ":nouser", "user:", "A: \x00", "Authorization: Bearer x\nu:p", "X-Key: "} {
		if _, err := parseFeedCredentials(bad); err == nil {
			t.Errorf("%q accepted", bad)
		} else if len(bad) > 5 && strings.Contains(err.Error(), bad) {
			t.Errorf("error quotes the credential: %v", err)
		}
	}
}
