package main

// The service manager's side of `depot serve` under systemd (packaging/
// depot.service, Type=notify): readiness, stopping and the watchdog, told
// over the datagram socket systemd names in $NOTIFY_SOCKET (sd_notify(3)),
// with the standard library alone. Outside systemd (no $NOTIFY_SOCKET)
// none of this does anything.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// notifier sends sd_notify messages; a nil notifier sends nothing.
type notifier struct {
	addr *net.UnixAddr
}

// newNotifier is the notifier of socket, the value of $NOTIFY_SOCKET: a
// path, or an abstract socket's name after '@'. Empty: nil, no-op.
func newNotifier(socket string) (*notifier, error) {
	switch {
	case socket == "":
		return nil, nil
	case socket[0] == '/' || socket[0] == '@' && len(socket) > 1:
		// Go's net package maps a leading '@' to the abstract namespace.
		return &notifier{addr: &net.UnixAddr{Name: socket, Net: "unixgram"}}, nil
	}
	return nil, fmt.Errorf("NOTIFY_SOCKET %q: want a path or @abstract name", socket)
}

// notify sends one message, such as "READY=1" (newline-separated
// assignments). One datagram, one short-lived socket: a few a minute.
func (n *notifier) notify(state string) error {
	if n == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// watchdogInterval is systemd's watchdog timeout for this process
// ($WATCHDOG_USEC, when $WATCHDOG_PID is absent or names this process);
// 0: no watchdog.
func watchdogInterval(usec, pid string) (time.Duration, error) {
	if usec == "" {
		return 0, nil
	}
	if pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0, nil // meant for another process
	}
	n, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("WATCHDOG_USEC %q: want a positive number of microseconds", usec)
	}
	return time.Duration(n) * time.Microsecond, nil
}

