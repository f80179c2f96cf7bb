package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/depotcc/depot/loadgen"
)

// TestBenchRuns runs `depot bench --json --baseline` for a few seconds
// against a real appliance: every fix must be seen by every dashboard of
// both targets, which also checks that the bench's envelope scanner still
// reads what the appliance writes.
func TestBenchRuns(t *testing.T) {
	dir := t.TempDir()
	var feed bytes.Buffer
	if err := benchFeed([]string{"--drivers", "3"}, &feed, io.Discard); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "feed.json"), feed.String())
	a := startApp(t, dir, nil)
	t.Setenv("DEPOT_ADMIN_PASSWORD", adminPassword)
	bin := depotBinary(t)
	benchExe = func() (string, error) { return bin, nil }
	t.Cleanup(func() { benchExe = os.Executable })
	var out bytes.Buffer
	err := runBench(context.Background(), []string{"--http", a.HTTPAddr(), "--mqtt", a.MQTTAddr(),
		"--drivers", "3", "--rate", "5", "--dashboards", "2", "--duration", "2s", "--json", "--baseline"}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want two results and a ratio line, got:\n%s", out.String())
	}
	for i, target := range []string{"appliance", "bare mochi"} {
		var r loadgen.Result
		if err := json.Unmarshal([]byte(lines[i]), &r); err != nil {
			t.Fatal(err)
		}
		if r.Target != target || r.Sent < 10 || r.Acked != r.Sent || r.Received != 2*r.Acked || r.Lost != 0 || r.P50 <= 0 || r.P99 < r.P50 {
			t.Fatalf("%s: %+v", target, r)
		}
		if target == "appliance" && (r.CPUPct <= 0 || r.RSSMB <= 0) {
			t.Fatalf("appliance CPU and RSS not read from /metrics: %+v", r)
		}
	}
	var ratio map[string]float64
	if err := json.Unmarshal([]byte(lines[2]), &ratio); err != nil || ratio["throughput_ratio"] <= 0 {
		t.Fatalf("ratio line %q: %v", lines[2], err)
	}
}

// TestBenchDashboardsUnderTheAddressCap: a bench runs all its dashboards
// from one address, so it refuses more than the depot's per-address HTTP
// cap would let in, with a reason, instead of reporting refused
// connections as a slow depot.
func TestBenchDashboardsUnderTheAddressCap(t *testing.T) {
	err := runBench(context.Background(), []string{"--drivers", "3", "--dashboards", "300"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "from one address") {
		t.Fatalf("--dashboards 300: %v", err)
	}
}
