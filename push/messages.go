package push

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/depotcc/depot/bridge"
)

// messagesOf makes the pushes of one event, by the driver each is for:
// a VTO offer to its driver, a rescue assignment to the rescuer, a
// reassignment to both drivers. Text from the route feed and dispatchers
// (names, reasons, addresses) goes only into the notification's plain
// text, cut to a length a lock screen shows.
func messagesOf(typ string, payload json.RawMessage, at time.Time) map[string]Message {
	out := map[string]Message{}
	msg := func(title, body, ref, collapse string, expires time.Time) Message {
		return Message{Title: clip(title, 80), Body: clip(body, 240), CollapseKey: collapse, Expires: expires,
			Data: map[string]string{"ref": ref, "url": "/driver/#msg=" + ref}}
	}
	switch typ {
	case bridge.EventVTOOffer:
		var p bridge.OfferStatus
		if json.Unmarshal(payload, &p) != nil || p.VTOID == "" {
			return nil
		}
		body := "Answer within " + strconv.Itoa(max(1, int(p.ExpiresAt.Sub(at).Minutes()))) + " min."
		if p.Reason != "" {
			body = p.Reason + ". " + body
		}
		out[p.DriverID] = msg("Time off offered · "+p.RouteCode, body, p.VTOID, p.VTOID, p.ExpiresAt)
	case bridge.EventRescueAlert:
		var p bridge.RescueAlert
		if json.Unmarshal(payload, &p) != nil || p.RescueDriver == nil || p.RescueID == "" {
			return nil
		}
		where := p.TransferLocation.Address
		if where == "" {
			where = fmt.Sprintf("%.5f, %.5f", p.TransferLocation.Lat, p.TransferLocation.Lng)
		}
		body := fmt.Sprintf("%s is %d stops behind. Meet at %s.", p.StruggleRoute.DriverName, p.StruggleRoute.BehindSchedule, where)
		out[p.RescueDriver.DriverID] = msg("Rescue: help "+p.StruggleRoute.RouteCode, body, p.RescueID, p.RescueID, at.Add(pushTTL))
	case bridge.EventRouteReassign:
		var p bridge.RouteReassigned
		if json.Unmarshal(payload, &p) != nil || p.RouteID == "" {
			return nil
		}
		key := "reassign_" + p.RouteID
		if p.ToDriverID != "" {
			out[p.ToDriverID] = msg("Route "+p.RouteCode+" is now yours", "A dispatcher moved route "+p.RouteCode+" to you.", p.RouteID, key, at.Add(pushTTL))
		}
		if p.FromDriverID != "" && p.FromDriverID != p.ToDriverID {
			out[p.FromDriverID] = msg("Route "+p.RouteCode+" moved", "A dispatcher moved route "+p.RouteCode+" to another driver.", p.RouteID, key, at.Add(pushTTL))
		}
	}
	return out
}

// clip cuts s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
