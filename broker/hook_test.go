package broker

import (
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// routing is an Authenticator and Ingestor whose answers a test sets, and
// which records what reached it.
type routing struct {
	switchable
	retain    bool  // what Publish says about retaining
	refuse    error // Publish's refusal, if any
	ingestErr error
	ingested  []string
}

func (r *routing) Publish(identity string, m Message) (bool, error) {
	if r.refuse != nil {
		return false, r.refuse
	}
	return r.retain, nil
}

func (r *routing) Ingest(clientID, topic string, payload []byte, qos byte) error {
	r.ingested = append(r.ingested, clientID+" "+topic+" "+string(payload))
	return r.ingestErr
}

// TestOnPublishRouting: how the hook routes a publish, by what the
// publish rule and the domain answer: the server's own publishes pass
// untouched; a refusal never reaches the domain and is answered with its
// reason code (MQTT 5, QoS 1) or ignored (the others); the rule decides
// retain; a domain refusal is a reason code; a domain failure (the disk) is
// never acknowledged as success.
func TestOnPublishRouting(t *testing.T) {
	for _, c := range []struct {
		name              string
		inline            bool
		v5                bool
		qos               byte
		askRetain, retain bool
		refuse, ingestErr error
		wantCode          byte // the packets.Code returned, when one is
		wantIgnore        bool // mochi drops it silently (CodeSuccessIgnore)
		wantIngest        bool
		wantRetain        bool
	}{
		{name: "server's own", inline: true, qos: 1, askRetain: true, refuse: errors.New("never asked"), wantRetain: true},
		{name: "allowed, QoS 1", v5: true, qos: 1, wantIngest: true},
		{name: "retain kept by the rule", v5: true, qos: 1, askRetain: true, retain: true, wantIngest: true, wantRetain: true},
		{name: "retain cleared by the rule", v5: true, qos: 1, askRetain: true, wantIngest: true},
		{name: "refused, v5 QoS 1", v5: true, qos: 1, refuse: &Refused{Code: CodePayloadFormat, Reason: "bad"}, wantCode: CodePayloadFormat},
		{name: "refused without a code", v5: true, qos: 1, refuse: errors.New("no"), wantCode: CodeNotAuthorized},
		{name: "refused, v5 QoS 0", v5: true, refuse: &Refused{Code: CodeNotAuthorized}, wantIgnore: true},
		{name: "refused, 3.1.1 QoS 1", qos: 1, refuse: &Refused{Code: CodeNotAuthorized}, wantIgnore: true},
		{name: "domain refusal", v5: true, qos: 1, ingestErr: &Refused{Code: CodeRefused, Reason: "taken"}, wantCode: CodeRefused, wantIngest: true},
		{name: "disk failure, v5", v5: true, qos: 1, ingestErr: errors.New("disk full"), wantCode: packets.ErrUnspecifiedError.Code, wantIngest: true},
		{name: "disk failure, 3.1.1", qos: 1, ingestErr: errors.New("disk full"), wantCode: packets.ErrRejectPacket.Code, wantIngest: true},
		{name: "disk failure, QoS 0", v5: true, ingestErr: errors.New("disk full"), wantIgnore: true, wantIngest: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &routing{retain: c.retain, refuse: c.refuse, ingestErr: c.ingestErr}
			s := New(Config{Auth: r, Ingest: r, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			cl := s.mq.NewClient(nil, "tcp", "h1", c.inline)
			cl.Properties.Username = []byte("driver:h1")
			cl.Properties.ProtocolVersion = 4
			if c.v5 {
				cl.Properties.ProtocolVersion = 5
			}
			pk := packets.Packet{TopicName: "depot/X/drivers/h1/gps", Payload: []byte("p"),
				FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: c.qos, Retain: c.askRetain}}
			out, err := (&hook{srv: s}).OnPublish(cl, pk)
			var code byte
			var pc packets.Code
			if err != nil && !errors.As(err, &pc) {
				t.Fatalf("error %v is not a packets.Code", err)
			}
			code = pc.Code
			if ignored := pc == packets.CodeSuccessIgnore; ignored != c.wantIgnore {
				t.Errorf("ignored %v, want %v (%v)", ignored, c.wantIgnore, err)
			}
			if code != c.wantCode || (err == nil) != (c.wantCode == 0 && !c.wantIgnore) {
				t.Errorf("code 0x%02x (err %v), want 0x%02x", code, err, c.wantCode)
			}
			if got := len(r.ingested) > 0; got != c.wantIngest {
				t.Errorf("ingested %v, want %v", r.ingested, c.wantIngest)
			}
			if err == nil && out.FixedHeader.Retain != c.wantRetain {
				t.Errorf("retain %v, want %v", out.FixedHeader.Retain, c.wantRetain)
			}
		})
	}
}
