package loadgen

import (
	"bufio"
	"bytes"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// TestHandheldAgainstMochi: the bench's own MQTT client connects to a real
// broker (clean and persistent), publishes at QoS 1 and 0, and its
// messages arrive whole and in order; each QoS 1 publish is counted
// acknowledged once, and timed from its send to its PUBACK.
func TestHandheldAgainstMochi(t *testing.T) {
	srv, addr, _, err := bareBroker("127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// The broker's own inline client sees what arrives.
	got := make(chan []byte, 200)
	if err := srv.Subscribe("bench/#", 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		got <- bytes.Clone(pk.Payload)
	}); err != nil {
		t.Fatal(err)
	}
	for _, persistent := range []bool{false, true} {
		var acked, refused atomic.Int64
		h, err := dialHandheld(addr, "drv-BD1", "", "", 60, persistent, 5*time.Second, &acked, &refused)
		if err != nil {
			t.Fatal(err)
		}
		const n = 100
		for i := range n {
			qos := byte(1)
			if i%10 == 9 {
				qos = 0
			}
			if err := h.publish("bench/BD1", []byte(`{"ts":`+string(rune('0'+i%10))+`}`), qos); err != nil {
				t.Fatal(err)
			}
		}
		for i := range n {
			select {
			case p := <-got:
				if want := `{"ts":` + string(rune('0'+i%10)) + `}`; string(p) != want {
					t.Fatalf("message %d: %q, want %q", i, p, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("persistent %v: %d of %d messages arrived", persistent, i, n)
			}
		}
		for deadline := time.Now().Add(10 * time.Second); acked.Load() < 90 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		if acked.Load() != 90 || refused.Load() != 0 {
			t.Fatalf("persistent %v: %d acknowledged, %d refused; want 90 and 0", persistent, acked.Load(), refused.Load())
		}
		if err := h.ping(); err != nil {
			t.Fatal(err)
		}
		h.close()
		h.close() // a second close is harmless (the bench closes each twice)
		// Each QoS 1 publish's PUBACK was matched to its send time.
		if len(h.acks) != 90 {
			t.Fatalf("persistent %v: %d acknowledgement times, want 90", persistent, len(h.acks))
		}
		for _, ms := range h.acks {
			if ms < 0 || ms > 10e3 {
				t.Fatalf("persistent %v: acknowledgement time %v ms", persistent, ms)
			}
		}
	}
}

// TestReadPacketMalformed: a remaining length of more than four bytes is
// refused, not read for ever.
func TestReadPacketMalformed(t *testing.T) {
	r := bufio.NewReader(bytes.NewReader([]byte{0x40, 0xff, 0xff, 0xff, 0xff, 0x01}))
	if _, _, err := readPacket(r, nil); err == nil {
		t.Fatal("a five-byte remaining length was read")
	}
	r = bufio.NewReader(bytes.NewReader([]byte{0x40, 0x02, 0x00, 0x07}))
	typ, body, err := readPacket(r, nil)
	if err != nil || typ != 0x40 || !bytes.Equal(body, []byte{0, 7}) {
		t.Fatalf("PUBACK: %x %x %v", typ, body, err)
	}
}
