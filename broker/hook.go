package broker

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// hook connects mochi's callbacks to the Authenticator and Ingestor. It is
// the only authentication and ACL hook: mochi ORs these across hooks, so an
// allow-all hook beside it would open everything (docs/libraries.md §1).
type hook struct {
	mqtt.HookBase
	srv *Server
}

func (h *hook) ID() string { return "depot" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish,
		mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnWill, mqtt.OnSubscribe, mqtt.OnSubscribed,
		mqtt.OnPacketRead, mqtt.OnPacketEncode, mqtt.OnRetainMessage}, []byte{b})
}

// OnConnect authenticates, and judges the Last Will before the client can
// leave it behind. mochi's OnConnectAuthenticate can only answer 0x86, so
// refusals are sent from here with the exact code: 0x87/5 for anonymous, a
// client id bound to someone else or a will the identity may not leave;
// 0x86/4 for a bad, expired, revoked or borrowed credential. The identity
// replaces the client's Username, which persists with the session, so ACL
// checks on restored sessions use it too.
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if mps := cl.Properties.Props.MaximumPacketSize; cl.Properties.ProtocolVersion == 5 && mps > 0 && mps < minClientPacketSize {
		// mochi could not write the CONNACK, and then leaves the client
		// in its table for the session expiry without telling any hook.
		h.srv.Stats.ConnectRefused.Add(1)
		_ = h.srv.mq.SendConnack(cl, packets.ErrImplementationSpecificError, false, nil)
		return packets.ErrImplementationSpecificError
	}
	sess, err := h.srv.cfg.Auth.Authenticate(Connect{
		ClientID: cl.ID, Username: pk.Connect.Username, Password: pk.Connect.Password,
		Listener: cl.Net.Listener, Remote: cl.Net.Remote, Persistent: persistent(cl),
	})
	if err == nil && !sess.Expires.IsZero() && !sess.Expires.After(time.Now()) {
		err = errors.New("credential expired") // within the verifier's leeway, but no time left to serve
	}
	if err == nil && pk.Connect.WillFlag {
		// mochi publishes a will with no ACL check and no OnPublish: this
		// is the only place to ask, while the client can still be told.
		if _, werr := h.srv.cfg.Auth.Publish(sess.Identity, Message{
			Topic: pk.Connect.WillTopic, Payload: pk.Connect.WillPayload,
			QoS: pk.Connect.WillQos, Retain: pk.Connect.WillRetain, Will: true,
		}); werr != nil {
			err = fmt.Errorf("%w: will on %q refused: %v", ErrNotAuthorized, pk.Connect.WillTopic, werr)
		}
	}
	if err == nil {
		cl.Properties.Username = []byte(sess.Identity)
		// A client that asks for no keepalive, or a very long one, gets
		// the server's: a dead handheld is found within 1.5× of it.
		if max := h.srv.cfg.MaxKeepAlive; cl.State.Keepalive == 0 || cl.State.Keepalive > max {
			cl.State.Keepalive, cl.State.ServerKeepalive = max, true
		}
		if !sess.Expires.IsZero() {
			// The timer starts once the CONNACK is out (OnSessionEstablished):
			// mochi tells no hook when writing it fails.
			h.srv.expires.Store(cl, sess.Expires)
		}
		return nil
	}
	h.srv.Stats.ConnectRefused.Add(1)
	h.srv.cfg.Log.Info("mqtt connect refused", "client", cl.ID, "remote", cl.Net.Remote, "err", err)
	v5 := cl.Properties.ProtocolVersion == 5
	code := packets.ErrBadUsernameOrPassword
	switch {
	case errors.Is(err, ErrClientID) && v5:
		code = packets.ErrClientIdentifierNotValid
	case errors.Is(err, ErrClientID):
		code = packets.Err3ClientIdentifierNotValid
	case errors.Is(err, ErrNotAuthorized) && v5:
		code = packets.ErrNotAuthorized
	case errors.Is(err, ErrNotAuthorized):
		code = packets.Err3NotAuthorized
	case !v5:
		code = packets.ErrMalformedUsernameOrPassword // 3.1.1 return code 4: bad user name or password
	}
	_ = h.srv.mq.SendConnack(cl, code, false, nil)
	return code
}

