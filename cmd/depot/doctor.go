package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/depotcc/depot/bridge/feed"
	"github.com/depotcc/depot/bridge/upstream"
	"github.com/depotcc/depot/push"
	"github.com/depotcc/depot/storage"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const doctorUsage = `Usage: depot doctor [doctor flags] [serve flags]

Checks the box the depot runs on, one line per check: ok, warn or FAIL, and
for each that is not ok what to do about it. It reads the same flags and
DEPOT_* variables as "depot serve", so run it with the depot's own
configuration (e.g. the same environment file).

Checks: config, clock (synchronised), fix-times (the handhelds' clocks
against the depot's), store, disk (free space and the store's growth up to
full retention), tls (certificate expiry), ports, feed, upstream, push,
backup (the newest backup's age).

With the depot running (its /healthz answers on --http-addr), figures come
from its /healthz, /readyz and /metrics; stopped, the doctor opens the store
itself for a moment (a depot starting meanwhile would find it locked).

Exit status: 0 all ok (warnings allowed), 1 something needs a person (a
FAIL; with --strict a warning too), 2 a usage error or the doctor could not
run.

Doctor flags:
`

// The doctor's verdicts.
type checkStatus int

const (
	statusOK checkStatus = iota
	statusWarn
	statusFail
)

func (s checkStatus) String() string { return [...]string{"ok", "warn", "FAIL"}[s] }

func (s checkStatus) MarshalJSON() ([]byte, error) {
	return json.Marshal(strings.ToLower(s.String()))
}

func (s *checkStatus) UnmarshalJSON(b []byte) error {
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	for _, c := range []checkStatus{statusOK, statusWarn, statusFail} {
		if strings.EqualFold(v, c.String()) {
			*s = c
			return nil
		}
	}
	return fmt.Errorf("status %q: want ok, warn or fail", v)
}

// finding is one check's line.
type finding struct {
	Check  string      `json:"check"`
	Status checkStatus `json:"status"`
	Detail string      `json:"detail"`
	Fix    string      `json:"fix,omitempty"`
}

func okLine(format string, a ...any) finding {
	return finding{Status: statusOK, Detail: fmt.Sprintf(format, a...)}
}
func warnLine(fix, format string, a ...any) finding {
	return finding{Status: statusWarn, Detail: fmt.Sprintf(format, a...), Fix: fix}
}
func failLine(fix, format string, a ...any) finding {
	return finding{Status: statusFail, Detail: fmt.Sprintf(format, a...), Fix: fix}
}

// exitCode is an error that asks main for an exit status, having said
// what there was to say.
type exitCode int

func (e exitCode) Error() string { return "exit status " + strconv.Itoa(int(e)) }

// doctor runs the checks against one configuration.
type doctor struct {
	c       ServeConfig
	cfgErr  error // what validate said
	timeout time.Duration
	offline bool
	now     func() time.Time

	// Where the clock's synchronisation is read, in this order; tests
	// replace them.
	timedatectl string               // command; "" to skip
	adjtimex    func() (bool, error) // the kernel's view: synchronised?
	syncFile    string               // systemd-timesyncd's flag file
	lookPath    func(string) (string, error)
	statfs      func(dir string) (free, total int64, err error)
	minFree     int64 // below this the disk check fails whatever the growth

	live  *liveDepot // the running depot, nil when none answers
	store storeLook  // read from the store when the depot is stopped
}

// liveDepot is a depot that answered on --http-addr.
type liveDepot struct {
	base    string // http(s)://host:port
	hc      *http.Client
	health  map[string]any
	metrics map[string]float64 // read once: unlabelled series, and stat="…" ones as name{stat}
	mErr    error
}

// storeLook is what the doctor read from a stopped depot's store.
type storeLook struct {
	exists bool
	err    error // opening or reading failed (storage.ErrInUse, ErrCorrupt, …)
	sum    storage.Summary
	fixes  []bridge.Fix
}

