package broker

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// expiring hands out sessions that end at exp, as login tokens do.
type expiring struct {
	switchable
	exp atomic.Int64 // unix ns
}

func expiringAt(t time.Time) *expiring {
	e := &expiring{}
	e.exp.Store(t.UnixNano())
	return e
}

func (e *expiring) Authenticate(c Connect) (Session, error) {
	return Session{Identity: "dispatcher:" + c.ClientID, Expires: time.Unix(0, e.exp.Load())}, nil
}

// connectV5Raw sends an MQTT 5 CONNECT with the given CONNECT properties
// and returns the CONNACK's reason code, or ok false when the broker closed
// the connection without one.
func connectV5Raw(t *testing.T, addr, clientID string, props []byte) (c net.Conn, code byte, ok bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, byte(len(props))}
	body = append(body, props...)
	body = binary.BigEndian.AppendUint16(body, uint16(len(clientID)))
	body = append(body, clientID...)
	if _, err := c.Write(rawPacket(0x10, body)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, b, err := readRaw(c)
	if err != nil || typ != 0x20 || len(b) < 2 {
		return c, 0, false
	}
	return c, b[1], true
}

// readRaw reads one packet: its first byte and its body.
func readRaw(c net.Conn) (byte, []byte, error) {
	h := make([]byte, 1)
	if _, err := io.ReadFull(c, h); err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for {
		var d [1]byte
		if _, err := io.ReadFull(c, d[:]); err != nil {
			return 0, nil, err
		}
		n += int(d[0]&0x7f) * mul
		if d[0]&0x80 == 0 {
			break
		}
		mul *= 128
	}
	b := make([]byte, n)
	_, err := io.ReadFull(c, b)
	return h[0], b, err
}

func (s *Server) expiryEntries() (timers, pending int) {
	s.expiry.Range(func(_, _ any) bool { timers++; return true })
	s.expires.Range(func(_, _ any) bool { pending++; return true })
	return
}

// TestTinyMaximumPacketSizeRefused: a client asking for a Maximum Packet
// Size too small for the CONNACK is refused. mochi could not write the
// CONNACK, then kept the client in its table for the session expiry and
// told no hook, so each such CONNECT with a login token leaked the client
// and its expiry timer.
func TestTinyMaximumPacketSizeRefused(t *testing.T) {
	s := New(Config{TCPAddr: "127.0.0.1:0", Auth: expiringAt(time.Now().Add(12 * time.Hour)), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mps := []byte{0x27, 0, 0, 0, 1} // Maximum Packet Size 1
	base := s.mq.Clients.Len()      // the server's own inline client
	for i := range 20 {
		c, code, ok := connectV5Raw(t, s.Addr(), fmt.Sprintf("dash-ana:%d", i), mps)
		if ok && code == 0 {
			t.Fatalf("CONNECT %d with Maximum Packet Size 1 accepted", i)
		}
		c.Close()
	}
	checkFor(t, 10*time.Second, func() error {
		timers, pending := s.expiryEntries()
		if n := s.mq.Clients.Len() - base; n != 0 || timers != 0 || pending != 0 {
			return fmt.Errorf("%d clients, %d expiry timers, %d pending expiries left", n, timers, pending)
		}
		return nil
	})
}

// TestExpiryTimers: a session whose token is already past is refused
// (0x86) and leaves nothing behind; one that ends soon gets DISCONNECT
// 0xA0 and leaves no timer either.
func TestExpiryTimers(t *testing.T) {
	auth := expiringAt(time.Now().Add(-2 * time.Second))
	s := New(Config{TCPAddr: "127.0.0.1:0", Auth: auth, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 20 {
		c, code, ok := connectV5Raw(t, s.Addr(), fmt.Sprintf("dash-ana:old%d", i), nil)
		if !ok || code != 0x86 {
			t.Fatalf("CONNECT with an expired token: CONNACK %v 0x%02x, want 0x86", ok, code)
		}
		c.Close()
	}
	auth.exp.Store(time.Now().Add(500 * time.Millisecond).UnixNano())
	c, code, ok := connectV5Raw(t, s.Addr(), "dash-ana:soon", nil)
	if !ok || code != 0 {
		t.Fatalf("CONNECT: %v 0x%02x", ok, code)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if typ, b, err := readRaw(c); err != nil || typ != 0xE0 || len(b) == 0 || b[0] != 0xA0 {
		t.Fatalf("no DISCONNECT 0xA0: %x % x %v", typ, b, err)
	}
	checkFor(t, 10*time.Second, func() error {
		if timers, pending := s.expiryEntries(); timers != 0 || pending != 0 {
			return fmt.Errorf("%d expiry timers, %d pending expiries left", timers, pending)
		}
		return nil
	})
}
