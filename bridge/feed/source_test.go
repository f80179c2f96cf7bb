package feed

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
)

var t0 = time.Date(2026, 11, 26, 15, 4, 5, 0, time.UTC)

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

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
	if err == nil || !errors.Is(err, bridge.ErrFeed) {
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

func TestNewSource(t *testing.T) {
	for _, u := range []string{"http://x/feed", "https://x/feed", "file:///tmp/f.json"} {
		if _, err := NewSource(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	for _, u := range []string{"ftp://x", "x", "://"} {
		if _, err := NewSource(u); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
}

func TestDemoDay(t *testing.T) {
	demo := NewDemo(t0, 30, 1)
	first := demo.Snapshots(t0)
	if len(first) != 30 {
		t.Fatalf("%d routes", len(first))
	}
	if _, err := bridge.ParseSnapshots(mustJSON(t, first)); err != nil {
		t.Fatalf("demo feed fails its own validation: %v", err)
	}
	crossed := map[string]bool{}
	progressed := 0
	for m := 0; m <= 15; m++ {
		now := demo.Snapshots(t0.Add(time.Duration(m) * time.Minute))
		for i, s := range now {
			if first[i].BehindSchedule < bridge.RescueThreshold && s.BehindSchedule >= bridge.RescueThreshold {
				crossed[s.RouteID] = true
			}
			if m == 15 && s.CompletedStops > first[i].CompletedStops {
				progressed++
			}
		}
	}
	if len(crossed) == 0 {
		t.Fatal("no route crossed 6 behind within 15 minutes")
	}
	if progressed < 25 {
		t.Fatalf("only %d routes progressed in 15 minutes", progressed)
	}
	// Drivers move between fixes a second apart, at a plausible speed.
	lat1, lng1, ok1 := demo.Position("D1", t0)
	lat2, lng2, ok2 := demo.Position("D1", t0.Add(10*time.Second))
	if !ok1 || !ok2 || (lat1 == lat2 && lng1 == lng2) {
		t.Fatal("driver did not move")
	}
	if _, _, ok := demo.Position("D99", t0); ok {
		t.Fatal("unknown driver has a position")
	}
	// The feed is a pure function of time.
	if a, b := NewDemo(t0, 30, 1).Snapshots(t0.Add(time.Hour)), demo.Snapshots(t0.Add(time.Hour)); a[3] != b[3] {
		t.Fatal("demo not deterministic")
	}
}
