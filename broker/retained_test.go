package broker

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"
)

// publishV5Retained sends a QoS 0 retained PUBLISH with a Message Expiry
// Interval of expiry seconds (none when 0) on an MQTT 5 connection.
func publishV5Retained(t *testing.T, addr, clientID, topic, payload string, expiry uint32) {
	t.Helper()
	c, code, ok := connectV5Raw(t, addr, clientID, nil)
	if !ok || code != 0 {
		t.Fatalf("CONNECT: %v 0x%02x", ok, code)
	}
	body := binary.BigEndian.AppendUint16(nil, uint16(len(topic)))
	body = append(body, topic...)
	var props []byte
	if expiry > 0 {
		props = binary.BigEndian.AppendUint32([]byte{0x02}, expiry)
	}
	body = append(body, byte(len(props)))
	body = append(body, props...)
	body = append(body, payload...)
	if _, err := c.Write(rawPacket(0x31, body)); err != nil {
		t.Fatal(err)
	}
}

// TestRetainedExpiry: with mochi's scan stopped, a retained MQTT 5 message
// with a Message Expiry Interval still goes when it expires, and one
// without stays.
func TestRetainedExpiry(t *testing.T) {
	s := New(Config{TCPAddr: "127.0.0.1:0", Auth: &switchable{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	publishV5Retained(t, s.Addr(), "h1", "a/presence", "short-lived", 2)
	publishV5Retained(t, s.Addr(), "h2", "b/presence", "kept", 0)
	checkFor(t, 10*time.Second, func() error { // retained first (for 2–3 s)
		if _, ok := s.mq.Topics.Retained.Get("a/presence"); !ok {
			return fmt.Errorf("the expiring message was never retained")
		}
		return nil
	})
	checkFor(t, 10*time.Second, func() error {
		_, a := s.mq.Topics.Retained.Get("a/presence")
		_, b := s.mq.Topics.Retained.Get("b/presence")
		if a || !b {
			return fmt.Errorf("retained: expiring one %v (want gone), lasting one %v (want kept)", a, b)
		}
		return nil
	})
}

// TestRetainedStoreIdleAllocation: an idle broker holding many retained
// messages allocates next to nothing. mochi's own expiry scan copied the
// whole retained store each second (2,000 messages here: ~1.5 MB/s; at
// 5,000 handhelds it was 92 % of what an idle depot allocated).
func TestRetainedStoreIdleAllocation(t *testing.T) {
	s := New(Config{TCPAddr: "127.0.0.1:0", Auth: &switchable{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 2000 {
		if err := s.Publish(fmt.Sprintf("depot/X/routes/R%d/state", i), []byte(`{"routeId":"R"}`), true, 1); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 10*time.Second, func() error {
		if n := retained(s); n != 2000 {
			return fmt.Errorf("%d retained", n)
		}
		return nil
	})
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	time.Sleep(3 * time.Second) // the window measured: three of mochi's scans, were they running
	runtime.ReadMemStats(&m1)
	if d := m1.TotalAlloc - m0.TotalAlloc; d > 1<<20 {
		t.Fatalf("an idle broker with 2,000 retained messages allocated %d KB in 3 s", d>>10)
	}
}

// TestStopRetainedScan fails when mochi's layout no longer has the ticker
// stopRetainedScan stops (a new mochi version): see retained.go.
func TestStopRetainedScan(t *testing.T) {
	s := New(Config{TCPAddr: "127.0.0.1:0", Auth: &switchable{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := stopRetainedScan(s.mq); err != nil {
		t.Fatal(err)
	}
}
