package broker

import (
	"errors"
	"reflect"
	"sync"
	"time"
	"unsafe"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// retainedExpiry expires retained messages that carry an MQTT 5 message
// expiry, in place of mochi's own scan.
//
// mochi v2.7.9 looks for expired retained messages once a second by copying
// its whole retained store (Topics.Retained.GetAll, every packet by value,
// ~750 bytes each) and testing each. The depot retains a state per route and
// a presence per driver, none of which expires: at 5,000 handhelds that copy
// was 92 % of everything an idle depot allocated (9.3 MB/s), and what made
// its collector run. This keeps only the few retained messages that can
// expire, learnt as mochi retains them (OnRetainMessage), and expires them
// exactly as mochi would: an MQTT 5 message whose Expiry has passed.
// Messages read back from the store at start have no Expiry (mochi's
// ToPacket does not restore it), so mochi never expired those either.
type retainedExpiry struct {
	mu sync.Mutex
	at map[string]int64 // topic → Expiry (unix s) of its retained message
}

// note follows what mochi retains: a message that can expire is watched,
// anything else on its topic (a new message or a delete) ends the watch.
func (r *retainedExpiry) note(pk packets.Packet, deleted bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !deleted && pk.ProtocolVersion == 5 && pk.Expiry > 0 {
		if r.at == nil {
			r.at = map[string]int64{}
		}
		r.at[pk.TopicName] = pk.Expiry
		return
	}
	delete(r.at, pk.TopicName)
}

// sweep deletes from mq's retained store the watched messages expired by
// now and tells expired of each (the persist hook forgets it).
func (r *retainedExpiry) sweep(mq *mqtt.Server, now int64, expired func(topic string)) {
	r.mu.Lock()
	var due []string
	for topic, at := range r.at {
		if at < now {
			due = append(due, topic)
			delete(r.at, topic)
		}
	}
	r.mu.Unlock()
	for _, topic := range due {
		// The message may have been replaced since it was noted (note
		// then watches the new one, or not): test the one there now.
		pk, ok := mq.Topics.Retained.Get(topic)
		if ok && pk.ProtocolVersion == 5 && pk.Expiry > 0 && pk.Expiry < now {
			mq.Topics.Retained.Delete(topic)
			if expired != nil {
				expired(topic)
			}
		}
	}
}

// stopRetainedScan stops mochi's once-a-second retained-expiry scan (the
// ticker Server.loop.retainedExpiry, unexported in v2.7.9, the pinned
// version). An error means mochi's layout changed: the scan then goes on,
// which costs garbage but loses nothing. TestStopRetainedScan fails then.
func stopRetainedScan(mq *mqtt.Server) error {
	loop := reflect.ValueOf(mq).Elem().FieldByName("loop")
	if !loop.IsValid() || loop.Kind() != reflect.Pointer || loop.IsNil() {
		return errors.New("mochi's Server has no loop")
	}
	f := loop.Elem().FieldByName("retainedExpiry")
	if !f.IsValid() || f.Type() != reflect.TypeFor[*time.Ticker]() {
		return errors.New("mochi's loop has no retainedExpiry ticker")
	}
	t := *(**time.Ticker)(unsafe.Pointer(f.UnsafeAddr()))
	if t == nil {
		return errors.New("mochi's retainedExpiry ticker is nil")
	}
	t.Stop()
	return nil
}