func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("depot doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	strict := fs.Bool("strict", false, "a warning fails too (exit 1)")
	asJSON := fs.Bool("json", false, "print the findings as JSON")
	timeout := fs.Duration("check-timeout", 5*time.Second, "how long one check may take (an unreachable host is a FAIL, not a hang)")
	offline := fs.Bool("offline", false, "skip what leaves the box: the feed over HTTP, the upstream, the push token")
	c := DefaultServeConfig()
	c.Register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), doctorUsage)
		for _, n := range []string{"check-timeout", "json", "offline", "strict"} {
			f := fs.Lookup(n)
			fmt.Fprintf(fs.Output(), "  --%s\n    \t%s (default %q; env DEPOT_%s)\n", n, f.Usage, f.DefValue,
				strings.ToUpper(strings.ReplaceAll(n, "-", "_")))
		}
		fmt.Fprint(fs.Output(), "\nServe flags: every flag of \"depot serve -h\", e.g. --data, --http-addr, --mqtt-addr,\n"+
			"--tls-cert, --cortex-url, --upstream, --fcm-credentials, --backup-interval, --event-retention.\n")
	}
	if err := c.Parse(fs, args); err != nil {
		return err
	}
	if *timeout <= 0 {
		return errors.New("--check-timeout: want a positive duration")
	}
	d := newDoctor(c, *timeout)
	d.offline = *offline
	found := d.run(ctx)
	worst := statusOK
	for _, f := range found {
		worst = max(worst, f.Status)
	}
	code := 0
	if worst == statusFail || (*strict && worst == statusWarn) {
		code = 1
	}
	if *asJSON {
		b, _ := json.MarshalIndent(map[string]any{"ok": code == 0, "checks": found}, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		printFindings(stdout, found)
	}
	if code != 0 {
		return exitCode(code)
	}
	return nil
}

func newDoctor(c ServeConfig, timeout time.Duration) *doctor {
	d := &doctor{c: c, timeout: timeout, now: time.Now, timedatectl: "timedatectl", adjtimex: kernelSynced,
		syncFile: "/run/systemd/timesync/synchronized", lookPath: exec.LookPath, statfs: statfs, minFree: defaultMinFree}
	d.cfgErr = d.c.validate()
	return d
}

func printFindings(w io.Writer, found []finding) {
	n := map[checkStatus]int{}
	for _, f := range found {
		n[f.Status]++
		fmt.Fprintf(w, "%-5s %-10s %s\n", f.Status, f.Check, f.Detail)
		if f.Fix == "" {
			continue
		}
		// Under the detail column: "fix: " and the fix, line by line.
		lead := strings.Repeat(" ", 17) + "fix: "
		for _, line := range strings.Split(f.Fix, "\n") {
			fmt.Fprintf(w, "%s%s\n", lead, line)
			lead = strings.Repeat(" ", len(lead))
		}
	}
	fmt.Fprintf(w, "%d ok, %d warn, %d FAIL\n", n[statusOK], n[statusWarn], n[statusFail])
}

// run probes for a running depot, reads the store when there is none,
// and runs every check, each bounded by the timeout.
func (d *doctor) run(ctx context.Context) []finding {
	// What the checks share is read first, each read bounded; one cut
	// short is left behind, writing nothing the checks read.
	d.live, _ = within(ctx, d.timeout, d.probe)
	if d.live != nil {
		d.live.metrics, d.live.mErr = d.readLiveMetrics(ctx)
	} else {
		// Opening a big store reads every key: it gets longer than a
		// network check.
		bound := max(6*d.timeout, 30*time.Second)
		var done bool
		if d.store, done = within(ctx, bound, func(context.Context) storeLook { return d.readStore() }); !done {
			d.store = storeLook{exists: true, err: fmt.Errorf("reading the store took over %s", bound)}
		}
		if errors.Is(d.store.err, storage.ErrInUse) {
			// A depot holds it: it may have been too busy, or too new,
			// to answer the first time.
			if d.live, _ = within(ctx, d.timeout, d.probe); d.live != nil {
				d.live.metrics, d.live.mErr = d.readLiveMetrics(ctx)
			}
		}
	}
	checks := []struct {
		name string
		run  func(context.Context) finding
	}{
		{"config", d.checkConfig},
		{"clock", d.checkClock},
		{"fix-times", d.checkFixTimes},
		{"store", d.checkStore},
		{"disk", d.checkDisk},
		{"tls", d.checkTLS},
		{"ports", d.checkPorts},
		{"feed", d.checkFeed},
		{"upstream", d.checkUpstream},
		{"push", d.checkPush},
		{"backup", d.checkBackup},
	}
	var out []finding
	for _, c := range checks {
		f := d.bounded(ctx, c.run)
		f.Check = c.name
		out = append(out, f)
	}
	return out
}

