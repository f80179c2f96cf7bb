package broker

import (
	"bytes"
	"errors"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
)

// SessionStore is where the broker keeps what must survive a restart:
// persistent sessions, their subscriptions and unacknowledged QoS 1
// messages, and retained messages published by clients. Keys are short
// strings; Scan returns the values under a prefix.
type SessionStore interface {
	PutSession(key string, value []byte) error
	DeleteSession(key string) error
	ScanSessions(prefix string) ([][]byte, error)
}

// persistHook is a mochi storage hook over a SessionStore, after mochi's
// pebble hook (which, unlike the bolt and redis ones, keeps the packet id of
// inflight messages, so restored inflights do not collide).
//
// It writes only what a restart would otherwise lose, because every write
// is a synced transaction: not the sessions of clean-session clients
// (dashboards catch up by seq), not their inflights, and not the server's
// own retained messages (the depot republishes its route states at start,
// and the heartbeat every 5 s).
type persistHook struct {
	mqtt.HookBase
	store   SessionStore
	srv     *Server
	dropped map[string]bool // client ids of sessions Config.KeepSession refused at load
}

func (h *persistHook) ID() string { return "depot-sessions" }

func (h *persistHook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnSubscribed, mqtt.OnUnsubscribed,
		mqtt.OnRetainMessage, mqtt.OnWillSent, mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped,
		mqtt.OnClientExpired, mqtt.OnRetainedExpired,
		mqtt.StoredClients, mqtt.StoredInflightMessages, mqtt.StoredRetainedMessages, mqtt.StoredSubscriptions,
	}, []byte{b})
}

func clientKey(id string) string      { return storage.ClientKey + "_" + id }
func subKey(id, filter string) string { return storage.SubscriptionKey + "_" + id + ":" + filter }
func retainedKey(topic string) string { return storage.RetainedKey + "_" + topic }
func inflightKey(id string, pk packets.Packet) string {
	return storage.InflightKey + "_" + id + ":" + pk.FormatID()
}

// persistent reports whether cl's session outlives its connection.
func persistent(cl *mqtt.Client) bool {
	if cl.Net.Inline {
		return false
	}
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval > 0
	}
	return !cl.Properties.Clean
}

func (h *persistHook) put(key string, v interface{ MarshalBinary() ([]byte, error) }) {
	b, err := v.MarshalBinary()
	if err == nil {
		err = h.store.PutSession(key, b)
	}
	if err != nil {
		h.srv.Stats.PersistErrors.Add(1)
		h.Log.Error("persist broker state", "key", key, "err", err)
	}
}

func (h *persistHook) del(key string) {
	if err := h.store.DeleteSession(key); err != nil {
		h.srv.Stats.PersistErrors.Add(1)
		h.Log.Error("persist broker state", "key", key, "err", err)
	}
}

func (h *persistHook) updateClient(cl *mqtt.Client) {
	props := cl.Properties.Props.Copy(false)
	h.put(clientKey(cl.ID), &storage.Client{
		ID: cl.ID, T: storage.ClientKey, Remote: cl.Net.Remote, Listener: cl.Net.Listener,
		Username: cl.Properties.Username, Clean: cl.Properties.Clean, ProtocolVersion: cl.Properties.ProtocolVersion,
		Properties: storage.ClientProperties{
			SessionExpiryInterval: props.SessionExpiryInterval, AuthenticationMethod: props.AuthenticationMethod,
			AuthenticationData: props.AuthenticationData, RequestProblemInfo: props.RequestProblemInfo,
			RequestResponseInfo: props.RequestResponseInfo, ReceiveMaximum: props.ReceiveMaximum,
			TopicAliasMaximum: props.TopicAliasMaximum, User: props.User, MaximumPacketSize: props.MaximumPacketSize,
		},
		Will: storage.ClientWill(cl.Properties.Will),
	})
}

