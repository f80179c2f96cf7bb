package bridge

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestStoreFailuresSummarised: a store failing every commit for 25 s makes
// a handful of lines, not one per commit.
func TestStoreFailuresSummarised(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var f storeFailures
	now := time.Unix(1000, 0)
	for range 2500 {
		f.failed(log, errors.New("no space left on device"), 3, 2, 0, now)
		now = now.Add(10 * time.Millisecond)
	}
	f.ok(log)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) > 5 {
		t.Fatalf("%d lines for 2,500 failed commits:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[len(lines)-1], "failed=2500") {
		t.Fatalf("recovery line lacks the count: %s", lines[len(lines)-1])
	}
}
