package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"
)

// session is one authenticated MQTT connection in the identity matrix,
// whatever its protocol version and transport.
type session interface {
	// publish sends a QoS 1 message and returns the PUBACK reason code;
	// closed is true when the server cut the connection instead (MQTT 3.1.1
	// has no negative PUBACK).
	publish(topic string, payload []byte) (code byte, closed bool)
	// subscribe returns the SUBACK code: granted QoS, or 0x87 (v5) / 0x80 (v3).
	subscribe(filter string) byte
	close()
}

// dialer opens a raw connection to the broker over one transport.
type dialer func() (net.Conn, error)

func tcpDialer(addr string) dialer { return func() (net.Conn, error) { return net.Dial("tcp", addr) } }

func wsDialer(httpAddr string, origin string) dialer {
	return func() (net.Conn, error) {
		d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		c, resp, err := d.Dial("ws://"+httpAddr+"/mqtt", h)
		if err != nil {
			if resp != nil {
				return nil, fmt.Errorf("%w: HTTP %d", err, resp.StatusCode)
			}
			return nil, err
		}
		return &wsNetConn{Conn: c.UnderlyingConn(), c: c}, nil
	}
}

// wsNetConn is a WebSocket as a byte stream (binary messages).
type wsNetConn struct {
	net.Conn
	c  *websocket.Conn
	r  io.Reader
	mu sync.Mutex // gorilla allows one writer at a time; paho has several
}

func (w *wsNetConn) Read(p []byte) (int, error) {
	for {
		if w.r == nil {
			_, r, err := w.c.NextReader()
			if err != nil {
				return 0, err
			}
			w.r = r
		}
		n, err := w.r.Read(p)
		if errors.Is(err, io.EOF) {
			w.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (w *wsNetConn) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// ---- MQTT 5 over any transport (paho) ----

type v5session struct{ c *paho.Client }

func connectV5(d dialer, clientID, user, pass string) (session, byte, error) {
	conn, err := d()
	if err != nil {
		return nil, 0, err
	}
	c, code, err := mqttHandshake(conn, clientID, user, pass)
	if err != nil || code != 0 {
		return nil, code, err
	}
	return &v5session{c}, 0, nil
}

func (s *v5session) publish(topic string, payload []byte) (byte, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	r, err := s.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload})
	if r == nil {
		return 0, err != nil
	}
	return r.ReasonCode, false
}

func (s *v5session) subscribe(filter string) byte {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	sa, _ := s.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if sa == nil || len(sa.Reasons) == 0 {
		return 0xff // no SUBACK
	}
	return sa.Reasons[0]
}

func (s *v5session) close() { _ = s.c.Disconnect(&paho.Disconnect{}) }

// ---- MQTT 3.1.1, hand-rolled: just enough for CONNECT, SUBSCRIBE, PUBLISH ----

type v3session struct {
	conn net.Conn
	r    *bufio.Reader
	id   uint16
}

func mqttString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func packet(typ byte, body []byte) []byte {
	out := []byte{typ}
	n := len(body)
	for {
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

func (s *v3session) read() (typ byte, body []byte, err error) {
	_ = s.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	h, err := s.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for {
		d, err := s.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(d&0x7f) * mul
		mul *= 128
		if d&0x80 == 0 {
			break
		}
	}
	body = make([]byte, n)
	_, err = io.ReadFull(s.r, body)
	return h >> 4, body, err
}

func connectV3(d dialer, clientID, user, pass string) (session, byte, error) {
	conn, err := d()
	if err != nil {
		return nil, 0, err
	}
	s := &v3session{conn: conn, r: bufio.NewReader(conn)}
	flags := byte(0x02) // clean session
	if user != "" {
		flags |= 0x80
	}
	if pass != "" {
		flags |= 0x40
	}
	body := mqttString(nil, "MQTT")
	body = append(body, 4, flags, 0, 30)
	body = mqttString(body, clientID)
	if user != "" {
		body = mqttString(body, user)
	}
	if pass != "" {
		body = mqttString(body, pass)
	}
	if _, err := conn.Write(packet(0x10, body)); err != nil {
		conn.Close()
		return nil, 0, err
	}
	typ, b, err := s.read()
	if err != nil || typ != 2 || len(b) < 2 {
		conn.Close()
		return nil, 0, fmt.Errorf("no CONNACK: type %d, %v", typ, err)
	}
	if b[1] != 0 {
		conn.Close()
		return nil, b[1], nil
	}
	return s, 0, nil
}

func (s *v3session) publish(topic string, payload []byte) (byte, bool) {
	s.id++
	body := mqttString(nil, topic)
	body = binary.BigEndian.AppendUint16(body, s.id)
	body = append(body, payload...)
	if _, err := s.conn.Write(packet(0x32, body)); err != nil {
		return 0, true
	}
	typ, _, err := s.read()
	if err != nil || typ == 14 { // mochi sends DISCONNECT even to 3.1.1 clients before closing
		return 0, true
	}
	if typ != 4 {
		return 0xff, false
	}
	return 0, false
}

func (s *v3session) subscribe(filter string) byte {
	s.id++
	body := binary.BigEndian.AppendUint16(nil, s.id)
	body = mqttString(body, filter)
	body = append(body, 1)
	if _, err := s.conn.Write(packet(0x82, body)); err != nil {
		return 0xff
	}
	for {
		typ, b, err := s.read()
		if err != nil {
			return 0xff
		}
		if typ == 9 && len(b) >= 3 {
			return b[2]
		}
	}
}

func (s *v3session) close() {
	_, _ = s.conn.Write([]byte{0xe0, 0})
	s.conn.Close()
}
