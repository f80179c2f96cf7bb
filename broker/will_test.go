package broker

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// switchable lets wills through until revoked is set.
type switchable struct{ revoked atomic.Bool }

func (*switchable) Authenticate(c Connect) (Session, error) {
	return Session{Identity: "driver:" + c.ClientID}, nil
}
func (*switchable) Allow(identity, topic string, write bool) bool { return true }
func (s *switchable) Publish(identity string, m Message) (bool, error) {
	if s.revoked.Load() {
		return false, &Refused{Code: CodeNotAuthorized, Reason: "revoked"}
	}
	return m.Retain, nil
}

// connectWithWill sends a 3.1.1 CONNECT (clean session) with a retained
// QoS 1 will and returns the connection once accepted.
func connectWithWill(t *testing.T, addr, clientID, topic, payload string) net.Conn {
	t.Helper()
	c, code := dialWithWill(t, addr, clientID, topic, payload, 0x08|0x20)
	if code != 0 {
		t.Fatalf("CONNACK return code %d", code)
	}
	return c
}

// dialWithWill sends a 3.1.1 CONNECT with a will (flags adds QoS and
// retain bits) and returns the CONNACK's return code.
func dialWithWill(t *testing.T, addr, clientID, topic, payload string, flags byte) (net.Conn, byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02 | 0x04 | flags, 0, 60}
	for _, s := range []string{clientID, topic, payload} {
		body = binary.BigEndian.AppendUint16(body, uint16(len(s)))
		body = append(body, s...)
	}
	if _, err := c.Write(rawPacket(0x10, body)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("no CONNACK: %v", err)
	}
	return c, b[3]
}

// TestWillCheckedWhenSent: a will is judged again when mochi sends it (it
// would otherwise go out with no check at all): a will that was fine at
// CONNECT but whose sender lost the right since reaches nobody and is not
// retained; one that is still fine is delivered and retained.
func TestWillCheckedWhenSent(t *testing.T) {
	auth := &switchable{}
	s := New(Config{TCPAddr: "127.0.0.1:0", Auth: auth, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var mu sync.Mutex
	var got []string
	if err := s.Subscribe("#", 1, func(topic string, payload []byte) {
		mu.Lock()
		got = append(got, topic+" "+string(payload))
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	gone := func(id string) {
		t.Helper()
		checkFor(t, 10*time.Second, func() error {
			if _, ok := s.mq.Clients.Get(id); ok {
				return fmt.Errorf("client %s still there", id)
			}
			return nil
		})
	}

	c := connectWithWill(t, s.Addr(), "h1", "a/presence", "offline")
	auth.revoked.Store(true)
	c.Close() // not a DISCONNECT: the will is due
	gone("h1")
	mu.Lock()
	if len(got) != 0 {
		t.Errorf("a refused will was delivered: %q", got)
	}
	mu.Unlock()
	if n := retained(s); n != 0 {
		t.Errorf("%d retained messages after a refused will", n)
	}
	if s.Stats.PublishDenied.Load() != 1 {
		t.Errorf("refused wills counted: %d", s.Stats.PublishDenied.Load())
	}

	auth.revoked.Store(false)
	c = connectWithWill(t, s.Addr(), "h2", "b/presence", "offline")
	c.Close()
	gone("h2")
	checkFor(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(got) == 0 {
			return fmt.Errorf("an allowed will was not delivered")
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "b/presence offline" {
		t.Errorf("delivered %q", got)
	}
	if n := retained(s); n != 1 {
		t.Errorf("%d retained messages after an allowed retained will", n)
	}
}

// refuseWills refuses every will and nothing else.
type refuseWills struct{ switchable }

func (*refuseWills) Publish(identity string, m Message) (bool, error) {
	if m.Will {
		return false, &Refused{Code: CodeNotAuthorized, Reason: "no"}
	}
	return m.Retain, nil
}

// TestWillRefusedAtConnect: a will the identity may not leave refuses the
// CONNECT with return code 5 (not authorized).
func TestWillRefusedAtConnect(t *testing.T) {
	s := New(Config{TCPAddr: "127.0.0.1:0", Auth: &refuseWills{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, code := dialWithWill(t, s.Addr(), "h3", "depot/X/events", `{"seq":1000000000000}`, 0); code != 5 {
		t.Fatalf("CONNACK return code %d: want 5", code)
	}
	if s.Stats.ConnectRefused.Load() != 1 {
		t.Errorf("refusals counted: %d", s.Stats.ConnectRefused.Load())
	}
}

// retained counts retained messages outside $SYS.
func retained(s *Server) int {
	n := 0
	for topic := range s.mq.Topics.Retained.GetAll() {
		if !strings.HasPrefix(topic, "$SYS") {
			n++
		}
	}
	return n
}
