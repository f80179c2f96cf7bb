package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// laterIngest answers each QoS 1 publish later: done blocks until the test
// releases it with an error (nil: stored).
type laterIngest struct {
	mu      sync.Mutex
	taken   []string
	release map[string]chan error
}

func (l *laterIngest) Ingest(clientID, topic string, payload []byte, qos byte) error {
	return errors.New("Ingest called for a QoS 1 publish a LaterIngestor takes")
}

func (l *laterIngest) IngestLater(clientID, topic string, payload []byte, qos byte) (func() error, error) {
	ch := make(chan error, 1)
	l.mu.Lock()
	l.taken = append(l.taken, string(payload))
	l.release[string(payload)] = ch
	l.mu.Unlock()
	return func() error { return <-ch }, nil
}

func (l *laterIngest) answer(t *testing.T, payload string, err error) {
	t.Helper()
	checkFor(t, 10*time.Second, func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if ch, ok := l.release[payload]; ok {
			ch <- err
			delete(l.release, payload)
			return nil
		}
		return fmt.Errorf("%s not taken yet", payload)
	})
}

// rawClient connects with MQTT v (4: 3.1.1, 5) and a clean start.
func rawClient(t *testing.T, addr, id string, v byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', v, 0x02, 0, 60}
	if v == 5 {
		body = append(body, 0) // no properties
	}
	body = binary.BigEndian.AppendUint16(body, uint16(len(id)))
	body = append(body, id...)
	if _, err := c.Write(rawPacket(0x10, body)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	typ, ack := readPkt(t, c)
	if typ != 0x20 || ack[1] != 0 {
		t.Fatalf("CONNACK %x % x", typ, ack)
	}
	return c
}

func publishRaw(t *testing.T, c net.Conn, v byte, id uint16, topic, payload string) {
	t.Helper()
	p := binary.BigEndian.AppendUint16(nil, uint16(len(topic)))
	p = append(p, topic...)
	p = binary.BigEndian.AppendUint16(p, id)
	if v == 5 {
		p = append(p, 0)
	}
	p = append(p, payload...)
	if _, err := c.Write(rawPacket(0x32, p)); err != nil {
		t.Fatal(err)
	}
}

// readPkt reads one packet, failing the test when it cannot.
func readPkt(t *testing.T, c net.Conn) (byte, []byte) {
	t.Helper()
	typ, b, err := readRaw(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return typ, b
}

// TestAnswerLater: with a LaterIngestor, a client's QoS 1 publishes are
// all taken before the first is safe (its read loop does not wait for the
// store); each PUBACK goes out only when its publish is safe, in the
// order they came; a subscriber gets each only after it is safe; a
// failure is a reason code for MQTT 5 and no PUBACK for 3.1.1.
func TestAnswerLater(t *testing.T) {
	li := &laterIngest{release: map[string]chan error{}}
	s := New(Config{TCPAddr: "127.0.0.1:0", Auth: &switchable{}, Ingest: li, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var mu sync.Mutex
	var delivered []string
	if err := s.Subscribe("d/#", 1, func(topic string, payload []byte) {
		mu.Lock()
		delivered = append(delivered, string(payload))
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}

	c := rawClient(t, s.Addr(), "h5", 5)
	for i := range 3 {
		publishRaw(t, c, 5, uint16(i+1), "d/gps", fmt.Sprintf("v5-%d", i+1))
	}
	checkFor(t, 10*time.Second, func() error {
		li.mu.Lock()
		defer li.mu.Unlock()
		if len(li.taken) != 3 {
			return fmt.Errorf("taken %q before any was answered, want all 3", li.taken)
		}
		return nil
	})
	mu.Lock()
	if len(delivered) != 0 {
		t.Fatalf("delivered before safe: %q", delivered)
	}
	mu.Unlock()
	li.answer(t, "v5-1", nil)
	li.answer(t, "v5-2", errors.New("disk full"))
	li.answer(t, "v5-3", nil)
	for i, want := range []struct {
		id     uint16
		reason byte
	}{{1, 0}, {2, 0x80}, {3, 0}} {
		typ, b := readPkt(t, c)
		reason := byte(0)
		if len(b) > 2 {
			reason = b[2]
		}
		if typ != 0x40 || binary.BigEndian.Uint16(b) != want.id || reason != want.reason {
			t.Fatalf("answer %d: type %x % x, want PUBACK %d reason %x", i+1, typ, b, want.id, want.reason)
		}
	}
	checkFor(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if fmt.Sprint(delivered) != "[v5-1 v5-3]" {
			return fmt.Errorf("delivered %q, want v5-1 and v5-3", delivered)
		}
		return nil
	})

	// 3.1.1: a failure is not acknowledged, so the handheld resends.
	c4 := rawClient(t, s.Addr(), "h4", 4)
	publishRaw(t, c4, 4, 7, "d/gps", "v4-fail")
	publishRaw(t, c4, 4, 8, "d/gps", "v4-ok")
	li.answer(t, "v4-fail", errors.New("disk full"))
	li.answer(t, "v4-ok", nil)
	typ, b := readPkt(t, c4)
	if typ != 0x40 || binary.BigEndian.Uint16(b) != 8 {
		t.Fatalf("3.1.1: type %x % x, want only the PUBACK of 8", typ, b)
	}

	// A client gone with answers pending: they are waited for and dropped.
	publishRaw(t, c4, 4, 9, "d/gps", "v4-gone")
	checkFor(t, 10*time.Second, func() error {
		li.mu.Lock()
		defer li.mu.Unlock()
		if _, ok := li.release["v4-gone"]; !ok {
			return errors.New("not taken")
		}
		return nil
	})
	c4.Close()
	checkFor(t, 10*time.Second, func() error {
		n := 0
		s.answers.Range(func(k, _ any) bool {
			if k.(*mqtt.Client).ID == "h4" {
				n++
			}
			return true
		})
		if n > 0 {
			return errors.New("the answerer of a gone client is still registered")
		}
		return nil
	})
	li.answer(t, "v4-gone", nil)
}