// bounded runs one check with the timeout; one that does not answer in
// time (a hung dial, a dead mount) is a FAIL, and is left behind.
func (d *doctor) bounded(ctx context.Context, check func(context.Context) finding) finding {
	f, done := within(ctx, d.timeout, check)
	if !done {
		return failLine("find what it waits for (a host that does not answer, a hung disk), or raise --check-timeout",
			"no answer within %s", d.timeout)
	}
	return f
}

// within runs f with a context that ends after timeout, and returns its
// result, or done false when it has not returned by then (it is left
// to finish on its own).
func within[T any](ctx context.Context, timeout time.Duration, f func(context.Context) T) (v T, done bool) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ch := make(chan T, 1)
	go func() { ch <- f(ctx) }()
	select {
	case v = <-ch:
		return v, true
	case <-ctx.Done():
		return v, false
	}
}

type liveMetrics struct {
	vals map[string]float64
	err  error
}

// readLiveMetrics reads the running depot's /metrics, bounded.
func (d *doctor) readLiveMetrics(ctx context.Context) (map[string]float64, error) {
	l := d.live
	m, done := within(ctx, d.timeout, func(ctx context.Context) liveMetrics {
		var m liveMetrics
		m.vals, m.err = l.readMetrics(ctx)
		return m
	})
	if !done {
		return nil, fmt.Errorf("/metrics: no answer within %s", d.timeout)
	}
	return m.vals, m.err
}

// probe asks --http-addr's /healthz whether a depot answers there.
func (d *doctor) probe(ctx context.Context) *liveDepot {
	scheme := "http"
	if d.c.TLSCert != "" {
		scheme = "https"
	}
	l := &liveDepot{base: scheme + "://" + dialAddr(d.c.HTTPAddr), hc: &http.Client{Timeout: d.timeout, Transport: &http.Transport{
		// Only to learn whether the depot answers and read its public
		// health and metrics; nothing is sent that a stranger may not see.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec
	}}}
	var h map[string]any
	// A depot's /healthz always names its status and HTTP address; some
	// other server on the port is not a running depot.
	if _, err := l.get(ctx, "/healthz", &h); err != nil || h["status"] == nil || h["http"] == nil {
		return nil
	}
	l.health = h
	return l
}

// dialAddr turns a listen address into one to dial on this box.
func dialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

// get GETs path; v, when set, gets the JSON body.
func (l *liveDepot) get(ctx context.Context, path string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.base+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := l.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			return resp.StatusCode, fmt.Errorf("%s: %w", path, err)
		}
	}
	return resp.StatusCode, nil
}

// metric is one series' value from /metrics as read at the start: a
// name, or name{stat} for the clock offsets.
func (l *liveDepot) metric(name string) (float64, bool, error) {
	v, found := l.metrics[name]
	return v, found, l.mErr
}

func (l *liveDepot) readMetrics(ctx context.Context) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := l.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: HTTP %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "depot_") {
			continue
		}
		name, val, found := strings.Cut(line, " ")
		if !found {
			continue
		}
		name = strings.Replace(strings.Replace(name, `{stat="`, "{", 1), `"}`, "}", 1)
		if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[name] = f
		}
	}
	return out, sc.Err()
}

// readStore opens a stopped depot's store for a moment and reads what
// the checks need. nutsdb locks the store: a running depot makes Open
// fail with storage.ErrInUse, and nothing is read.
func (d *doctor) readStore() storeLook {
	dir := dbDir(d.c.Data)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return storeLook{}
	}
	l := storeLook{exists: true}
	db, err := storage.Open(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		l.err = err
		return l
	}
	defer db.Close()
	if l.sum, l.err = db.Inspect(); l.err != nil {
		return l
	}
	l.fixes, l.err = db.LatestFixes(64)
	return l
}

