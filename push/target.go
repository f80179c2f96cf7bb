package push

import (
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// TargetID is a target's stable id: the first 16 bytes of SHA-256 over its
// kind and its token or endpoint, in hex. The same handheld registering
// again gets the same id, so it replaces itself instead of piling up.
func TargetID(t Target) string {
	h := sha256.New()
	h.Write([]byte(t.Kind))
	h.Write([]byte{0}) // so that kind and address cannot run into each other
	switch {
	case t.Kind == KindWebPush && t.Subscription != nil:
		h.Write([]byte(t.Subscription.Endpoint))
	default:
		h.Write([]byte(t.Token))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// allowLocalHTTP lets a push service on this machine be reached (tests'
// doubles); off in the product.
var allowLocalHTTP = false

// Limits on what a handheld may register: generous for real tokens and
// endpoints, small enough that a stored target stays small.
const (
	maxTokenLen    = 4096
	maxEndpointLen = 2048
)

// Validate checks a target before it is stored, so that a bad one is
// refused at registration instead of failing at every push.
func (t Target) Validate() error {
	switch t.Kind {
	case KindFCM:
		return validToken(t.Token)
	case KindWebPush:
		if t.Subscription == nil {
			return errors.New("push: webpush target has no subscription")
		}
		return t.Subscription.validate()
	default:
		return fmt.Errorf("push: unknown target kind %q", t.Kind)
	}
}

func validToken(tok string) error {
	if tok == "" || len(tok) > maxTokenLen {
		return fmt.Errorf("push: fcm token must be 1 to %d bytes, is %d", maxTokenLen, len(tok))
	}
	for i := 0; i < len(tok); i++ {
		// Printable ASCII without space: FCM tokens are base64url-like
		// with ':' and never hold spaces or control characters.
		if c := tok[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("push: fcm token has a byte 0x%02x at %d that is not printable ASCII", c, i)
		}
	}
	return nil
}

func (s *Subscription) validate() error {
	if len(s.Endpoint) > maxEndpointLen {
		return fmt.Errorf("push: webpush endpoint longer than %d bytes", maxEndpointLen)
	}
	u, err := url.Parse(s.Endpoint)
	if err != nil {
		return fmt.Errorf("push: webpush endpoint: %w", err)
	}
	local := u.Hostname() == "localhost"
	if ip := net.ParseIP(u.Hostname()); ip != nil {
		local = ip.IsLoopback()
		// A push service is on the internet: an endpoint naming an
		// address of this machine or the depot's network would have the
		// depot POST wherever a handheld says.
		if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() || ip.IsMulticast() {
			if !(allowLocalHTTP && ip.IsLoopback()) {
				return fmt.Errorf("push: webpush endpoint names a local address")
			}
		}
	}
	switch {
	case u.Host == "" || u.User != nil:
		return fmt.Errorf("push: webpush endpoint is not a plain absolute URL")
	case u.Scheme == "https" && (!local || allowLocalHTTP):
	case u.Scheme == "http" && local && allowLocalHTTP:
		// Only tests run a push service on this machine.
	default:
		return fmt.Errorf("push: webpush endpoint is not an https URL of a push service")
	}
	p256dh, err := decodeB64URL(s.Keys.P256dh)
	if err != nil {
		return fmt.Errorf("push: webpush p256dh: %w", err)
	}
	// NewPublicKey takes only the 65-byte uncompressed form and checks that
	// the point is on the curve: what encryption (RFC 8291) needs.
	if _, err := ecdh.P256().NewPublicKey(p256dh); err != nil {
		return fmt.Errorf("push: webpush p256dh is not an uncompressed P-256 point (%d bytes)", len(p256dh))
	}
	auth, err := decodeB64URL(s.Keys.Auth)
	if err != nil {
		return fmt.Errorf("push: webpush auth: %w", err)
	}
	if len(auth) != 16 {
		return fmt.Errorf("push: webpush auth must be 16 bytes, is %d", len(auth))
	}
	return nil
}

// decodeB64URL decodes base64url with or without padding: browsers give it
// without, but some libraries that relay subscriptions add it.
func decodeB64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