// openNotify reads $NOTIFY_SOCKET and $WATCHDOG_USEC (unless a test set
// m.notify), and with a watchdog sets up the broker's probe.
func (m *Main) openNotify() error {
	if m.notify == nil {
		n, err := newNotifier(os.Getenv("NOTIFY_SOCKET"))
		if err != nil {
			m.Log.Warn("not telling the service manager", "err", err)
		}
		m.notify = n
		if n == nil {
			return nil
		}
		wd, err := watchdogInterval(os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"))
		if err != nil {
			m.Log.Warn("watchdog off", "err", err)
		}
		m.watchdog = wd
	}
	return nil
}

// ready tells the service manager the depot is serving (the end of Run)
// and starts the watchdog's pings.
func (m *Main) ready(ctx context.Context) error {
	if m.notify == nil {
		return nil
	}
	if err := m.notify.notify("READY=1\nSTATUS=" + m.serving()); err != nil {
		m.Log.Warn("could not tell the service manager the depot is ready", "err", err)
	}
	if m.watchdog <= 0 {
		return nil
	}
	w, err := m.newWatchdog()
	if err != nil {
		return err
	}
	m.Log.Info("systemd watchdog on", "timeout", m.watchdog, "ping", w.every, "hung_after", m.Config.WatchdogHungAfter)
	m.goRun(func() { w.run(ctx) })
	return nil
}

// serving is the status line of a depot that serves.
func (m *Main) serving() string {
	return fmt.Sprintf("serving depot %s: http %s, mqtt %s", m.Config.Depot, m.web.Addr(), m.broker.Addr())
}

// stopping tells the service manager the depot is shutting down (the start
// of Close).
func (m *Main) stopping() {
	if err := m.notify.notify("STOPPING=1"); err != nil && m.Log != nil {
		m.Log.Warn("could not tell the service manager the depot is stopping", "err", err)
	}
}

// watchdogTopic carries the broker probe: a $SYS topic, which no client
// may publish to and no client's wildcard matches.
const watchdogTopic = "$SYS/depot/watchdog"

// watchdog pings the service manager every third of its timeout while the
// depot is alive: the commit pipeline not stuck on one batch, the broker
// routing a message, the HTTP server answering /healthz. When a check
// fails it does not ping, and systemd restarts the depot once the timeout
// has passed with no ping.
type watchdog struct {
	m       *Main
	every   time.Duration
	timeout time.Duration // of one check
	log     *slog.Logger
	http    *http.Client
	url     string

	probes   atomic.Uint64 // broker probes sent
	answered atomic.Uint64 // the newest probe the broker delivered back
	inflight atomic.Bool   // a probe's publish has not returned

	failing string // the checks failing at the last round ("": none)
}

func (m *Main) newWatchdog() (*watchdog, error) {
	every := m.watchdog / 3
	w := &watchdog{m: m, every: every, timeout: min(max(every, 250*time.Millisecond), 5*time.Second),
		log: m.Log.With("part", "watchdog")}
	scheme, tr := "http", &http.Transport{MaxIdleConns: 1, DisableCompression: true}
	if m.tls != nil {
		scheme, tr.TLSClientConfig = "https", selfTLS(m.tls.Certificates[0])
	}
	w.http = &http.Client{Transport: tr, Timeout: w.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	w.url = scheme + "://" + loopbackAddr(m.web.Addr()) + "/healthz"
	err := m.broker.Subscribe(watchdogTopic, 2, func(_ string, p []byte) {
		if n, err := strconv.ParseUint(string(p), 10, 64); err == nil {
			w.answered.Store(n)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("watchdog's broker probe: %w", err)
	}
	return w, nil
}

// loopbackAddr is where the depot reaches its own listener at addr: the
// address itself, or 127.0.0.1 for an unspecified one (0.0.0.0, and [::],
// which Go listens on for IPv4 too). No name: a box whose /etc/hosts lacks
// localhost would ask its DNS server, which may not know it.
func loopbackAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func (w *watchdog) run(ctx context.Context) {
	defer w.http.CloseIdleConnections()
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		w.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// round checks and pings when every check passed; it logs only when the
// set of failing checks changes.
func (w *watchdog) round(ctx context.Context) {
	errs := w.check(ctx)
	if ctx.Err() != nil {
		return // shutting down: Close said STOPPING=1
	}
	var names []string
	for _, e := range errs {
		names = append(names, e.name)
	}
	failing := strings.Join(names, ",")
	if failing != w.failing {
		// systemctl status shows the state too.
		status := w.m.serving()
		if failing != "" {
			status = "not alive (" + failing + " failing): no watchdog ping; see the log"
		}
		if err := w.m.notify.notify("STATUS=" + status); err != nil {
			w.log.Warn("status", "err", err)
		}
		if failing == "" {
			w.log.Info("alive again: pinging the service manager")
		} else {
			args := []any{"failing", failing}
			for _, e := range errs {
				args = append(args, e.name, e.err.Error())
			}
			w.log.Error("not alive: no watchdog ping; systemd restarts the depot if this lasts", args...)
		}
		w.failing = failing
	}
	if failing != "" {
		return
	}
	if err := w.m.notify.notify("WATCHDOG=1"); err != nil {
		w.log.Warn("watchdog ping", "err", err)
	}
}

type checkErr struct {
	name string
	err  error
}

// check runs the three checks, each bounded by w.timeout.
func (w *watchdog) check(ctx context.Context) []checkErr {
	var errs []checkErr
	// A backup or the nightly compaction holds the store, and commits wait
	// for it: long on a big store, but not hung.
	if b, limit := w.m.depot.Busy(), w.m.Config.WatchdogHungAfter; b > limit && w.m.maintenance.Load() == 0 {
		errs = append(errs, checkErr{"pipeline", fmt.Errorf("one batch of work has been in the commit pipeline for %s (limit %s)",
			b.Round(time.Millisecond), limit)})
	}
	if err := w.checkBroker(ctx); err != nil {
		errs = append(errs, checkErr{"broker", err})
	}
	if err := w.checkHTTP(ctx); err != nil {
		errs = append(errs, checkErr{"http", err})
	}
	return errs
}

// checkBroker: the MQTT listener still accepts (Err), and a message
// published through the broker reaches the broker's own subscription in
// time. A publish that never returns is not sent again while it hangs.
func (w *watchdog) checkBroker(ctx context.Context) error {
	if err := w.m.broker.Err(); err != nil {
		return err
	}
	if !w.inflight.CompareAndSwap(false, true) {
		return errors.New("a probe published earlier has not returned")
	}
	n := w.probes.Add(1)
	go func() {
		defer w.inflight.Store(false)
		_ = w.m.broker.Publish(watchdogTopic, []byte(strconv.FormatUint(n, 10)), false, 0)
	}()
	deadline := time.NewTimer(w.timeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for w.answered.Load() < n {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("a probe message was not delivered within %s", w.timeout)
		case <-tick.C:
		}
	}
	return nil
}

// checkHTTP: GET /healthz on the depot's own listener answers 200.
func (w *watchdog) checkHTTP(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.url, nil)
	if err != nil {
		return err
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /healthz: %s", resp.Status)
	}
	return nil
}