func (d *doctor) checkConfig(context.Context) finding {
	if d.cfgErr != nil {
		return failLine("correct that flag or its DEPOT_* variable (depot serve -h lists them); depot serve refuses to start like this",
			"%v", d.cfgErr)
	}
	if len(d.c.warnings) > 0 {
		return warnLine(strings.Join(d.c.warnings, "\n"), "%d warning(s)", len(d.c.warnings))
	}
	return okLine("flags and DEPOT_* variables valid (data %s)", d.c.Data)
}

const clockFix = "turn time synchronisation on: timedatectl set-ntp true (or start chronyd/ntpd), make sure an NTP server is reachable,\n" +
	"then check: timedatectl timesync-status (or chronyc tracking)"

func (d *doctor) checkClock(ctx context.Context) finding {
	if d.timedatectl != "" {
		if path, err := d.lookPath(d.timedatectl); err == nil {
			out, err := exec.CommandContext(ctx, path, "show", "-p", "NTPSynchronized", "--value").Output()
			v := strings.TrimPrefix(strings.TrimSpace(string(out)), "NTPSynchronized=")
			switch {
			case err == nil && v == "yes":
				return okLine("synchronised (NTP, timedatectl)")
			case err == nil && v == "no":
				return warnLine(clockFix, "not synchronised (timedatectl: NTPSynchronized=no): fixes are judged on this clock")
			}
		}
	}
	if d.adjtimex != nil {
		if synced, err := d.adjtimex(); err == nil {
			if synced {
				return okLine("synchronised (kernel adjtimex)")
			}
			return warnLine(clockFix, "not synchronised (kernel adjtimex): fixes are judged on this clock")
		}
	}
	if d.syncFile != "" {
		if _, err := os.Stat(d.syncFile); err == nil {
			return okLine("synchronised (%s)", d.syncFile)
		}
	}
	return warnLine("check by hand: timedatectl status (\"System clock synchronized: yes\") or chronyc tracking",
		"unknown: no timedatectl, adjtimex or %s to tell", d.syncFile)
}

const fixTimesFix = "when most handhelds are off by the same amount the depot's clock is the likely one wrong (see the clock line);\n" +
	"otherwise set the handhelds to automatic (network) time. Fixes more than 5m ahead of the depot are refused"

func (d *doctor) checkFixTimes(ctx context.Context) finding {
	var median, largest time.Duration
	var n int
	var from string
	switch {
	case d.live != nil:
		samples, found, err := d.live.metric("depot_handheld_clock_offset_samples")
		if err != nil || !found {
			return warnLine("upgrade the depot, or read its /metrics by hand", "the running depot's /metrics has no clock offsets (%v)", err)
		}
		m, _, _ := d.live.metric("depot_handheld_clock_offset_seconds{median}")
		x, _, _ := d.live.metric("depot_handheld_clock_offset_seconds{max}")
		n, median, largest = int(samples), secs(m), secs(x)
		from = "fixes since the depot started"
	case d.store.err != nil:
		return warnLine("see the store line", "cannot read the stored fixes: %v", d.store.err)
	default:
		off := make([]int64, 0, len(d.store.fixes))
		for _, f := range d.store.fixes {
			off = append(off, f.Recv-f.TS)
		}
		n = len(off)
		if n > 0 {
			var s bridge.ClockOffsets
			for _, o := range off {
				s.Add(bridge.Fix{Recv: o})
			}
			sum := s.Summary()
			median, largest = sum.Median, sum.Max
		}
		from = "stored fixes, depot stopped"
	}
	if n == 0 {
		return okLine("no fixes yet to compare (%s)", from)
	}
	rel := "in step with"
	switch {
	case median > 0:
		rel = approx(median) + " behind"
	case median < 0:
		rel = approx(-median) + " ahead of"
	}
	what := fmt.Sprintf("handheld clocks %s the depot's (median of %d %s; largest %s)", rel, n, from, signed(largest))
	switch a := median.Abs(); {
	case a > 4*time.Minute:
		return failLine(fixTimesFix, "%s", what)
	case a > 30*time.Second:
		return warnLine(fixTimesFix, "%s", what)
	}
	return okLine("%s", what)
}

