package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
)

// listenNotify is a service manager's notification socket at addr (a path
// or "@name"); the datagrams it receives come on the channel.
func listenNotify(t *testing.T, addr string) <-chan string {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	out := make(chan string, 1024)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				close(out)
				return
			}
			out <- string(buf[:n])
		}
	}()
	return out
}

func recvNotify(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no datagram")
	}
	return ""
}

// TestNotifierPathSocket: a message reaches a socket named by its path,
// as one datagram, unchanged.
func TestNotifierPathSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	ch := listenNotify(t, path)
	n, err := newNotifier(path)
	if err != nil || n == nil {
		t.Fatalf("newNotifier: %v, %v", n, err)
	}
	for _, msg := range []string{"READY=1\nSTATUS=serving", "WATCHDOG=1", "STOPPING=1"} {
		if err := n.notify(msg); err != nil {
			t.Fatal(err)
		}
		if got := recvNotify(t, ch); got != msg {
			t.Fatalf("got %q, want %q", got, msg)
		}
	}
}

// TestNotifierAbstractSocket: "@name" is a socket in the abstract
// namespace (as systemd hands out when it runs in a container), not a file.
func TestNotifierAbstractSocket(t *testing.T) {
	name := fmt.Sprintf("@depot-test-notify-%d-%d", os.Getpid(), time.Now().UnixNano())
	ch := listenNotify(t, name)
	n, err := newNotifier(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.notify("READY=1"); err != nil {
		t.Fatal(err)
	}
	if got := recvNotify(t, ch); got != "READY=1" {
		t.Fatalf("got %q", got)
	}
	if _, err := os.Stat(name); err == nil {
		t.Fatalf("a file %q was made", name)
	}
}

// TestNotifierAbsent: no $NOTIFY_SOCKET, no notifier, and sending through
// the nil one is a no-op; a value that is neither a path nor @name is
// refused (nothing is sent anywhere); a socket that has gone is an error,
// not a hang.
func TestNotifierAbsent(t *testing.T) {
	n, err := newNotifier("")
	if n != nil || err != nil {
		t.Fatalf("empty: %v, %v", n, err)
	}
	if err := n.notify("READY=1"); err != nil {
		t.Fatalf("nil notifier: %v", err)
	}
	for _, bad := range []string{"notify", "@", "vsock:2:1234"} {
		if n, err := newNotifier(bad); n != nil || err == nil {
			t.Errorf("%q: %v, %v", bad, n, err)
		}
	}
	gone, _ := newNotifier(filepath.Join(t.TempDir(), "gone"))
	if err := gone.notify("READY=1"); err == nil {
		t.Error("no error for a missing socket")
	}
}

// TestWatchdogInterval: $WATCHDOG_USEC is the timeout, for this process
// only when $WATCHDOG_PID names it or is absent.
func TestWatchdogInterval(t *testing.T) {
	me := strconv.Itoa(os.Getpid())
	for _, c := range []struct {
		usec, pid string
		want      time.Duration
		bad       bool
	}{
		{"", "", 0, false},
		{"30000000", "", 30 * time.Second, false},
		{"300000", me, 300 * time.Millisecond, false},
		{"300000", "1", 0, false},
		{"0", "", 0, true},
		{"-5", "", 0, true},
		{"soon", "", 0, true},
	} {
		got, err := watchdogInterval(c.usec, c.pid)
		if got != c.want || (err != nil) != c.bad {
			t.Errorf("(%q, %q): %v, %v; want %v, error %v", c.usec, c.pid, got, err, c.want, c.bad)
		}
	}
}

var hooksBuild struct {
	sync.Once
	bin string
	err error
}

// depotHooksBinary builds the binary with -tags depothooks (hooks.go: a
// SIGUSR2 hangs the store's commits, another lets them go on).
func depotHooksBinary(t *testing.T) string {
	t.Helper()
	hooksBuild.Do(func() {
		dir, err := os.MkdirTemp("", "depot-hooks-bin")
		if err != nil {
			hooksBuild.err = err
			return
		}
		hooksBuild.bin = filepath.Join(dir, "depot")
		out, err := exec.Command("go", "build", "-tags", "depothooks", "-o", hooksBuild.bin, ".").CombinedOutput()
		if err != nil {
			hooksBuild.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if hooksBuild.err != nil {
		t.Fatal(hooksBuild.err)
	}
	return hooksBuild.bin
}

// lockedLines collects a child's log lines.
type lockedLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *lockedLines) add(s string) { l.mu.Lock(); l.lines = append(l.lines, s); l.mu.Unlock() }

func (l *lockedLines) find(sub string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			return s
		}
	}
	return ""
}

// wait waits up to d for a line containing sub (the log is read from a
// pipe, a moment after the child wrote it).
func (l *lockedLines) wait(sub string, d time.Duration) string {
	for deadline := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		if s := l.find(sub); s != "" || time.Now().After(deadline) {
			return s
		}
	}
}

