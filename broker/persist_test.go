package broker

import (
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/hooks/storage"
)

// countingSessions is a SessionStore in memory that counts its writes.
type countingSessions struct {
	mu     sync.Mutex
	kv     map[string][]byte
	writes map[string]int // by key prefix (storage's kind)
}

func (c *countingSessions) count(key string) {
	kind, _, _ := strings.Cut(key, "_")
	c.writes[kind]++
}
func (c *countingSessions) PutSession(k string, v []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.count(k)
	c.kv[k] = append([]byte(nil), v...)
	return nil
}
func (c *countingSessions) DeleteSession(k string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.count(k)
	delete(c.kv, k)
	return nil
}
func (c *countingSessions) ScanSessions(prefix string) ([][]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out [][]byte
	for k, v := range c.kv {
		if strings.HasPrefix(k, prefix) {
			out = append(out, v)
		}
	}
	return out, nil
}

// TestInboundQoS1NotPersisted: a handheld with a persistent session
// publishing QoS 1 costs the session store nothing per message. mochi
// files its PUBACK as an inflight around writing it; stored, that was two
// synced transactions per fix.
func TestInboundQoS1NotPersisted(t *testing.T) {
	sess := &countingSessions{kv: map[string][]byte{}, writes: map[string]int{}}
	s := New(Config{TCPAddr: "127.0.0.1:0", Auth: &switchable{}, Sessions: sess,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// MQTT 3.1.1 CONNECT, clean session off: a persistent session.
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x00, 0, 60, 0, 2, 'h', '1'}
	if _, err := c.Write(rawPacket(0x10, body)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil || ack[3] != 0 {
		t.Fatalf("CONNACK %v, %v", ack, err)
	}
	const n = 50
	for i := range n {
		topic := "a/gps"
		p := binary.BigEndian.AppendUint16(nil, uint16(len(topic)))
		p = append(p, topic...)
		p = binary.BigEndian.AppendUint16(p, uint16(i+1))
		p = append(p, `{"lat":1}`...)
		if _, err := c.Write(rawPacket(0x32, p)); err != nil { // PUBLISH, QoS 1
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 0x40 {
			t.Fatalf("PUBACK %d: % x, %v", i+1, ack, err)
		}
	}
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.writes[storage.ClientKey] == 0 {
		t.Fatalf("the session itself was not stored (%v): the client is not persistent, the test checks nothing", sess.writes)
	}
	if w := sess.writes[storage.InflightKey]; w != 0 {
		t.Errorf("%d QoS 1 publishes wrote %d inflight records, want 0", n, w)
	}
}