func secs(f float64) time.Duration {
	return time.Duration(f * float64(time.Second)).Round(time.Millisecond)
}

// signed says which way an offset (receipt − device time) goes.
func signed(d time.Duration) string {
	switch {
	case d > 0:
		return approx(d) + " behind"
	case d < 0:
		return approx(-d) + " ahead"
	}
	return "0s off"
}

// approx is d to the millisecond under 10 s, else to the second.
func approx(d time.Duration) string {
	if d.Abs() < 10*time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func (d *doctor) checkStore(ctx context.Context) finding {
	if d.live != nil {
		var h map[string]any
		code, err := d.live.get(ctx, "/readyz", &h)
		switch {
		case err != nil && code == 0:
			return failLine("see the depot's log", "the running depot's /readyz: %v", err)
		case code != http.StatusOK:
			return failLine("see the depot's log (journalctl -u depot); a full or failing disk is the usual cause: see the disk line",
				"the running depot is not ready (HTTP %d): %v", code, h["error"])
		}
		return okLine("the running depot's store is healthy (/readyz)")
	}
	l := d.store
	switch {
	case !l.exists:
		return okLine("no store yet in %s: depot serve makes it", dbDir(d.c.Data))
	case errors.Is(l.err, storage.ErrInUse):
		return warnLine("if that is this depot, tell the doctor its --http-addr (and --tls-cert); otherwise stop the other process",
			"another process holds %s, but no depot answers on %s", dbDir(d.c.Data), d.c.HTTPAddr)
	case errors.Is(l.err, fs.ErrPermission):
		return failLine("run the doctor as the depot's user (e.g. sudo -u depot depot doctor …) or as root", "%v", l.err)
	case errors.Is(l.err, storage.ErrCorrupt):
		return failLine(damaged(d.c.Data, l.err).Error(), "damaged: %v", l.err)
	case l.err != nil:
		return failLine("see the message; depot serve would refuse to start the same way", "%v", l.err)
	}
	return okLine("opens (depot stopped): %d events, %s", l.sum.Events, bytesIEC(l.sum.Bytes))
}

// bytesIEC is n in B, KiB, MiB, GiB or TiB.
func bytesIEC(n int64) string {
	f, unit := float64(n), 0
	for f >= 1024 && unit < 4 {
		f, unit = f/1024, unit+1
	}
	if unit == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f %s", f, [...]string{"", "KiB", "MiB", "GiB", "TiB"}[unit])
}

// defaultMinFree is the least free space the store must have to write
// at all.
const defaultMinFree = 100 << 20

func (d *doctor) checkDisk(ctx context.Context) finding {
	dir := d.c.Data
	for {
		if _, err := os.Stat(dir); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	free, total, err := d.statfs(dir)
	if err != nil {
		return failLine("check that --data names a directory this user can read", "statfs %s: %v", dir, err)
	}
	size, oldest, newest := int64(0), time.Time{}, time.Time{}
	switch {
	case d.live != nil:
		b, found, err := d.live.metric("depot_store_bytes")
		if err == nil && found {
			o, _, _ := d.live.metric("depot_store_oldest_event_timestamp_seconds")
			n, _, _ := d.live.metric("depot_store_newest_event_timestamp_seconds")
			size, oldest, newest = int64(b), unixSecs(o), unixSecs(n)
		} else if n, err := storage.DirBytes(dbDir(d.c.Data)); err == nil {
			size = n
		}
	case d.store.exists && d.store.err == nil:
		size, oldest, newest = d.store.sum.Bytes, d.store.sum.OldestEvent, d.store.sum.NewestEvent
	default:
		if n, err := storage.DirBytes(dbDir(d.c.Data)); err == nil {
			size = n
		}
	}
	retention := max(d.c.EventRetention, d.c.HistoryKeep)
	fix := fmt.Sprintf("free space on the filesystem of %s, or keep less: lower --event-retention (now %s) or --history-retention (now %s)",
		dir, d.c.EventRetention, d.c.HistoryKeep)
	head := fmt.Sprintf("%s free of %s", bytesIEC(free), bytesIEC(total))
	if free < d.minFree {
		return failLine(fix, "%s: the store needs at least %s to write", head, bytesIEC(d.minFree))
	}
	span := newest.Sub(oldest)
	if oldest.IsZero() || span < time.Hour {
		if total > 0 && free*20 < total {
			return warnLine(fix, "%s (under 5%%); store %s, too young to estimate its growth", head, bytesIEC(size))
		}
		return okLine("%s; store %s, too young to estimate its growth", head, bytesIEC(size))
	}
	perDay := float64(size) / span.Hours() * 24
	projected := size
	if span < retention {
		projected = int64(float64(size) * retention.Hours() / span.Hours())
	}
	more := projected - size
	what := fmt.Sprintf("%s; store %s, ~%s/day, ~%s at full retention (%s)", head, bytesIEC(size), bytesIEC(int64(perDay)),
		bytesIEC(projected), retention.Round(time.Hour))
	switch {
	case free < more && span < 24*time.Hour:
		// Under a day of history is a guess (a busy morning, a demo).
		return warnLine(fix, "%s: the disk would fill in about %.0f days at this pace (measured over %s only)", what,
			math.Floor(float64(free)/perDay), span.Round(time.Minute))
	case free < more:
		return failLine(fix, "%s: the disk fills in about %.0f days", what, math.Floor(float64(free)/perDay))
	case free < more+projected/2 || (total > 0 && free*20 < total):
		// The nightly compaction rewrites the live records, and backups
		// take their share: room for half the store again.
		return warnLine(fix, "%s: little room left for compaction and backups", what)
	}
	return okLine("%s", what)
}

// statfs is the space left to an unprivileged user, and the size, of
// dir's filesystem.
func statfs(dir string) (free, total int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), int64(st.Blocks) * int64(st.Bsize), nil
}

func unixSecs(f float64) time.Time {
	if f <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(f * 1000))
}