// endAt ends cl's session when its credential (a login token) expires: a
// token is refused at CONNECT once expired, and a session opened with it
// must not outlive it. MQTT 5 clients hear 0xA0 (maximum connect time); the
// page renews its token before then and moves to a new session.
func (h *hook) endAt(cl *mqtt.Client, t time.Time) {
	end := func() {
		h.srv.expiry.Delete(cl)
		if cl.Closed() {
			return
		}
		h.srv.cfg.Log.Info("mqtt session ended: its token expired", "client", cl.ID, "identity", string(cl.Properties.Username))
		_ = h.srv.mq.DisconnectClient(cl, packets.ErrMaxConnectTime)
	}
	d := time.Until(t)
	if d <= 0 {
		end()
		return
	}
	// Stored before it is armed, so it cannot fire (and delete itself)
	// before it is in the map, which would leave it there for good.
	timer := time.AfterFunc(time.Duration(math.MaxInt64), end)
	h.srv.expiry.Store(cl, timer)
	timer.Reset(d)
}

// minClientPacketSize is the least MQTT 5 Maximum Packet Size a client may
// ask for: below it not even the CONNACK fits.
const minClientPacketSize = 128

// OnWill judges a will again when it is about to be sent: the credential
// may have been revoked since CONNECT, or the session restored from disk
// from before the rule. mochi sends whatever OnWill returns and ignores an
// error, so a refused will is emptied: no topic, nothing retained, which
// reaches no subscriber.
func (h *hook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	retain, err := h.srv.cfg.Auth.Publish(string(cl.Properties.Username), Message{
		Topic: will.TopicName, Payload: will.Payload, QoS: will.Qos, Retain: will.Retain, Will: true,
	})
	if err != nil {
		h.srv.Stats.PublishDenied.Add(1)
		h.srv.cfg.Log.Info("mqtt will refused", "client", cl.ID, "identity", string(cl.Properties.Username), "topic", will.TopicName, "err", err)
		return mqtt.Will{}, nil
	}
	will.Retain = retain
	will.User = nil // a will is a presence: nothing rides along
	return will, nil
}

// OnConnectAuthenticate runs only after OnConnect accepted the client (mochi
// drops the connection when OnConnect returns an error), so it accepts. It
// must exist: with no hook providing it, mochi refuses everyone.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool { return true }

// OnRetainMessage tells the retained-expiry watch what mochi retained
// (retained.go).
func (h *hook) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, r int64) {
	h.srv.retained.note(pk, r == -1)
}

// pendingSubs are the filters of one SUBSCRIBE while mochi checks them one
// by one, and how many of them were let through so far.
type pendingSubs struct {
	mu      sync.Mutex
	filters map[string]bool
	granted int
}

// OnSubscribe notes the filters about to be checked, so that OnACLCheck can
// tell a subscription from a delivery and hold each client to MaxSubs
// (mochi has no such cap).
func (h *hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	p := &pendingSubs{filters: make(map[string]bool, len(pk.Filters))}
	for _, f := range pk.Filters {
		p.filters[f.Filter] = true
	}
	h.srv.pending.Store(cl.ID, p)
	return pk
}

func (h *hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	h.srv.pending.Delete(cl.ID)
}

// readCheck tells a read check of topic that is one of the filters of
// the SUBSCRIBE being handled (sub) from a delivery, and whether such a
// new subscription is beyond the client's cap (over).
func (h *hook) readCheck(cl *mqtt.Client, topic string) (sub, over bool) {
	v, ok := h.srv.pending.Load(cl.ID)
	if !ok {
		return false, false
	}
	p := v.(*pendingSubs)
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.filters[topic] {
		return false, false // a delivery
	}
	if _, had := cl.State.Subscriptions.Get(topic); had {
		return true, false // a renewal
	}
	if cl.State.Subscriptions.Len()+p.granted >= h.srv.cfg.MaxSubs {
		return true, true
	}
	p.granted++
	return true, false
}

