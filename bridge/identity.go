package bridge

import (
	"errors"
	"strings"
	"time"
)

// ErrNotFound is returned by stores for an item that does not exist.
var ErrNotFound = errors.New("not found")

// Roles (DESIGN.md §6).
const (
	RoleDriver     = "driver"
	RoleDispatcher = "dispatcher"
	RoleAdmin      = "admin"
)

// ValidUserRole reports whether a login user may have role (drivers are
// devices, not users).
func ValidUserRole(role string) bool { return role == RoleDispatcher || role == RoleAdmin }

// User is a person who logs in: a dispatcher or an admin.
type User struct {
	Username string    `json:"username"`
	Role     string    `json:"role"`
	Hash     []byte    `json:"hash"` // bcrypt
	Created  time.Time `json:"created"`
}

// Device is a handheld's credential for one driver. Only a hash of its token
// is kept, so a copy of the data directory does not leak it.
type Device struct {
	DriverID  string    `json:"driverId"`
	Name      string    `json:"name"`
	TokenHash []byte    `json:"tokenHash"` // SHA-256 of a 256-bit random token
	Created   time.Time `json:"created"`
}

// Identity is who an authenticated MQTT session is: a role and a subject
// (driver id or username). It is stored in the session as "role:subject".
type Identity struct {
	Role, Subject string
}

func (i Identity) String() string { return i.Role + ":" + i.Subject }

// ParseIdentity reverses Identity.String; ok is false for anything else.
func ParseIdentity(s string) (Identity, bool) {
	role, sub, ok := strings.Cut(s, ":")
	if !ok || sub == "" {
		return Identity{}, false
	}
	switch role {
	case RoleDriver, RoleDispatcher, RoleAdmin:
		return Identity{role, sub}, true
	}
	return Identity{}, false
}

// ClientIDAllowed binds MQTT client ids to identities, so that nobody can
// take over another's session by reusing its client id (a takeover inherits
// subscriptions without an ACL check, LIBRARIES.md §1). Drivers use
// "drv-<driverId>" (or "drv-<driverId>-<anything>"), users
// "dash-<username>" (or "dash-<username>-<anything>").
func (i Identity) ClientIDAllowed(clientID string) bool {
	prefix := "dash-"
	if i.Role == RoleDriver {
		prefix = "drv-"
	}
	own := prefix + i.Subject
	return clientID == own || strings.HasPrefix(clientID, own+"-")
}

// Allowed is the topic ACL of DESIGN.md §6 for depot. For a read, topic may
// be a subscription filter or the topic of a delivery.
//
//   - a driver publishes only its own gps, presence and reply topics and
//     reads only its own inbox;
//   - a dispatcher reads its depot's tree and publishes nothing;
//   - an admin reads as a dispatcher, plus $SYS.
func (i Identity) Allowed(depot, topic string, write bool) bool {
	switch i.Role {
	case RoleDriver:
		prefix := "depot/" + depot + "/drivers/" + i.Subject + "/"
		rest, ok := strings.CutPrefix(topic, prefix)
		if !ok {
			return false
		}
		if write {
			return rest == KindGPS || rest == KindPresence || rest == KindReply
		}
		return rest == KindInbox
	case RoleDispatcher, RoleAdmin:
		if write {
			return false
		}
		if strings.HasPrefix(topic, "depot/"+depot+"/") {
			return true
		}
		return i.Role == RoleAdmin && (topic == "$SYS/#" || strings.HasPrefix(topic, "$SYS/"))
	}
	return false
}
