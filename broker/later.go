package broker

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// later is a QoS 1 publish whose answer a LaterIngestor gave as done.
type later struct {
	pk   packets.Packet
	done func() error
}

// maxLater is how many of one client's publishes may await their answer;
// beyond it the client's read loop waits, so a client that floods slows
// itself, not others. (An MQTT 5 client may have at most the server's
// Receive Maximum unacknowledged, mochi's 1,024; a 3.1.1 client has no
// such bound.)
const maxLater = 64

// answerLater queues pk's answer on cl's answerer, starting it with cl's
// first such publish. Only cl's read goroutine calls it, and OnDisconnect
// (on that goroutine, after its last read) closes the queue.
func (s *Server) answerLater(cl *mqtt.Client, pk packets.Packet, done func() error) {
	q, ok := s.answers.Load(cl)
	if !ok {
		ch := make(chan later, maxLater)
		s.answers.Store(cl, ch)
		go s.answer(cl, ch)
		q = ch
	}
	q.(chan later) <- later{pk, done}
}

// answer is one client's answerer: in the order the publishes came, it
// waits for each to be safe, then sends its PUBACK (or its refusal: a v5
// reason code, or for 3.1.1 none, so the client sends it again) and
// delivers it, as mochi would have (processPublish).
func (s *Server) answer(cl *mqtt.Client, q <-chan later) {
	for l := range q {
		err := l.done()
		if cl.Closed() {
			continue // nobody to answer; the client sends it again
		}
		code := packets.CodeSuccess
		if err != nil {
			r := s.hook.refusal(cl, l.pk, err)
			c, ok := r.(packets.Code)
			if !ok || c == packets.ErrRejectPacket { // no answer
				continue
			}
			code = c
		}
		ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: l.pk.PacketID, ReasonCode: code.Code}
		if code.Code >= packets.ErrUnspecifiedError.Code {
			ack.Properties.ReasonString = code.Reason
		}
		if cl.WritePacket(ack) != nil || err != nil || code == packets.CodeSuccessIgnore {
			continue
		}
		if perr := s.mq.Publish(l.pk.TopicName, l.pk.Payload, false, l.pk.FixedHeader.Qos); perr != nil {
			s.cfg.Log.Warn("deliver", "client", cl.ID, "topic", l.pk.TopicName, "err", perr)
		}
	}
}
