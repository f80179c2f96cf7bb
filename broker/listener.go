package broker

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// acceptRetry keeps the MQTT TCP listener alive through accept errors that
// pass. mochi's listeners.Net.Serve returns on the first Accept error and
// nothing restarts it, so one moment out of file descriptors (EMFILE) would
// otherwise leave the broker deaf to handhelds until a restart. Like
// net/http's Server.Serve it sleeps 5 ms, doubling to 1 s, between tries,
// and it logs once per run of failures rather than once per try. An error
// that will not pass (and is not our own Close) is recorded with fail, so
// the health checks can say the broker no longer accepts.
type acceptRetry struct {
	net.Listener
	log  *slog.Logger
	fail func(error)

	closed    atomic.Bool
	done      chan struct{}
	closeOnce sync.Once
}

func newAcceptRetry(ln net.Listener, log *slog.Logger, fail func(error)) *acceptRetry {
	return &acceptRetry{Listener: ln, log: log, fail: fail, done: make(chan struct{})}
}

func (l *acceptRetry) Accept() (net.Conn, error) {
	var delay time.Duration
	failures := 0
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			if failures > 0 {
				l.log.Warn("mqtt accept working again", "failed", failures)
			}
			return c, nil
		}
		if l.closed.Load() {
			return nil, err
		}
		if !temporaryAcceptError(err) {
			l.log.Error("mqtt listener stopped: handhelds can no longer connect", "err", err)
			l.fail(err)
			return nil, err
		}
		failures++
		if delay == 0 {
			delay = 5 * time.Millisecond
			l.log.Warn("mqtt accept failing; retrying", "err", err)
		} else if delay *= 2; delay > time.Second {
			delay = time.Second
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-l.done:
			t.Stop()
			return nil, net.ErrClosed
		}
	}
}

func (l *acceptRetry) Close() error {
	l.closed.Store(true)
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// temporaryAcceptError reports whether an Accept error may pass: out of
// descriptors or buffers, or a connection that died in the backlog.
func temporaryAcceptError(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ECONNABORTED,
		syscall.ECONNRESET, syscall.ENOBUFS, syscall.ENOMEM, syscall.EINTR, syscall.EAGAIN, syscall.EPROTO} {
		if errors.Is(err, e) {
			return true
		}
	}
	var te interface{ Temporary() bool }
	return errors.As(err, &te) && te.Temporary()
}

// tcpListener serves MQTT over TCP in place of mochi's listeners.Net. It
// keeps count of the connections it handed to mochi, so shutdown can wait
// for them before it waits for mochi's own client count: mochi adds to that
// count inside the connection's goroutine, and a connection accepted just
// before the listener closed could otherwise add to it while shutdown is
// already waiting on it (a WaitGroup misuse the race detector reports).
type tcpListener struct {
	id     string
	ln     net.Listener
	log    *slog.Logger
	conns  sync.WaitGroup
	served chan struct{}
}

func newTCPListener(id string, ln net.Listener) *tcpListener {
	return &tcpListener{id: id, ln: ln, served: make(chan struct{})}
}

func (l *tcpListener) ID() string       { return l.id }
func (l *tcpListener) Address() string  { return l.ln.Addr().String() }
func (l *tcpListener) Protocol() string { return "tcp" }

func (l *tcpListener) Init(log *slog.Logger) error {
	l.log = log
	return nil
}

func (l *tcpListener) Serve(establish listeners.EstablishFn) {
	defer close(l.served)
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.conns.Add(1)
		go func() {
			defer l.conns.Done()
			if err := establish(l.id, c); err != nil {
				// Every refused or dropped client ends here; the
				// reasons that matter were logged on the way.
				l.log.Debug("mqtt connection ended", "err", err)
			}
		}()
	}
}

func (l *tcpListener) Close(closeClients listeners.CloseFn) {
	_ = l.ln.Close()
	closeClients(l.id)
}

// wait waits up to until for the accept loop to end and every connection
// it handed over to finish.
func (l *tcpListener) wait(until <-chan time.Time) bool {
	select {
	case <-l.served:
	case <-until:
		return false
	}
	done := make(chan struct{})
	go func() { l.conns.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-until:
		return false
	}
}
