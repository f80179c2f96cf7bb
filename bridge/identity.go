package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrNotFound is returned by stores for an item that does not exist.
var ErrNotFound = errors.New("not found")

// Roles (docs/design.md §6).
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
	// Disabled: the user may not sign in and her tokens are refused.
	Disabled bool `json:"disabled,omitempty"`
	// Epoch counts the changes that end a user's sessions (disabling, a
	// password reset); a login token names the epoch it was issued in and
	// is refused in any other, so re-enabling revives no old token.
	Epoch int `json:"epoch,omitempty"`
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
// subscriptions and queued messages without an ACL check, docs/libraries.md
// §1). A client id names exactly one identity, whatever characters ids
// contain: drivers use "drv-<driverId>" and users "dash-<username>",
// optionally followed by ":<anything without a colon>" (a dashboard tab's
// random part). The subject is what lies between the prefix and the last
// ':', or all of it when there is none; so "drv-X1:b" is driver X1's, and a
// driver whose id holds a ':' uses "drv-<id>:" (see ClientID).
func (i Identity) ClientIDAllowed(clientID string) bool {
	sub, ok := strings.CutPrefix(clientID, i.clientPrefix())
	if !ok {
		return false
	}
	if k := strings.LastIndexByte(sub, ':'); k >= 0 {
		sub = sub[:k]
	}
	return sub != "" && sub == i.Subject
}

// ClientID is the identity's own client id, the one a handheld is told to
// use when it is provisioned.
func (i Identity) ClientID() string {
	id := i.clientPrefix() + i.Subject
	if strings.ContainsRune(i.Subject, ':') {
		id += ":"
	}
	return id
}

func (i Identity) clientPrefix() string {
	if i.Role == RoleDriver {
		return "drv-"
	}
	return "dash-"
}

// Publication is a message a client asks the broker to carry: a PUBLISH,
// or the Last Will of a CONNECT (Will), which the broker sends for the
// client later, when it may no longer be there to be asked.
type Publication struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	Will    bool
}

// MayPublish is the one rule for what a client may have the broker carry,
// beyond the topic ACL: every path into the broker (publish, will, retained
// message, alias) passes it. It returns whether the message may be
// retained, or an error wrapping ErrForbidden (not the identity's to write)
// or ErrInvalid (not what the topic carries).
//
//   - The topic must pass Allowed for a write.
//   - A will may only be a driver's own presence saying offline.
//   - A presence message must be a presence (ParsePresence), retained or not.
//   - Only presence is retained: a retained fix (OwnTracks retains its
//     locations) or reply would hand the driver's last position to whoever
//     subscribes later, and would let each handheld keep bytes on the box
//     for ever. A driver's retained bytes are so bounded by one presence of
//     at most MaxPresenceBytes.
func (i Identity) MayPublish(depot string, p Publication) (retain bool, err error) {
	if !i.Allowed(depot, p.Topic, true) {
		return false, fmt.Errorf("%w: %s may not publish to %s", ErrForbidden, i, quoteClip(p.Topic))
	}
	if strings.HasPrefix(p.Topic, OwnTracksPrefix) {
		// OwnTracks retains its locations and leaves {"_type":"lwt"} as its
		// will on its base topic. Neither is retained here, and the will
		// must be just that.
		if p.Will && !isOwnTracksLWT(p.Topic, p.Payload) {
			return false, fmt.Errorf("%w: an OwnTracks will may only be {\"_type\":\"lwt\"} on the device's own topic", ErrForbidden)
		}
		return false, nil
	}
	kind := p.Topic[strings.LastIndexByte(p.Topic, '/')+1:]
	if kind != KindPresence {
		if p.Will {
			return false, fmt.Errorf("%w: a will may only be the driver's own presence", ErrForbidden)
		}
		return false, nil
	}
	state, err := ParsePresence(p.Payload)
	if err != nil {
		return false, err
	}
	if p.Will && state != PresenceOffline {
		return false, fmt.Errorf("%w: a will may only say %q", ErrInvalid, PresenceOffline)
	}
	return p.Retain, nil
}

// isOwnTracksLWT reports whether an OwnTracks will is its lwt message on a
// device's base topic (owntracks/<driver>/<device>), at most
// MaxPresenceBytes: the one will OwnTracks leaves.
func isOwnTracksLWT(topic string, payload []byte) bool {
	if strings.Count(topic, "/") != 2 || len(payload) > MaxPresenceBytes {
		return false
	}
	m, err := ParseOwnTracks("", payload, time.Time{})
	return err == nil && m.Type == OwnTracksLWT
}

