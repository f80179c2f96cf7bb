package broker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// flakyListener fails Accept with errs, in order, before it passes through.
type flakyListener struct {
	net.Listener
	mu   sync.Mutex
	errs []error
}

func (l *flakyListener) inject(errs ...error) {
	l.mu.Lock()
	l.errs = append(l.errs, errs...)
	l.mu.Unlock()
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		l.mu.Unlock()
		return nil, err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

func emfile() error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
}

// TestAcceptSurvivesEMFILE: mochi's Serve loop, given the retrying
// listener, still hands over the connection that comes after a few
// "too many open files" (mochi alone returns on the first and never
// accepts again).
func TestAcceptSurvivesEMFILE(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &flakyListener{Listener: inner}
	fl.inject(emfile(), emfile(), emfile(), emfile())
	var logs bytes.Buffer
	var failed error
	ln := newAcceptRetry(fl, slog.New(slog.NewTextHandler(&logs, nil)), func(err error) { failed = err })
	defer ln.Close()
	got := make(chan net.Conn, 1)
	served := make(chan struct{})
	go func() {
		listeners.NewNet("t", ln).Serve(func(_ string, c net.Conn) error { got <- c; return nil })
		close(served)
	}()
	c, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case sc := <-got:
		sc.Close()
	case <-served:
		t.Fatal("mochi's Serve returned after EMFILE: the listener is dead")
	case <-time.After(10 * time.Second):
		t.Fatal("no connection delivered")
	}
	if failed != nil {
		t.Fatalf("a passing error was taken as fatal: %v", failed)
	}
	if n := strings.Count(logs.String(), "retrying"); n != 1 {
		t.Fatalf("%d retry lines for one run of failures:\n%s", n, logs.String())
	}
}

// TestBrokerAcceptsAfterAcceptErrors: the whole broker keeps accepting
// MQTT clients after its listener saw passing errors, and reports a
// listener that failed for good through Err.
func TestBrokerAcceptsAfterAcceptErrors(t *testing.T) {
	var fl *flakyListener
	s := New(Config{TCPAddr: "127.0.0.1:0", Auth: anyone{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		WrapListener: func(ln net.Listener) net.Listener { fl = &flakyListener{Listener: ln}; return fl }})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	connack := func(id string) error {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			return err
		}
		defer c.Close()
		pkt := []byte{0x10, byte(10 + 2 + len(id)), 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, byte(len(id))}
		if _, err := c.Write(append(pkt, id...)); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 4)
		if _, err := io.ReadFull(c, b); err != nil || b[0] != 0x20 || b[3] != 0 {
			return fmt.Errorf("no CONNACK 0: % x %v", b, err)
		}
		return nil
	}
	if err := connack("before"); err != nil {
		t.Fatal(err)
	}
	// The accept loop is blocked in Accept now; the errors come on its next
	// calls, i.e. after the next connection.
	fl.inject(emfile(), emfile(), &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.ECONNABORTED)})
	for i := range 3 {
		if err := connack(fmt.Sprint("after", i)); err != nil {
			t.Fatalf("connection %d after accept errors: %v", i, err)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatalf("Err after passing errors: %v", err)
	}
	fl.inject(errors.New("listener broken for good"))
	_ = connack("trigger") // the next Accept fails for good
	checkFor(t, 5*time.Second, func() error {
		if s.Err() == nil {
			return errors.New("the listener still counts as alive")
		}
		return nil
	})
	if err := s.Err(); err == nil || !strings.Contains(err.Error(), "for good") {
		t.Fatalf("Err after a fatal accept error: %v", err)
	}
}
