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

func (m mqttAuth) Authenticate(c broker.Connect) (string, error) {
	id, err := m.accounts.AuthenticateMQTT(c.Username, c.Password, c.ClientID)
	if errors.Is(err, auth.ErrNotAuthorized) {
		return "", fmt.Errorf("%w: %v", broker.ErrNotAuthorized, err)
	}
	if err != nil {
		return "", err
	}
	return id.String(), nil
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
	return id.Allowed(m.depot, topic, write)
}
