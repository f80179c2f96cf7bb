// Package push wakes drivers' phones when their app is not open: Firebase
// Cloud Messaging (HTTP v1) for native apps and Web Push (RFC 8030, 8291,
// 8292) for the driver web app, from a durable outbox (outbox.go) that
// follows the depot's event log. The live MQTT inbox stays the fast path;
// a push is the fallback, sent only when the driver's session did not take
// the message within a few seconds.
package push

import (
	"context"
	"time"
)

// Kinds of push target.
const (
	KindFCM     = "fcm"
	KindWebPush = "webpush"
)

// Target is where one of a driver's handhelds can be woken.
type Target struct {
	ID           string        `json:"id"` // stable: derived from the token or endpoint (TargetID)
	DriverID     string        `json:"driverId"`
	Kind         string        `json:"kind"`
	Token        string        `json:"token,omitempty"`        // FCM registration token
	Subscription *Subscription `json:"subscription,omitempty"` // Web Push
	Created      time.Time     `json:"created"`
	LastOK       time.Time     `json:"lastOk,omitzero"`
	LastError    string        `json:"lastError,omitempty"`
}

// Subscription is a browser's PushSubscription as its toJSON gives it.
type Subscription struct {
	Endpoint string `json:"endpoint"`
	// ExpirationTime is in every browser's toJSON (null as a rule); it is
	// accepted and not used: a subscription that ends makes its push
	// service answer 404/410, which removes it.
	ExpirationTime *float64 `json:"expirationTime,omitempty"`
	Keys           struct {
		P256dh string `json:"p256dh"`
		Auth   string `json:"auth"`
	} `json:"keys"`
}

// Message is one push, the same for every target of a driver.
type Message struct {
	ID          string            // the event's id (evt_<seq>): one message id everywhere
	CollapseKey string            // the offer's or rescue's id: a newer push replaces an older one
	Title, Body string            // the notification
	Data        map[string]string // strings only (FCM's rule): type, ref, seq, driverId, url
	Expires     time.Time         // never delivered after (an offer's expiry)
}

// Result is how one attempt to deliver a message to a target went.
// Delivered: none of Remove, Retry, Err.
type Result struct {
	Remove     bool          // the target is gone for good (unregistered, invalid): forget it
	Retry      bool          // a passing failure (429, 5xx, network): try again later
	RetryAfter time.Duration // what the service asked for, if it did
	Err        error         // what went wrong, for the log and the target's LastError
}

// Sender delivers a message to targets of one kind.
type Sender interface {
	Send(ctx context.Context, t Target, m Message) Result
}