func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	sub, over := false, false
	if !write {
		sub, over = h.readCheck(cl, topic)
	}
	if over {
		h.srv.Stats.ReadDenied.Add(1)
		h.srv.cfg.Log.Info("mqtt subscription over the client's cap refused", "client", cl.ID, "filter", topic, "max", h.srv.cfg.MaxSubs)
		return false
	}
	ok := h.srv.cfg.Auth.Allow(string(cl.Properties.Username), topic, write)
	if !ok && !write && !sub && strings.HasPrefix(topic, "owntracks/") {
		// OwnTracks subscribes to owntracks/+/+ to see friends: every
		// other driver's location is a delivery refused here, by design,
		// not an attempt worth a count or a log line.
		return false
	}
	if !ok {
		if write {
			h.srv.Stats.PublishDenied.Add(1)
		} else {
			h.srv.Stats.ReadDenied.Add(1)
		}
		msg := "mqtt subscribe denied"
		if write {
			msg = "mqtt publish denied"
		}
		h.srv.cfg.Log.Info(msg, "client", cl.ID, "identity", string(cl.Properties.Username), "topic", topic)
	}
	return ok
}

// OnPublish runs before the PUBACK, on the client's own read goroutine,
// after the ACL. It asks the Authenticator whether the message may be
// carried and retained (only a driver's own presence is kept: a retained
// fix or reply is carried with its retain flag cleared), then hands it to
// the Ingestor. A refused message is never delivered: v5 QoS 1 senders get
// the reason code; v3 and QoS 0 senders are acknowledged and the message
// dropped, since resending a bad fix can never succeed. A failure that is
// not the message's fault (the store) leaves a v3 QoS 1 message
// unacknowledged so the handheld sends it again.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || pk.TopicName == dropTopic {
		return pk, nil
	}
	retain, err := h.srv.cfg.Auth.Publish(string(cl.Properties.Username), Message{
		Topic: pk.TopicName, Payload: pk.Payload, QoS: pk.FixedHeader.Qos, Retain: pk.FixedHeader.Retain,
	})
	if err == nil {
		pk.FixedHeader.Retain = retain
		if retain {
			// What is retained is bounded by the rule on its payload; the
			// application properties of MQTT 5 would ride along unbounded
			// into the store and to every later subscriber.
			stripAppProperties(&pk.Properties)
		}
		if h.srv.cfg.Ingest == nil {
			return pk, nil
		}
		err = h.srv.cfg.Ingest.Ingest(cl.ID, pk.TopicName, pk.Payload, pk.FixedHeader.Qos)
		if err == nil {
			return pk, nil
		}
	} else {
		h.srv.Stats.PublishDenied.Add(1)
		var r *Refused
		if !errors.As(err, &r) {
			err = &Refused{Code: CodeNotAuthorized, Reason: err.Error()}
		}
	}
	v5qos := cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos > 0
	var r *Refused
	if errors.As(err, &r) {
		h.srv.cfg.Log.Info("mqtt publish refused", "client", cl.ID, "topic", pk.TopicName, "reason", r.Reason)
		if v5qos {
			return pk, packets.Code{Code: r.Code, Reason: r.Reason}
		}
		return pk, packets.CodeSuccessIgnore
	}
	h.srv.cfg.Log.Warn("mqtt publish not stored", "client", cl.ID, "topic", pk.TopicName, "err", err)
	switch {
	case v5qos:
		return pk, packets.ErrUnspecifiedError
	case pk.FixedHeader.Qos > 0:
		return pk, packets.ErrRejectPacket
	}
	return pk, packets.CodeSuccessIgnore
}

// stripAppProperties removes the properties a publisher may fill freely.
func stripAppProperties(p *packets.Properties) {
	p.User, p.ContentType, p.ResponseTopic, p.CorrelationData = nil, "", "", nil
	p.PayloadFormat, p.PayloadFormatFlag = 0, false
}

// dropTopic is where a publish refused in OnPacketRead is sent to vanish:
// mochi drops a client's publish to a $SYS topic silently, before any
// other check or acknowledgement (processPublish, IsValidFilter). An error
// from OnPacketRead would instead end the client's connection.
const dropTopic = "$SYS/depot/dropped"

