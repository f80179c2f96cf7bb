package broker

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type anyone struct{}

func (anyone) Authenticate(c Connect) (Session, error) {
	return Session{Identity: "driver:" + c.ClientID}, nil
}
func (anyone) Allow(identity, topic string, write bool) bool             { return true }
func (anyone) Publish(identity string, m Message) (retain bool, e error) { return m.Retain, nil }

// TestCloseWhileClientsChurn: shutting down while clients come and go
// returns. mochi v2.7.9's Close takes its clients' read lock twice, and a
// client leaving in between used to hang it for ever (broker.quiesce).
func TestCloseWhileClientsChurn(t *testing.T) {
	for round := range 5 {
		s := New(Config{TCPAddr: "127.0.0.1:0", Auth: anyone{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		var stop atomic.Bool
		var dials atomic.Int64
		var wg sync.WaitGroup
		for w := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; !stop.Load(); i++ {
					c, err := net.Dial("tcp", s.Addr())
					if err != nil {
						return
					}
					dials.Add(1)
					id := fmt.Sprintf("c%d-%d", w, i)
					pkt := []byte{0x10, byte(10 + 2 + len(id)), 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, byte(len(id))}
					_, _ = c.Write(append(pkt, id...))
					_ = c.SetReadDeadline(time.Now().Add(time.Second))
					_, _ = c.Read(make([]byte, 4))
					c.Close()
				}
			}()
		}
		for deadline := time.Now().Add(10 * time.Second); dials.Load() < 200; {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: only %d connections in 10 s", round, dials.Load())
			}
			time.Sleep(5 * time.Millisecond) // polling for the condition
		}
		done := make(chan struct{})
		go func() { s.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: Close hung while clients were leaving", round)
		}
		stop.Store(true)
		wg.Wait()
	}
}
