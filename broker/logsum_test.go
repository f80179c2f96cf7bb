package broker

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a log sink safe for the broker's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type nobody struct{}

func (nobody) Authenticate(c Connect) (Session, error) {
	return Session{}, fmt.Errorf("%w: anonymous client %s", ErrNotAuthorized, c.ClientID)
}
func (nobody) Allow(identity, topic string, write bool) bool { return false }
func (nobody) Publish(identity string, m Message) (bool, error) {
	return false, &Refused{Code: CodeNotAuthorized, Reason: "nobody"}
}

// mqttConnectV3 sends a 3.1.1 CONNECT with clientID and waits for the
// CONNACK return code.
func mqttConnectV3(addr, clientID string) (net.Conn, byte, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, 0, err
	}
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60}
	body = binary.BigEndian.AppendUint16(body, uint16(len(clientID)))
	body = append(body, clientID...)
	if _, err := c.Write(rawPacket(0x10, body)); err != nil {
		c.Close()
		return nil, 0, err
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil {
		c.Close()
		return nil, 0, err
	}
	return c, b[3], nil
}

func rawPacket(typ byte, body []byte) []byte {
	out := []byte{typ}
	for n := len(body); ; {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		out = append(out, d)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}

var countRe = regexp.MustCompile(`: (\d+) more in the last`)

// TestRefusalFloodLogIsBounded: 1,000 anonymous CONNECTs with 60 KB client
// ids make a few short log lines that still count every one of them.
func TestRefusalFloodLogIsBounded(t *testing.T) {
	var logs lockedBuffer
	s := New(Config{TCPAddr: "127.0.0.1:0", Auth: nobody{}, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	before := len(logs.String())
	id := strings.Repeat("A", 60<<10)
	for i := range 1000 {
		c, code, err := mqttConnectV3(s.Addr(), id)
		if err != nil || code != 5 {
			t.Fatalf("connect %d: code %d, %v", i, code, err)
		}
		c.Close()
	}
	s.Close()
	out := logs.String()[before:]
	n, refused := 0, 0
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "mqtt connect refused") {
			continue
		}
		if m := countRe.FindStringSubmatch(line); m != nil {
			k, _ := strconv.Atoi(m[1])
			refused += k
		} else {
			refused++
		}
		n++
	}
	if len(out) > 8<<10 {
		t.Fatalf("%d bytes of log for 1,000 refused connects (%d lines about them):\n%.2000s", len(out), n, out)
	}
	if refused != 1000 {
		t.Fatalf("the log accounts for %d refused connects, want 1000:\n%s", refused, out)
	}
}

// TestPacketErrorDoesNotDumpPayload: a publish mochi refuses as malformed
// is logged without its payload.
func TestPacketErrorDoesNotDumpPayload(t *testing.T) {
	var logs lockedBuffer
	s := New(Config{TCPAddr: "127.0.0.1:0", Auth: anyone{}, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, code, err := mqttConnectV3(s.Addr(), "d1")
	if err != nil || code != 0 {
		t.Fatalf("connect: %d %v", code, err)
	}
	defer c.Close()
	// QoS 1 with packet id 0: mochi's validation refuses it and logs the
	// packet.
	body := binary.BigEndian.AppendUint16(nil, 3)
	body = append(body, "a/b"...)
	body = append(body, 0, 0)
	body = append(body, strings.Repeat("SECRET-PAYLOAD ", 100)...)
	if _, err := c.Write(rawPacket(0x32, body)); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, func() error {
		if !strings.Contains(logs.String(), "error processing packet") {
			return errors.New("no packet error logged yet")
		}
		return nil
	})
	out := logs.String()
	if !strings.Contains(out, "error processing packet") {
		t.Fatalf("no packet error logged:\n%s", out)
	}
	// mochi's dump prints the payload as bytes: "83 69 67 82 69 84" is SECRET.
	if strings.Contains(out, "SECRET-PAYLOAD") || strings.Contains(out, "83 69 67 82 69 84") {
		t.Fatalf("the payload is in the log:\n%.600s", out)
	}
}

// TestLogSummaryCounts drives the summary with a test clock: one line per
// message and interval, with the count of what it stands for.
func TestLogSummaryCounts(t *testing.T) {
	var buf bytes.Buffer
	s := SummarizeLog(slog.NewTextHandler(&buf, nil), 10*time.Second)
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }
	s.afterFunc = func(time.Duration, func()) *time.Timer { return nil } // flushed by hand
	log := slog.New(s.Handler()).With("part", "broker")
	for i := range 5000 {
		log.Info("mqtt publish denied", "client", strings.Repeat("x", 1000), "n", i)
		if i%2 == 0 {
			log.Info("mqtt connect refused", "client", "c")
		}
		now = now.Add(5 * time.Millisecond) // 25 s in all
	}
	s.Flush()
	out := buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) > 16 || len(out) > 4<<10 {
		t.Fatalf("%d lines, %d bytes:\n%s", len(lines), len(out), out)
	}
	counts := map[string]int{}
	for _, l := range lines {
		for _, m := range []string{"mqtt publish denied", "mqtt connect refused"} {
			if !strings.Contains(l, m) {
				continue
			}
			if c := countRe.FindStringSubmatch(l); c != nil {
				k, _ := strconv.Atoi(c[1])
				counts[m] += k
			} else {
				counts[m]++
			}
		}
		if !strings.Contains(l, "part=broker") {
			t.Fatalf("lost the logger's attributes: %s", l)
		}
	}
	if counts["mqtt publish denied"] != 5000 || counts["mqtt connect refused"] != 2500 {
		t.Fatalf("counts %v:\n%s", counts, out)
	}
}