// OnPacketRead runs for every packet a client sends, before mochi's own
// checks. For a PUBLISH it does two things mochi does too late:
//
// It charges the sender's budget. mochi checks the ACL before OnPublish,
// so a publish the ACL refuses never reached a limit there, and a client
// could send refused publishes as fast as the broker could parse them. Here
// every publish counts, allowed or not. Over the budget: an MQTT 5 QoS 1
// sender hears 0x96; a 3.1.1 QoS 1 sender cannot be told, so it is
// disconnected rather than left resending; QoS 0 is dropped. A client that
// goes on after its refusals used up a second burst is cut off: refusing
// costs a read, a parse and an ACL check per packet, which its neighbours
// would pay for.
//
// It resolves an MQTT 5 topic alias, so the ACL sees the topic and not the
// empty name of an aliased publish. An alias is only ever recorded by mochi
// after its topic passed the ACL, so it cannot lead anywhere the client may
// not write.
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Puback && pk.ReasonCode < 0x80 && h.srv.cfg.Acked != nil && bytes.HasPrefix(cl.Properties.Username, []byte("driver:")) {
		// Read before mochi handles the PUBACK, while the message it
		// acknowledges is still in flight.
		if out, ok := cl.State.Inflight.Get(pk.PacketID); ok && out.FixedHeader.Type == packets.Publish {
			h.srv.cfg.Acked(string(cl.Properties.Username), out.TopicName, out.Payload)
		}
		return pk, nil
	}
	if pk.FixedHeader.Type != packets.Publish || cl.Net.Inline {
		return pk, nil
	}
	if a := pk.Properties.TopicAlias; a > 0 && a <= h.srv.cfg.TopicAliases && pk.TopicName == "" {
		pk.TopicName = cl.State.TopicAliases.Inbound.Set(a, "")
	}
	l := h.srv.buckets.get(string(cl.Properties.Username), h.srv.cfg.PublishRate, h.srv.cfg.PublishBurst, time.Now())
	if l.rate.Allow() {
		return pk, nil
	}
	h.srv.Stats.RateLimited.Add(1)
	v5 := cl.Properties.ProtocolVersion == 5
	if !l.strikes.Allow() || (pk.FixedHeader.Qos > 0 && !v5) {
		h.srv.cfg.Log.Info("mqtt disconnecting a flooding client", "client", cl.ID, "identity", string(cl.Properties.Username), "remote", cl.Net.Remote)
		_ = h.srv.mq.DisconnectClient(cl, packets.ErrMessageRateTooHigh)
		return pk, packets.ErrRejectPacket // ends the client's read loop
	}
	h.srv.cfg.Log.Info("mqtt publish rate limited", "client", cl.ID, "identity", string(cl.Properties.Username))
	if pk.FixedHeader.Qos > 0 {
		if err := cl.WritePacket(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Puback},
			PacketID:    pk.PacketID, ReasonCode: packets.ErrMessageRateTooHigh.Code,
		}); err != nil {
			return pk, packets.ErrRejectPacket
		}
	}
	pk.TopicName = dropTopic
	pk.Properties.TopicAlias, pk.Properties.TopicAliasFlag = 0, false
	return pk, nil
}

// OnPacketEncode tells MQTT 5 clients how many topic aliases they may set:
// mochi enforces its maximum but does not put it in the CONNACK, and a
// client told nothing may not use aliases at all.
func (h *hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Connack && pk.ReasonCode == 0 && cl.Properties.ProtocolVersion == 5 {
		pk.Properties.TopicAliasMaximum = h.srv.cfg.TopicAliases
	}
	return pk
}

func (h *hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	if t, ok := h.srv.expires.LoadAndDelete(cl); ok {
		h.endAt(cl, t.(time.Time))
	}
	if o := h.srv.cfg.Observer; o != nil && !cl.Net.Inline {
		o.SessionStarted(string(cl.Properties.Username))
	}
}

// OnDisconnect keeps the pending subscriptions of a session that was
// taken over: its client id lives on in the new connection.
func (h *hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	h.srv.expires.Delete(cl)
	if t, ok := h.srv.expiry.LoadAndDelete(cl); ok {
		t.(*time.Timer).Stop()
	}
	if !cl.IsTakenOver() {
		h.srv.pending.Delete(cl.ID)
	}
	// A connection taken over ends too: the new one was counted when it
	// started, so counting this one out keeps the identity's count right
	// (skipping it left a driver online for good after a takeover).
	if o := h.srv.cfg.Observer; o != nil && !cl.Net.Inline && len(cl.Properties.Username) > 0 {
		o.SessionEnded(string(cl.Properties.Username))
	}
}
