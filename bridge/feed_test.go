package bridge

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://u:pw@h/f?api_key=K&depot=D1":      "http://u:REDACTED@h/f?api_key=REDACTED&depot=D1",
		"https://h/f?access_token=T&Signature=S":  "https://h/f?Signature=REDACTED&access_token=REDACTED",
		"http://u@h/f?password=p&token=t&x=1":     "http://u@h/f?password=REDACTED&token=REDACTED&x=1",
		"file:///var/feed.json":                   "file:///var/feed.json",
		"http://h/f?secret=a&secret=b&key=c&sig=": "http://h/f?key=REDACTED&secret=REDACTED&secret=REDACTED&sig=REDACTED",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
	if got := RedactURL("http://u:p@h/%zz"); strings.Contains(got, "p@") {
		t.Errorf("unparseable URL shown: %q", got)
	}
	if _, err := NewSource("http://u:hunter2@h/%zz?api_key=K"); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("NewSource error shows the URL: %v", err)
	}
}

// TestFeedErrorRedacted: the http.Client's error quotes the request URL;
// the feed's error must not carry its secrets.
func TestFeedErrorRedacted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // refused from now on
	src, err := NewSource("http://feed:hunter2pw@" + addr + "/f?api_key=SEKRETKEY&x=1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.Fetch(context.Background())
	if err == nil || !errors.Is(err, ErrFeed) {
		t.Fatalf("fetch from a closed port: %v", err)
	}
	for _, s := range []string{err.Error(), src.String()} {
		if strings.Contains(s, "hunter2pw") || strings.Contains(s, "SEKRETKEY") {
			t.Fatalf("secret shown: %s", s)
		}
	}
	if !strings.Contains(err.Error(), addr) {
		t.Fatalf("error lost the address: %v", err)
	}
}