func (d *doctor) checkTLS(context.Context) finding {
	if d.c.TLSCert == "" {
		return okLine("off (no --tls-cert): MQTT and HTTP are plain")
	}
	renew := fmt.Sprintf("renew the certificate and replace %s (and --tls-key), then restart the depot", d.c.TLSCert)
	b, err := os.ReadFile(d.c.TLSCert)
	if err != nil {
		return failLine("check --tls-cert's path and that the depot's user can read it", "%v", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return failLine("--tls-cert must be a PEM certificate (BEGIN CERTIFICATE), the server's first", "%s holds no PEM certificate", d.c.TLSCert)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return failLine(renew, "%s: %v", d.c.TLSCert, err)
	}
	if _, err := tls.LoadX509KeyPair(d.c.TLSCert, d.c.TLSKey); err != nil {
		return failLine("--tls-key must be the private key of --tls-cert (readable by the depot's user)", "key pair: %v", err)
	}
	now := d.now()
	left := cert.NotAfter.Sub(now)
	names := strings.Join(cert.DNSNames, ",")
	if names == "" {
		names = cert.Subject.CommonName
	}
	what := fmt.Sprintf("%s expires %s", names, cert.NotAfter.UTC().Format("2006-01-02"))
	switch {
	case left <= 0:
		return failLine(renew, "%s: expired %.0f days ago; handhelds and browsers refuse it", what, math.Floor(-left.Hours()/24))
	case now.Before(cert.NotBefore):
		return failLine("check the clock (see the clock line) or the certificate's dates", "%s: not valid before %s", what, cert.NotBefore.UTC().Format(time.RFC3339))
	case left < 30*24*time.Hour:
		return warnLine(renew, "%s: in %.0f days", what, math.Floor(left.Hours()/24))
	}
	return okLine("%s (in %.0f days)", what, math.Floor(left.Hours()/24))
}

func (d *doctor) checkPorts(context.Context) finding {
	addrs := [][2]string{{"--http-addr", d.c.HTTPAddr}, {"--mqtt-addr", d.c.MQTTAddr}}
	if d.c.OsmAndAddr != "" {
		addrs = append(addrs, [2]string{"--osmand-addr", d.c.OsmAndAddr})
	}
	var list []string
	for _, a := range addrs {
		list = append(list, a[1])
	}
	if d.live != nil {
		return okLine("%s held by the running depot", strings.Join(list, ", "))
	}
	var bad, fixes []string
	for _, a := range addrs {
		l, err := net.Listen("tcp", a[1])
		if err == nil {
			l.Close()
			continue
		}
		_, port, _ := net.SplitHostPort(a[1])
		switch {
		case errors.Is(err, syscall.EADDRINUSE):
			bad = append(bad, fmt.Sprintf("%s %s is in use by another program", a[0], a[1]))
			fixes = append(fixes, fmt.Sprintf("find it: ss -ltnp 'sport = :%s' (as root to see the process); stop it or choose another %s", port, a[0]))
		case errors.Is(err, syscall.EACCES):
			bad = append(bad, fmt.Sprintf("%s %s: not allowed", a[0], a[1]))
			fixes = append(fixes, fmt.Sprintf("a port below 1024 needs root or CAP_NET_BIND_SERVICE (AmbientCapabilities= in the unit), or use a port above 1023 for %s", a[0]))
		default:
			bad = append(bad, fmt.Sprintf("%s %s: %v", a[0], a[1], err))
			fixes = append(fixes, fmt.Sprintf("check %s (host:port of this box)", a[0]))
		}
	}
	if len(bad) > 0 {
		return failLine(strings.Join(fixes, "\n"), "%s (the depot is not running)", strings.Join(bad, "; "))
	}
	return okLine("%s free (the depot is not running)", strings.Join(list, ", "))
}

func (d *doctor) checkFeed(ctx context.Context) finding {
	switch {
	case d.c.CortexURL == "" && d.c.Demo:
		return okLine("the demo's simulated feed (--demo)")
	case d.c.CortexURL == "":
		return warnLine("set --cortex-url to the route feed (or --demo to try the depot)", "no route feed: no routes will show")
	}
	src, err := feed.NewSource(d.c.CortexURL)
	if err != nil {
		return failLine("correct --cortex-url", "%v", err)
	}
	hs, isHTTP := src.(*feed.HTTPSource)
	if isHTTP {
		if d.offline {
			return okLine("%s: not tried (--offline)", hs)
		}
		hs.Header = d.c.feedHeader
		hs.Client = &http.Client{Timeout: d.timeout}
	}
	snaps, err := src.Fetch(ctx)
	if err != nil {
		fix := "check that the file exists and holds the feed's JSON (an array of routes)"
		if isHTTP {
			fix = "check --cortex-url and its credentials (--cortex-credentials-file), and that this box reaches the feed's host (DNS, firewall, proxy)"
		}
		return failLine(fix, "%s: %v", src, err)
	}
	if len(snaps) == 0 {
		return warnLine("check with the feed's owner that routes are published for this depot", "%s answered with no routes", src)
	}
	return okLine("%s: %d routes", src, len(snaps))
}

func (d *doctor) checkUpstream(ctx context.Context) finding {
	c := d.c
	if c.Upstream == "" {
		return okLine("off (no --upstream)")
	}
	if err := upstream.CheckURLs(c.Upstream); err != nil {
		return failLine("correct --upstream", "%v", err)
	}
	if d.offline {
		return okLine("%s: not tried (--offline)", c.Upstream)
	}
	opts := []nats.Option{nats.Name("depot doctor " + c.Depot), nats.Timeout(d.timeout), nats.NoReconnect(), nats.RetryOnFailedConnect(false)}
	opts = append(opts, upstream.AuthOptions(c.UpstreamCreds, c.UpstreamCA)...)
	nc, err := nats.Connect(c.Upstream, opts...)
	if err != nil {
		return failLine("check that this box reaches "+c.Upstream+" (DNS, firewall), and --upstream-creds and --upstream-ca",
			"connect: %s", upstream.Clip(err))
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return failLine("see the message", "%v", err)
	}
	at := nc.ConnectedUrlRedacted()
	s, err := js.Stream(ctx, upstream.StreamName)
	if err == nil {
		info := s.CachedInfo()
		return okLine("%s: stream %s, %d messages, %d replicas", at, upstream.StreamName, info.State.Msgs, info.Config.Replicas)
	}
	perms := "the user of --upstream-creds needs the permissions listed in docs/fleet.md"
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return failLine(perms, "%s: stream %s: %s", at, upstream.StreamName, upstream.Clip(err))
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		return failLine("enable JetStream for the account of --upstream-creds on the fleet's servers, or "+perms,
			"%s: no stream %s and JetStream does not answer: %s", at, upstream.StreamName, upstream.Clip(err))
	}
	return okLine("%s: stream %s not there yet; the depot makes it at start (%d replicas)", at, upstream.StreamName, c.UpstreamReplicas)
}

