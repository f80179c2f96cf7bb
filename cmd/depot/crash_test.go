package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/depotcc/depot/ui/client"
)

// proc is the real depot binary running in a child process.
type proc struct {
	cmd        *exec.Cmd
	http, mqtt string
}

var buildOnce struct {
	sync.Once
	bin string
	err error
}

// depotBinary builds the binary once per test run.
func depotBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "depot-bin")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.bin = filepath.Join(dir, "depot")
		out, err := exec.Command("go", "build", "-o", buildOnce.bin, ".").CombinedOutput()
		if err != nil {
			buildOnce.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.bin
}

var listening = regexp.MustCompile(`msg=listening http=(\S+) mqtt=(\S+)`)

// startProc runs `depot serve` on data (with the route feed read from
// file feed, unless empty) and waits for its listening line.
func startProc(t testing.TB, data, feed string, extra ...string) *proc {
	t.Helper()
	args := []string{"serve", "--data", data, "--http-addr", "127.0.0.1:0",
		"--mqtt-addr", "127.0.0.1:0", "--log-level", "info",
		"--mqtt-publish-rate", "1000000", "--mqtt-publish-burst", "1000000"} // load, not a flood
	if feed != "" {
		args = append(args, "--cortex-url", "file://"+feed)
	}
	cmd := exec.Command(depotBinary(t), append(args, extra...)...)
	cmd.Env = append(os.Environ(), "DEPOT_ADMIN_PASSWORD="+adminPassword)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				found <- m
			}
		}
	}()
	select {
	case m := <-found:
		return &proc{cmd: cmd, http: m[1], mqtt: m[2]}
	case <-time.After(20 * time.Second):
		t.Fatal("depot did not start")
	}
	return nil
}

// TestSIGKILLLosesNoAcknowledgedFix: 10 handhelds publish QoS 1 fixes as
// fast as they are acknowledged; the appliance is killed with SIGKILL at a
// random moment and restarted on the same data. Every fix that was
// PUBACKed is in history.
func TestSIGKILLLosesNoAcknowledgedFix(t *testing.T) {
	dir := t.TempDir()
	data, feed := filepath.Join(dir, "data"), filepath.Join(dir, "feed.json")
	type r = map[string]any
	var routes []r
	for i := 1; i <= 10; i++ {
		routes = append(routes, r{"routeId": fmt.Sprintf("R%d", i), "driverId": fmt.Sprintf("D%d", i), "totalStops": 100, "completedStops": 1})
	}
	b, _ := json.Marshal(routes)
	writeFile(t, feed, string(b))

	p := startProc(t, data, feed)
	api := client.New(p.http)
	ctx := context.Background()
	if err := api.Login(ctx, "admin", adminPassword); err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{}
	for i := 1; i <= 10; i++ {
		d := fmt.Sprintf("D%d", i)
		tok, err := api.DeviceToken(ctx, d, "crash test")
		if err != nil {
			t.Fatal(err)
		}
		tokens[d] = tok
	}

	var mu sync.Mutex
	acked := map[string][]int64{} // route -> device times PUBACKed
	var wg sync.WaitGroup
	base := time.Now().Add(-time.Minute).UnixMilli()
	for i := 1; i <= 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := fmt.Sprintf("D%d", i)
			c, code, err := mqttConnect(p.mqtt, "drv-"+d, d, tokens[d])
			if err != nil || code != 0 {
				t.Errorf("connect %s: 0x%02x %v", d, code, err)
				return
			}
			for k := int64(0); ; k++ {
				ts := base + k
				code, err := publish(c, "depot/DEMO1/drivers/"+d+"/gps", 1,
					[]byte(fmt.Sprintf(`{"lat":38.5,"lng":-121.5,"ts":%d}`, ts)))
				if err != nil || code != 0 {
					return // the appliance is gone
				}
				mu.Lock()
				acked[fmt.Sprintf("R%d", i)] = append(acked[fmt.Sprintf("R%d", i)], ts)
				mu.Unlock()
			}
		}()
	}
	count := func() (n int) {
		mu.Lock()
		defer mu.Unlock()
		for _, tss := range acked {
			n += len(tss)
		}
		return n
	}
	time.Sleep(time.Duration(300+rand.IntN(900)) * time.Millisecond)
	c1 := count()
	time.Sleep(50 * time.Millisecond)
	if c2 := count(); c2 == c1 {
		t.Fatalf("no load when the kill came (%d fixes acknowledged)", c2)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	_ = p.cmd.Wait()

	q := startProc(t, data, feed)
	api = client.New(q.http)
	if err := api.Login(ctx, "admin", adminPassword); err != nil {
		t.Fatal(err)
	}
	total, missing := 0, 0
	for route, tss := range acked {
		var h historyResp
		if err := api.Do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/routes/%s/history?from=%d", route, base-1), nil, &h); err != nil {
			t.Fatal(err)
		}
		have := map[int64]bool{}
		for _, f := range h.Fixes {
			have[f.TS] = true
		}
		for _, ts := range tss {
			total++
			if !have[ts] {
				missing++
			}
		}
	}
	t.Logf("%d fixes acknowledged before SIGKILL, %d missing after restart", total, missing)
	if total < 50 {
		t.Fatalf("only %d fixes acknowledged: the load did not run", total)
	}
	if missing != 0 {
		t.Fatalf("%d of %d acknowledged fixes lost", missing, total)
	}
}

// TestRecoverFromTornStore: power loss tears the store; the appliance says
// what happened and the one command that recovers; that command works.
func TestRecoverFromTornStore(t *testing.T) {
	dir := t.TempDir()
	data, feed := filepath.Join(dir, "data"), filepath.Join(dir, "feed.json")
	writeFile(t, feed, feedJSON(42, 2))
	p := startProc(t, data, feed)
	t.Setenv("DEPOT_ADMIN_PASSWORD", adminPassword)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"user", "add", "--http", p.http, "--username", "ana"},
		strings.NewReader(anaPassword+"\n"), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"backup", "--http", p.http}, nil, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "backups/depot-") {
		t.Fatalf("backup printed %s", out.String())
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()

	files, _ := filepath.Glob(filepath.Join(data, "db", "*.dat"))
	f := files[len(files)-1]
	b, _ := os.ReadFile(f)
	end := len(b)
	for end > 0 && b[end-1] == 0 {
		end--
	}
	for i := end - 10; i < end; i++ {
		b[i] = 0
	}
	os.WriteFile(f, b, 0o600)

	msg, err := exec.Command(depotBinary(t), "serve", "--data", data, "--http-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0").CombinedOutput()
	if err == nil {
		t.Fatal("started on a torn store")
	}
	if !strings.Contains(string(msg), "lost power") || !strings.Contains(string(msg), "depot restore --data "+data) {
		t.Fatalf("the message does not say what happened and what to do:\n%s", msg)
	}
	out.Reset()
	if err := run(context.Background(), []string{"restore", "--data", data}, nil, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "db.broken-") {
		t.Fatalf("restore printed %s", out.String())
	}
	q := startProc(t, data, feed)
	api := client.New(q.http)
	if err := api.Login(context.Background(), "ana", anaPassword); err != nil {
		t.Fatalf("the user from the backup cannot log in: %v", err)
	}
}