func (h *persistHook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	if persistent(cl) {
		h.updateClient(cl)
	} else if !cl.Net.Inline {
		h.del(clientKey(cl.ID)) // a clean start ends a persistent session of the same id
	}
}

func (h *persistHook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	if persistent(cl) {
		h.updateClient(cl)
	}
}

func (h *persistHook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if !persistent(cl) || errors.Is(cl.StopCause(), packets.ErrSessionTakenOver) {
		return
	}
	if expire {
		h.del(clientKey(cl.ID))
		return
	}
	h.updateClient(cl)
}

func (h *persistHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	if !persistent(cl) {
		return
	}
	for i, f := range pk.Filters {
		if i >= len(reasonCodes) || reasonCodes[i] >= 0x80 {
			continue
		}
		h.put(subKey(cl.ID, f.Filter), &storage.Subscription{
			ID: subKey(cl.ID, f.Filter), T: storage.SubscriptionKey, Client: cl.ID, Qos: reasonCodes[i],
			Filter: f.Filter, Identifier: f.Identifier, NoLocal: f.NoLocal, RetainHandling: f.RetainHandling,
			RetainAsPublished: f.RetainAsPublished,
		})
	}
}

func (h *persistHook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if !persistent(cl) {
		return
	}
	for _, f := range pk.Filters {
		h.del(subKey(cl.ID, f.Filter))
	}
}

func message(key, t, client string, pk packets.Packet) *storage.Message {
	props := pk.Properties.Copy(false)
	return &storage.Message{
		ID: key, T: t, Client: client, Origin: pk.Origin, PacketID: pk.PacketID, FixedHeader: pk.FixedHeader,
		TopicName: pk.TopicName, Payload: pk.Payload, Created: pk.Created,
		Properties: storage.MessageProperties{
			PayloadFormat: props.PayloadFormat, MessageExpiryInterval: props.MessageExpiryInterval,
			ContentType: props.ContentType, ResponseTopic: props.ResponseTopic, CorrelationData: props.CorrelationData,
			SubscriptionIdentifier: props.SubscriptionIdentifier, TopicAlias: props.TopicAlias, User: props.User,
		},
	}
}

func (h *persistHook) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, r int64) {
	if cl.Net.Inline {
		return // the server's own: republished at start
	}
	if r == -1 {
		h.del(retainedKey(pk.TopicName))
		return
	}
	h.put(retainedKey(pk.TopicName), message(retainedKey(pk.TopicName), storage.RetainedKey, cl.ID, pk))
}

func (h *persistHook) OnRetainedExpired(filter string) { h.del(retainedKey(filter)) }

func (h *persistHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	if !persistent(cl) || inboundAck(pk) {
		return
	}
	m := message(inflightKey(cl.ID, pk), storage.InflightKey, cl.ID, pk)
	m.Sent = sent
	h.put(m.ID, m)
}

func (h *persistHook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if persistent(cl) && !inboundAck(pk) {
		h.del(inflightKey(cl.ID, pk))
	}
}

// inboundAck reports whether pk is mochi's PUBACK to a client's QoS 1
// publish, which mochi files as an inflight around writing it
// (processPublish). Stored, it would cost two synced transactions per fix
// of every handheld with a persistent session, in the handheld's own
// goroutine and against the pipeline's commits for the store's one
// writer; and it serves nothing: a handheld that gets no PUBACK resends.
// Deleting it by its packet id would also delete the record of an
// outbound message to that handheld with the same id. A handheld's own
// PUBACK to an outbound message, which does complete a stored inflight,
// comes from the wire and has no creation time; mochi's (buildAck) has.
func inboundAck(pk packets.Packet) bool {
	return pk.FixedHeader.Type == packets.Puback && pk.Created != 0
}

func (h *persistHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) { h.OnQosComplete(cl, pk) }

func (h *persistHook) OnClientExpired(cl *mqtt.Client) { h.del(clientKey(cl.ID)) }