// MaxPresenceBytes bounds a presence payload.
const MaxPresenceBytes = 128

// ParsePresence checks a presence payload from a handheld and returns its
// state: {"state":"online"|"offline","ts":<Unix ms>} with ts optional and
// nothing else, or the bare word (an LWT is often just "offline"), in at most
// MaxPresenceBytes. Dashboards read it from a retained topic, so nothing
// else is let through.
func ParsePresence(payload []byte) (string, error) {
	if len(payload) > MaxPresenceBytes {
		return "", fmt.Errorf("%w: presence is %d bytes, at most %d", ErrInvalid, len(payload), MaxPresenceBytes)
	}
	switch s := string(payload); s {
	case PresenceOnline, PresenceOffline:
		return s, nil
	}
	// Keys are matched exactly and once: encoding/json would take "STATE"
	// or "ſtate" for "state", and the last of two, where a JavaScript
	// reader of the same retained message may see another.
	var v struct {
		State *string
		TS    *float64
	}
	bad := fmt.Errorf("%w: presence is not {\"state\":\"online\"|\"offline\",\"ts\":…} or a bare state", ErrInvalid)
	dec := json.NewDecoder(bytes.NewReader(payload))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", bad
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return "", bad
		}
		var dst any
		switch t {
		case "state":
			if v.State != nil {
				return "", bad
			}
			v.State = new(string)
			dst = v.State
		case "ts":
			if v.TS != nil {
				return "", bad
			}
			v.TS = new(float64)
			dst = v.TS
		default:
			return "", bad
		}
		if err := dec.Decode(dst); err != nil {
			return "", bad
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return "", bad
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", fmt.Errorf("%w: presence has trailing data", ErrInvalid)
	}
	if v.State == nil || (*v.State != PresenceOnline && *v.State != PresenceOffline) {
		return "", fmt.Errorf("%w: presence state must be %q or %q", ErrInvalid, PresenceOnline, PresenceOffline)
	}
	if v.TS != nil && (*v.TS < 0 || *v.TS != math.Trunc(*v.TS) || *v.TS > 1<<53) {
		return "", fmt.Errorf("%w: presence ts must be Unix milliseconds", ErrInvalid)
	}
	return *v.State, nil
}

// quoteClip quotes a value from the network for an error message, cut to
// 64 bytes.
func quoteClip(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strconv.Quote(s)
}

// OwnTracksPrefix is the root of OwnTracks' topics:
// owntracks/<user>/<device>[/<subtopic>].
const OwnTracksPrefix = "owntracks/"

// KindCmd is the OwnTracks subtopic a device reads its commands from.
const KindCmd = "cmd"

// Allowed is the topic ACL of docs/design.md §6 for depot. For a read,
// topic may be a subscription filter or the topic of a delivery (mochi
// asks again for every message it delivers, retained ones included).
//
//   - a driver publishes only its own gps, presence and reply topics and
//     its own OwnTracks topics (owntracks/<driver>/<device>[/<sub>], not
//     …/cmd), and reads only its own inbox and OwnTracks commands. It may
//     subscribe to any OwnTracks filter (the app subscribes to
//     owntracks/+/+ to see friends), but a delivery is judged by its
//     topic, so nothing of another driver ever reaches it.
//   - a dispatcher reads its depot's tree and publishes nothing;
//   - an admin reads as a dispatcher, plus $SYS.
func (i Identity) Allowed(depot, topic string, write bool) bool {
	switch i.Role {
	case RoleDriver:
		if rest, ok := strings.CutPrefix(topic, OwnTracksPrefix); ok {
			return i.allowedOwnTracks(rest, write)
		}
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

// allowedOwnTracks judges a driver's topic below owntracks/.
func (i Identity) allowedOwnTracks(rest string, write bool) bool {
	if !write && strings.ContainsAny(rest, "+#") {
		return true // a filter: what it matches is judged per delivery
	}
	parts := strings.Split(rest, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] != i.Subject || !ValidID(parts[1]) {
		return false
	}
	isCmd := len(parts) == 3 && parts[2] == KindCmd
	if write {
		return !isCmd && (len(parts) == 2 || ValidID(parts[2]))
	}
	return isCmd
}
