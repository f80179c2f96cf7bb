package main

import (
	"errors"
	"fmt"

	"github.com/depotcc/depot/bridge"
	"github.com/depotcc/depot/broker"
	"github.com/depotcc/depot/ui/auth"
)

// mqttAuth is the broker's Authenticator: the identity service decides who
// connects, the domain's ACL what each identity may do.
type mqttAuth struct {
	accounts *auth.Accounts
	depot    string
}

func (m mqttAuth) Authenticate(c broker.Connect) (broker.Session, error) {
	id, expires, err := m.accounts.AuthenticateMQTT(c.Username, c.Password, c.ClientID)
	if errors.Is(err, auth.ErrNotAuthorized) {
		return broker.Session{}, fmt.Errorf("%w: %v", broker.ErrNotAuthorized, err)
	}
	if err != nil {
		return broker.Session{}, err
	}
	if c.Persistent && c.ClientID != id.ClientID() {
		// Each persistent session is stored, and every inbox message is
		// queued and written once per session: an identity keeps one, under
		// its own client id ("drv-<id>"). Suffixed ids (a second device, a
		// dashboard tab) are for clean sessions.
		return broker.Session{}, fmt.Errorf("%w: a persistent session must use the client id %q", broker.ErrClientID, id.ClientID())
	}
	return broker.Session{Identity: id.String(), Expires: expires}, nil
}

// Publish applies bridge.Identity.MayPublish, the one rule for every path a
// client's message takes (publish, will, retained, alias), after the same
// validity check as Allow: a will of a credential revoked since CONNECT is
// not sent.
func (m mqttAuth) Publish(identity string, msg broker.Message) (bool, error) {
	if !m.Allow(identity, msg.Topic, true) {
		return false, &broker.Refused{Code: broker.CodeNotAuthorized, Reason: "not authorized"}
	}
	id, _ := bridge.ParseIdentity(identity) // Allow parsed it
	retain, err := id.MayPublish(m.depot, bridge.Publication{
		Topic: msg.Topic, Payload: msg.Payload, QoS: msg.QoS, Retain: msg.Retain, Will: msg.Will,
	})
	switch {
	case err == nil:
		return retain, nil
	case errors.Is(err, bridge.ErrInvalid):
		return false, &broker.Refused{Code: broker.CodePayloadFormat, Reason: err.Error()}
	}
	return false, &broker.Refused{Code: broker.CodeNotAuthorized, Reason: err.Error()}
}

// KeepStoredRetained is the same rule for a retained message read back
// from the store at start: it stays only if the driver whose topic it is
// published it from its own client id and would be allowed to retain it
// today. Only drivers retain anything (their presence), so the topic names
// the only identity that could have.
func (m mqttAuth) KeepStoredRetained(clientID string, msg broker.Message) bool {
	driver, _, err := bridge.ParseDriverTopic(m.depot, msg.Topic)
	if err != nil {
		return false
	}
	id := bridge.Identity{Role: bridge.RoleDriver, Subject: driver}
	if !id.ClientIDAllowed(clientID) {
		return false
	}
	retain, err := id.MayPublish(m.depot, bridge.Publication{Topic: msg.Topic, Payload: msg.Payload, QoS: msg.QoS, Retain: true})
	return err == nil && retain
}

// KeepStoredSession keeps a stored persistent session only when its client
// id is its identity's own, the rule Authenticate applies to new ones: a
// session an older version stored under an id that now names another
// identity, or under a suffixed id, is dropped at start.
func (m mqttAuth) KeepStoredSession(clientID, identity string) bool {
	id, ok := bridge.ParseIdentity(identity)
	return ok && clientID == id.ClientID()
}

// Allow runs on every publish, subscribe and delivery: a map lookup and a
// few string compares. A driver whose credential was revoked loses its
// rights at once, even on a session restored from disk.
func (m mqttAuth) Allow(identity, topic string, write bool) bool {
	id, ok := bridge.ParseIdentity(identity)
	if !ok {
		return false
	}
	if id.Role == bridge.RoleDriver && !m.accounts.DeviceValid(id.Subject) {
		return false
	}
	// Likewise a dashboard of a user deleted, re-roled or disabled since
	// (OnRevoke also ends the session; this closes the gap before it).
	if id.Role != bridge.RoleDriver && !m.accounts.UserActive(id.Subject, id.Role) {
		return false
	}
	return id.Allowed(m.depot, topic, write)
}