func scan[T any, P interface {
	*T
	UnmarshalBinary([]byte) error
}](h *persistHook, prefix string) ([]T, error) {
	vals, err := h.store.ScanSessions(prefix + "_")
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(vals))
	for _, v := range vals {
		var x T
		if err := P(&x).UnmarshalBinary(v); err != nil {
			h.Log.Warn("skipping unreadable broker record", "prefix", prefix, "err", err)
			continue
		}
		out = append(out, x)
	}
	return out, nil
}

// keepOnly returns the records of all that keep accepts (keep may amend
// one) and deletes the others from the store, saying how many in what.
func keepOnly[T any](h *persistHook, all []T, what string, key func(*T) string, keep func(*T) bool) []T {
	kept := all[:0]
	for i := range all {
		if keep(&all[i]) {
			kept = append(kept, all[i])
		} else {
			h.del(key(&all[i]))
		}
	}
	if n := len(all) - len(kept); n > 0 {
		h.Log.Warn("dropped stored "+what+" the rules refuse", "count", n, "kept", len(kept))
	}
	return kept
}

// StoredClients passes each stored session through Config.KeepSession: a
// session stored under an older rule (a client id that named another
// identity) would otherwise be taken over with its subscriptions and its
// queued messages, which mochi resends with no ACL check. What it refuses
// is deleted, with its subscriptions and messages (mochi reads clients
// first).
func (h *persistHook) StoredClients() ([]storage.Client, error) {
	all, err := scan[storage.Client](h, storage.ClientKey)
	keep := h.srv.cfg.KeepSession
	if err != nil || keep == nil {
		return all, err
	}
	h.dropped = map[string]bool{}
	return keepOnly(h, all, "sessions", func(c *storage.Client) string { return clientKey(c.ID) }, func(c *storage.Client) bool {
		ok := keep(c.ID, string(c.Username))
		h.dropped[c.ID] = !ok
		return ok
	}), nil
}

func (h *persistHook) StoredSubscriptions() ([]storage.Subscription, error) {
	all, err := scan[storage.Subscription](h, storage.SubscriptionKey)
	if err != nil {
		return all, err
	}
	return keepOnly(h, all, "subscriptions", func(s *storage.Subscription) string { return s.ID },
		func(s *storage.Subscription) bool { return !h.dropped[s.Client] }), nil
}

// StoredRetainedMessages passes each stored retained message through
// Config.KeepRetained before mochi serves it again: a message kept by an
// older version (a will on any topic, a 60 KB junk presence) would
// otherwise outlive the rule that now refuses it, and be read by every
// dashboard after each restart. What the rule refuses is deleted; what it
// keeps loses its application properties, as OnPublish strips them now.
func (h *persistHook) StoredRetainedMessages() ([]storage.Message, error) {
	all, err := scan[storage.Message](h, storage.RetainedKey)
	keep := h.srv.cfg.KeepRetained
	if err != nil || keep == nil {
		return all, err
	}
	return keepOnly(h, all, "retained messages", func(m *storage.Message) string { return m.ID }, func(m *storage.Message) bool {
		if !keep(m.Client, Message{Topic: m.TopicName, Payload: m.Payload, QoS: m.FixedHeader.Qos, Retain: true}) {
			return false
		}
		if p := &m.Properties; len(p.User) > 0 || p.ContentType != "" || p.ResponseTopic != "" || p.CorrelationData != nil || p.PayloadFormatFlag {
			p.User, p.ContentType, p.ResponseTopic, p.CorrelationData = nil, "", "", nil
			p.PayloadFormat, p.PayloadFormatFlag = 0, false
			h.put(m.ID, m)
		}
		return true
	}), nil
}

func (h *persistHook) StoredInflightMessages() ([]storage.Message, error) {
	all, err := scan[storage.Message](h, storage.InflightKey)
	if err != nil {
		return all, err
	}
	return keepOnly(h, all, "queued messages", func(m *storage.Message) string { return m.ID },
		func(m *storage.Message) bool { return !h.dropped[m.Client] }), nil
}
