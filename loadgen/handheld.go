package loadgen

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// handheld is a simulated GPS handheld: a minimal MQTT 5 client over TCP
// that connects, publishes at QoS 0 or 1 on its own clock and counts the
// PUBACKs, answers what the server sends it, and pings.
//
// The bench's handhelds were paho clients. paho does per publish what a
// general client must (a context, a packet-id allocator, a hand-off
// between goroutines, a buffered writev), and on the two cores the
// generator shares with the appliance that cost about as much CPU as the
// appliance spent storing and delivering the same fix: the generator's
// own cost became the appliance's queueing. The dashboards stay paho
// clients over WebSocket; only the handhelds' side is this.
type handheld struct {
	conn net.Conn
	wmu  sync.Mutex // a publish and a ping write whole packets
	buf  []byte     // the publisher's packet buffer (one publish at a time)
	id   uint16     // the last packet id used
	// acked counts the PUBACKs that took a message, refused the rest.
	acked, refused *atomic.Int64
	done           chan struct{} // closed when the reader ends
	err            error         // why the reader ended; read after done
	// sentAt holds, by packet id modulo its length, when a QoS 1 publish
	// went out (ns since base, shifted left 16) and its id: the reader
	// matches each PUBACK to it for acks, the handheld's own view of the
	// latency (fix out → PUBACK in). 256 outstanding publishes is 25 s of
	// a handheld at 10 Hz, far longer than any answer a run accepts.
	base    time.Time
	sentAt  [256]atomic.Int64
	acks    []float64 // ms, appended by the reader; read after done
	closing sync.Once
}

// dialHandheld connects and waits for the CONNACK. Persistent keeps the
// session (clean start off, an hour's session expiry).
func dialHandheld(addr, clientID, user, pass string, keepalive uint16, persistent bool, timeout time.Duration, acked, refused *atomic.Int64) (*handheld, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	h := &handheld{conn: conn, acked: acked, refused: refused, done: make(chan struct{}), base: time.Now()}
	if _, err := conn.Write(connectPacket(clientID, user, pass, keepalive, persistent)); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	r := bufio.NewReaderSize(conn, 512)
	typ, body, err := readPacket(r, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("no CONNACK: %w", err)
	}
	if typ>>4 != 2 || len(body) < 2 {
		conn.Close()
		return nil, fmt.Errorf("expected CONNACK, got packet type %d", typ>>4)
	}
	if body[1] != 0 {
		conn.Close()
		return nil, fmt.Errorf("connection refused, reason code 0x%02x", body[1])
	}
	_ = conn.SetReadDeadline(time.Time{})
	go h.read(r)
	return h, nil
}

// connectPacket is an MQTT 5 CONNECT with username and password.
func connectPacket(clientID, user, pass string, keepalive uint16, persistent bool) []byte {
	var props []byte
	props = append(props, 0x21, 0, 16) // Receive Maximum: 16
	if persistent {
		props = append(props, 0x11, 0, 0, 0x0e, 0x10) // Session Expiry Interval: 3600 s
	}
	flags := byte(0)
	if !persistent {
		flags |= 0x02 // clean start
	}
	if user != "" {
		flags |= 0x80 | 0x40
	}
	b := []byte{0, 4, 'M', 'Q', 'T', 'T', 5, flags}
	b = binary.BigEndian.AppendUint16(b, keepalive)
	b = appendVarint(b, len(props))
	b = append(b, props...)
	b = appendString(b, clientID)
	if user != "" {
		b = appendString(b, user)
		b = appendString(b, pass)
	}
	return append(appendVarint([]byte{0x10}, len(b)), b...)
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendVarint(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

// readPacket reads one packet: its first byte and its body (into buf's
// storage when it fits).
func readPacket(r *bufio.Reader, buf []byte) (byte, []byte, error) {
	typ, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, shift := 0, 0
	for {
		d, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n |= int(d&0x7f) << shift
		if d&0x80 == 0 {
			break
		}
		if shift += 7; shift > 21 {
			return 0, nil, errors.New("malformed remaining length")
		}
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	_, err = io.ReadFull(r, buf)
	return typ, buf, err
}

// read handles what the server sends until the connection ends.
func (h *handheld) read(r *bufio.Reader) {
	defer close(h.done)
	var buf []byte
	for {
		typ, body, err := readPacket(r, buf)
		if err != nil {
			h.err = err
			return
		}
		buf = body
		switch typ >> 4 {
		case 4: // PUBACK: packet id, then a reason code unless it is 0
			if len(body) < 2 {
				h.err = errors.New("short PUBACK")
				return
			}
			if len(body) > 2 && body[2] >= 0x80 {
				h.refused.Add(1)
			} else {
				h.acked.Add(1)
			}
			id := binary.BigEndian.Uint16(body)
			if v := h.sentAt[id%uint16(len(h.sentAt))].Load(); uint16(v) == id && v != 0 {
				h.acks = append(h.acks, float64(int64(time.Since(h.base))-v>>16)/1e6)
			}
		case 3: // PUBLISH from the server: acknowledge QoS 1
			if qos := typ >> 1 & 3; qos == 1 && len(body) >= 2 {
				tl := int(binary.BigEndian.Uint16(body))
				if len(body) >= 2+tl+2 {
					ack := []byte{0x40, 2, body[2+tl], body[3+tl]}
					h.wmu.Lock()
					_, err = h.conn.Write(ack)
					h.wmu.Unlock()
				}
			}
		case 14: // DISCONNECT
			h.err = errors.New("disconnected by the server")
			if len(body) > 0 {
				h.err = fmt.Errorf("disconnected by the server, reason code 0x%02x", body[0])
			}
			return
		}
		if err != nil {
			h.err = err
			return
		}
	}
}

// publish sends one PUBLISH. It does not wait for the PUBACK: the reader
// counts it. A handheld sends on its own clock, whatever the server's
// pace (a bench whose senders waited for each answer would offer less
// load exactly when the server is slow, and never measure the fixes it
// did not send).
func (h *handheld) publish(topic string, payload []byte, qos byte) error {
	h.id++
	if h.id == 0 {
		h.id = 1
	}
	n := 2 + len(topic) + 1 + len(payload) // topic, properties' length, payload
	if qos > 0 {
		n += 2
	}
	b := appendVarint(append(h.buf[:0], 0x30|qos<<1), n)
	b = appendString(b, topic)
	if qos > 0 {
		b = binary.BigEndian.AppendUint16(b, h.id)
	}
	b = append(b, 0) // no properties
	b = append(b, payload...)
	h.buf = b
	if qos > 0 {
		h.sentAt[h.id%uint16(len(h.sentAt))].Store(int64(time.Since(h.base))<<16 | int64(h.id))
	}
	h.wmu.Lock()
	_, err := h.conn.Write(b)
	h.wmu.Unlock()
	return err
}

// ping sends a PINGREQ.
func (h *handheld) ping() error {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	_, err := h.conn.Write([]byte{0xc0, 0})
	return err
}

// close sends a DISCONNECT and closes the connection.
func (h *handheld) close() {
	h.closing.Do(func() {
		h.wmu.Lock()
		_, _ = h.conn.Write([]byte{0xe0, 0})
		h.wmu.Unlock()
		_ = h.conn.Close()
	})
	<-h.done
}
