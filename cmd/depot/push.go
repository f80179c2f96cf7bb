package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/depotcc/depot/push"
)

// liveAcks remembers which inbox messages drivers' live MQTT sessions
// acknowledged, for the push outbox's "the live path took it" (bounded:
// entries older than liveAckTTL go).
type liveAcks struct {
	mu   sync.Mutex
	seen map[string]time.Time // driver + NUL + event id
	now  func() time.Time
}

const liveAckTTL = 10 * time.Minute

// acked is the broker's Acked: a PUBACK from a driver for a message on
// its inbox.
func (l *liveAcks) acked(identity, topic string, payload []byte) {
	id, ok := bridge.ParseIdentity(identity)
	if !ok || id.Role != bridge.RoleDriver || !strings.HasSuffix(topic, "/"+id.Subject+"/"+bridge.KindInbox) {
		return
	}
	var env struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(payload, &env) != nil || env.ID == "" {
		return
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.seen) > 10000 {
		for k, at := range l.seen {
			if now.Sub(at) > liveAckTTL {
				delete(l.seen, k)
			}
		}
	}
	if len(l.seen) <= 20000 {
		l.seen[id.Subject+"\x00"+env.ID] = now
	}
}

// took reports whether driver's session acknowledged a message by any of
// ids: an event's id, or an offer's id (an offer resent at reconnect
// carries that).
func (l *liveAcks) took(driver string, ids ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		if _, ok := l.seen[driver+"\x00"+id]; ok && id != "" {
			return true
		}
	}
	return false
}

// openPush builds the push outbox: Web Push with the depot's VAPID keys
// (made at first start, kept in the data directory), and FCM when a
// service-account file is given.
func (m *Main) openPush() error {
	c := m.Config
	senders := map[string]push.Sender{}
	if !c.NoWebPush {
		v, err := push.LoadOrCreateVAPID(c.Data)
		if err != nil {
			return fmt.Errorf("web push keys: %w", err)
		}
		m.vapid = v.PublicKey
		senders[push.KindWebPush] = push.NewWebPush(v, c.pushSubject(), nil)
	}
	if c.FCMCredentials != "" {
		b, err := os.ReadFile(c.FCMCredentials)
		if err != nil {
			return fmt.Errorf("--fcm-credentials: %w", err)
		}
		f, err := push.NewFCM(bytes.TrimSpace(b), c.FCMEndpoint, nil)
		if err != nil {
			return fmt.Errorf("--fcm-credentials %s: %w", c.FCMCredentials, err)
		}
		senders[push.KindFCM] = f
		m.Log.Info("push: Firebase Cloud Messaging on", "project", f.Project(), "endpoint", c.FCMEndpoint)
	}
	m.push = &push.Outbox{Store: m.store, Senders: senders, Live: m.acks.took, Last: m.depot.StoredSeq, Log: m.Log.With("part", "push"), Now: m.Clock,
		Grace: m.faults.pushGrace, Poll: m.faults.pushPoll}
	m.metrics.watchPush(m.push)
	return m.push.Start(m.depot.LastSeq())
}

// pushHealth is the outbox's health for the heartbeat and /healthz.
func (m *Main) pushHealth() *push.Health {
	if m.push == nil {
		return nil
	}
	h := m.push.Health()
	return &h
}

// pushSubject is the VAPID contact push services may use to reach the
// operator: --push-contact, else the depot's public URL, else a mailto
// that says which depot it is.
func (c *ServeConfig) pushSubject() string {
	switch {
	case c.PushContact != "":
		return c.PushContact
	case c.publicURL != nil:
		return c.publicURL.String()
	}
	return "mailto:depot-" + strings.ToLower(c.Depot) + "@invalid.example"
}

// pushAPI is the web server's view of the outbox.
type pushAPI struct {
	o     *push.Outbox
	vapid string
}

func (p pushAPI) Register(driver string, t push.Target) (push.Target, error) {
	return p.o.Register(driver, t)
}
func (p pushAPI) Unregister(driver string, t push.Target) error { return p.o.Unregister(driver, t) }
func (p pushAPI) Targets(driver string) ([]push.Target, error)  { return p.o.Targets(driver) }
func (p pushAPI) DropDriver(driver string) error                { return p.o.DropDriver(driver) }
func (p pushAPI) VAPIDPublicKey() string                        { return p.vapid }
func (p pushAPI) Kinds() []string                               { return p.o.Health().Enabled }
