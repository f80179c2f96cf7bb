// Replies: what a handheld answers on its reply topic (VTO, rescue ack).

package bridge

import (
	"encoding/json"
	"fmt"
)

// Reply is what a handheld publishes on its reply topic.
type Reply struct {
	Ref    string `json:"ref"`
	Action string `json:"action"`
}

// Reply takes a handheld's reply: accept or decline a VTO offer, or ack a
// rescue assignment. Errors wrap ErrInvalid, ErrNotFound, ErrForbidden or
// ErrConflict, so the handheld can be told why.
func (m *Machine) Reply(b *Batch, driverID string, payload []byte) error {
	if len(payload) > 1024 {
		return fmt.Errorf("%w: reply over 1 KB", ErrInvalid)
	}
	var r Reply
	if err := json.Unmarshal(payload, &r); err != nil || r.Ref == "" {
		return fmt.Errorf("%w: want {\"ref\":…,\"action\":\"accept\"|\"decline\"|\"ack\"}", ErrInvalid)
	}
	switch r.Action {
	case ActionAccept, ActionDecline:
		_, err := m.AnswerVTO(b, r.Ref, r.Action, driverID, "driver:"+driverID)
		return err
	case ActionAck:
		return m.AckRescue(b, r.Ref, driverID)
	}
	return fmt.Errorf("%w: action must be accept, decline or ack", ErrInvalid)
}