func (l *lockedLines) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// TestSystemdNotify runs the real binary as packaging/depot.service does:
// `depot serve --data <state directory>`, the rest of its settings from
// DEPOT_* variables (the env file), NOTIFY_SOCKET naming a socket the test
// owns and WATCHDOG_USEC set. It sees READY=1, then WATCHDOG=1 every third
// of the timeout; with the store's commits hung (the depothooks build's
// SIGUSR2) the pings stop and the log says why, once; with the commits let
// go they come back; on SIGTERM it sees STOPPING=1, and the process exits
// cleanly.
func TestSystemdNotify(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	sock := filepath.Join(dir, "notify")
	raw := listenNotify(t, sock)
	// Every STATUS= seen is kept for sawStatus; the rest goes on to msgs.
	msgs := make(chan string, 1024)
	var statusMu sync.Mutex
	var statuses []string
	go func() {
		for m := range raw {
			if strings.Contains(m, "STATUS=") {
				statusMu.Lock()
				statuses = append(statuses, m)
				statusMu.Unlock()
			}
			msgs <- m
		}
		close(msgs)
	}()
	// sawStatus waits for the n-th STATUS= containing sub.
	sawStatusN := func(sub string, n int) bool {
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			statusMu.Lock()
			seen := 0
			for _, s := range statuses {
				if strings.Contains(s, sub) {
					seen++
				}
			}
			statusMu.Unlock()
			if seen >= n {
				return true
			}
		}
		return false
	}
	sawStatus := func(sub string) bool { return sawStatusN(sub, 1) }

	cmd := exec.Command(depotHooksBinary(t), "serve", "--data", state)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DEPOT_") && !strings.HasPrefix(kv, "NOTIFY_SOCKET=") && !strings.HasPrefix(kv, "WATCHDOG_") &&
			!strings.HasPrefix(kv, "GOGC=") && !strings.HasPrefix(kv, "GOMEMLIMIT=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env,
		"NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=300000",
		"DEPOT_HTTP_ADDR=127.0.0.1:0", "DEPOT_MQTT_ADDR=127.0.0.1:0", "DEPOT_DEPOT=SD1",
		"DEPOT_WATCHDOG_HUNG_AFTER=300ms", "DEPOT_BACKUP_INTERVAL=0", "DEPOT_ADMIN_PASSWORD="+adminPassword)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	logs := &lockedLines{}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.add(sc.Text())
		}
		exited <- cmd.Wait()
	}()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\nlog:\n%s", append(args, logs.all())...)
	}
	// next waits up to d for a message containing want, skipping others.
	next := func(want string, d time.Duration) bool {
		deadline := time.After(d)
		for {
			select {
			case m, ok := <-msgs:
				if !ok {
					return false
				}
				if strings.Contains(m, want) {
					return true
				}
			case <-deadline:
				return false
			}
		}
	}
	// quiet reports whether no WATCHDOG=1 came for d (skipping others).
	quiet := func(d time.Duration) bool {
		deadline := time.After(d)
		for {
			select {
			case m := <-msgs:
				if strings.Contains(m, "WATCHDOG=1") {
					return false
				}
			case <-deadline:
				return true
			}
		}
	}

	if !next("READY=1", 30*time.Second) {
		fail("no READY=1")
	}
	if !sawStatus("STATUS=serving depot SD1: http 127.0.0.1:") {
		fail("no STATUS with READY=1")
	}
	if logs.wait("msg=listening", 2*time.Second) == "" {
		fail("READY=1 before the listening line")
	}
	// As the unit runs it (no GOGC, no GOMEMLIMIT), the collector is paced.
	if logs.wait(`msg="go collector" paced=true cap_mib=`, 2*time.Second) == "" {
		fail("the depot does not say that it paces its collector")
	}
	start := time.Now()
	for i := range 5 {
		if !next("WATCHDOG=1", 2*time.Second) {
			fail("watchdog ping %d did not come", i+1)
		}
	}
	if el := time.Since(start); el > 2*time.Second {
		fail("5 pings took %s; want one every 100ms", el)
	}

	// The commits hang: the heartbeat's (every 5 s) is the first to stick,
	// and 300ms later the pings stop for as long as the hang lasts.
	if err := cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	stopped := false
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		if quiet(1500 * time.Millisecond) {
			stopped = true
			break
		}
	}
	if !stopped {
		fail("the pings went on with the commits hung")
	}
	if !sawStatus("not alive (pipeline failing)") {
		fail("no STATUS saying why the pings stopped")
	}
	if !quiet(time.Second) {
		fail("a ping while the commits hang")
	}
	line := logs.wait("not alive", 2*time.Second)
	if line == "" || !strings.Contains(line, "failing=pipeline") {
		fail("no log line saying why the pings stopped: %q", line)
	}
	if n := strings.Count(logs.all(), "not alive"); n != 1 {
		fail("%d 'not alive' lines for one state change", n)
	}

	// Let the commits go: the pings come back, and the log says so.
	if err := cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	if !next("WATCHDOG=1", 5*time.Second) {
		fail("the pings did not come back")
	}
	if logs.wait("alive again", 2*time.Second) == "" {
		fail("no 'alive again' line")
	}
	if !sawStatusN("STATUS=serving depot SD1", 2) { // READY=1's, and this one
		fail("no STATUS saying it serves again")
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !next("STOPPING=1", 10*time.Second) {
		fail("no STOPPING=1 after SIGTERM")
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			fail("exit: %v", err)
		}
	case <-time.After(20 * time.Second):
		fail("still running 20s after SIGTERM")
	}
}