func (d *doctor) checkPush(context.Context) finding {
	c := d.c
	if c.NoWebPush && c.FCMCredentials == "" {
		return okLine("off (--no-webpush, no --fcm-credentials)")
	}
	var parts []string
	if !c.NoWebPush {
		_, err := push.ReadVAPID(c.Data)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			parts = append(parts, "web push keys made at first start")
		case err != nil:
			return failLine(fmt.Sprintf("restore %s from a backup of the data directory; deleting it makes new keys, and every driver app must then allow notifications again",
				filepath.Join(c.Data, "vapid.json")), "%v", err)
		default:
			parts = append(parts, "web push keys valid")
		}
	}
	if c.FCMCredentials != "" {
		newKey := "make a new service-account key (Firebase console: Project settings, Service accounts) and point --fcm-credentials at it"
		b, err := os.ReadFile(c.FCMCredentials)
		if err != nil {
			return failLine("check --fcm-credentials' path and that the depot's user can read it", "%v", err)
		}
		f, err := push.NewFCM(bytes.TrimSpace(b), c.FCMEndpoint, &http.Client{Timeout: d.timeout})
		if err != nil {
			return failLine(newKey, "%s: %v", c.FCMCredentials, err)
		}
		switch {
		case d.offline:
			parts = append(parts, fmt.Sprintf("FCM key of project %s parses (token not asked: --offline)", f.Project()))
		default:
			if err := f.CheckToken(); err != nil {
				return failLine(newKey+"; a wrong clock (see the clock line) or a proxy can also cause this",
					"FCM project %s: no access token: %s", f.Project(), upstream.Clip(err))
			}
			parts = append(parts, fmt.Sprintf("FCM project %s: access token issued", f.Project()))
		}
	}
	return okLine("%s", strings.Join(parts, "; "))
}