// TestWatchdogChecks, in-process: with everything answering no check
// fails; a commit stuck on the disk longer than --watchdog-hung-after fails
// the pipeline check, unless a backup or compaction holds the store (the
// commits wait for it); once the disk answers the checks pass again; a
// web server that stopped answering fails the HTTP check.
func TestWatchdogChecks(t *testing.T) {
	ss := &stallingStore{}
	a := startApp(t, "", func(c *ServeConfig) { c.WatchdogHungAfter = 100 * time.Millisecond },
		func(m *Main) { m.faults.wrapStore = func(s bridge.Store) bridge.Store { ss.Store = s; return ss } })
	a.watchdog = 300 * time.Millisecond
	w, err := a.newWatchdog()
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	failing := func() string {
		var names []string
		for _, e := range w.check(ctx) {
			names = append(names, e.name)
		}
		return strings.Join(names, ",")
	}
	waitFailing := func(want string) {
		t.Helper()
		got := ""
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if got = failing(); got == want {
				return
			}
		}
		t.Fatalf("failing checks %q, want %q", got, want)
	}
	waitFailing("")

	ss.stall()
	done := make(chan error, 1)
	go func() { _, err := a.depot.Heartbeat(bridge.AppStatus{}); done <- err }()
	waitFailing("pipeline")
	a.maintenance.Add(1)
	if f := failing(); f != "" {
		t.Fatalf("during a backup: failing %q", f)
	}
	a.maintenance.Add(-1)
	if f := failing(); f != "pipeline" {
		t.Fatalf("after the backup: failing %q", f)
	}
	ss.resume()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFailing("")

	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := a.web.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	waitFailing("http")
}

// TestLoopbackAddr: the watchdog reaches its own HTTP listener by address,
// never by a name to resolve (a box without localhost in /etc/hosts asked
// its DNS server and restarted every 30 s).
func TestLoopbackAddr(t *testing.T) {
	for in, want := range map[string]string{
		"[::]:8080":        "127.0.0.1:8080",
		"0.0.0.0:8080":     "127.0.0.1:8080",
		":8080":            "127.0.0.1:8080",
		"127.0.0.1:39171":  "127.0.0.1:39171",
		"[::1]:8080":       "[::1]:8080",
		"192.0.2.10:443":   "192.0.2.10:443",
		"[2001:db8::1]:80": "[2001:db8::1]:80",
	} {
		if got := loopbackAddr(in); got != want {
			t.Errorf("loopbackAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