func (d *doctor) checkBackup(context.Context) finding {
	c := d.c
	scheme := "http://"
	if c.TLSCert != "" {
		scheme = "https://"
	}
	run := "with the depot running: depot backup --http " + scheme + dialAddr(c.HTTPAddr) + " (DEPOT_ADMIN_PASSWORD set);\n" +
		"a depot started takes one when its newest is older than --backup-interval. Look for \"scheduled backup failed\" in its log"
	newest, err := newestBackup(backupDir(c.Data))
	if err != nil {
		return failLine("check that "+backupDir(c.Data)+" is readable", "%v", err)
	}
	if c.BackupInterval <= 0 {
		if newest == "" {
			return warnLine("set --backup-interval (24h) or run depot backup from a timer", "scheduled backups off (--backup-interval 0) and no backup")
		}
	}
	if newest == "" {
		if _, err := os.Stat(dbDir(c.Data)); errors.Is(err, fs.ErrNotExist) {
			return okLine("no store yet, so no backup yet")
		}
		return failLine(run, "no backup in %s", backupDir(c.Data))
	}
	at, err := backupTime(newest)
	if err != nil {
		return failLine("check "+newest, "%v", err)
	}
	age := d.now().Sub(at)
	what := fmt.Sprintf("newest %s, %s old", filepath.Base(newest), age.Round(time.Minute))
	switch {
	case c.BackupInterval <= 0:
		return warnLine("set --backup-interval (24h) or run depot backup from a timer", "%s; scheduled backups off (--backup-interval 0)", what)
	case age > 3*c.BackupInterval:
		return failLine(run, "%s: over three --backup-interval (%s)", what, c.BackupInterval)
	case age > c.BackupInterval+c.BackupInterval/2:
		return warnLine(run, "%s: older than --backup-interval (%s)", what, c.BackupInterval)
	}
	return okLine("%s (--backup-interval %s)", what, c.BackupInterval)
}
