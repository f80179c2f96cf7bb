package bridge

import (
	"errors"
	"strings"
	"testing"
)

func TestACL(t *testing.T) {
	drv := Identity{RoleDriver, "D1"}
	disp := Identity{RoleDispatcher, "ana"}
	adm := Identity{RoleAdmin, "admin"}
	tests := []struct {
		who   Identity
		topic string
		write bool
		want  bool
	}{
		{drv, "depot/X/drivers/D1/gps", true, true},
		{drv, "depot/X/drivers/D1/presence", true, true},
		{drv, "depot/X/drivers/D1/reply", true, true},
		{drv, "depot/X/drivers/D1/inbox", true, false},
		{drv, "depot/X/drivers/D2/gps", true, false},
		{drv, "depot/X/drivers/D10/gps", true, false},
		{drv, "depot/X/drivers/D1/gps/x", true, false},
		{drv, "depot/Y/drivers/D1/gps", true, false},
		{drv, "depot/X/events", true, false},
		{drv, "depot/X/drivers/D1/inbox", false, true},
		{drv, "depot/X/drivers/D2/inbox", false, false},
		{drv, "depot/X/drivers/D1/#", false, false},
		{drv, "depot/X/drivers/+/inbox", false, false},
		{drv, "depot/X/events", false, false},
		{drv, "#", false, false},
		// OwnTracks: its own topics to write; any filter to subscribe,
		// but of the deliveries only its own commands.
		{drv, "owntracks/D1/phone", true, true},
		{drv, "owntracks/D1/phone/event", true, true},
		{drv, "owntracks/D1/phone/waypoints", true, true},
		{drv, "owntracks/D1/phone/cmd", true, false},
		{drv, "owntracks/D2/phone", true, false},
		{drv, "owntracks/D10/phone", true, false},
		{drv, "owntracks/D1", true, false},
		{drv, "owntracks/D1/", true, false},
		{drv, "owntracks/D1/phone/a/b", true, false},
		{drv, "owntracks/D1/+", true, false},
		{drv, "owntracks/D1/ph one", true, false},
		{drv, "owntracks/+/+", false, true},
		{drv, "owntracks/+/+/event", false, true},
		{drv, "owntracks/#", false, true},
		{drv, "owntracks/D1/phone/cmd", false, true},
		{drv, "owntracks/D2/phone/cmd", false, false},
		{drv, "owntracks/D2/phone", false, false},
		{drv, "owntracks/D1/phone", false, false},
		{drv, "owntracks/D2/phone/event", false, false},
		{disp, "owntracks/+/+", false, false},
		{disp, "owntracks/D1/phone", true, false},
		{disp, "depot/X/#", false, true},
		{disp, "depot/X/events", false, true},
		{disp, "depot/X/routes/+/state", false, true},
		// A route's late fixes: dispatchers and admins read them; no
		// driver reads or writes them, nor a dispatcher writes them.
		{disp, "depot/X/routes/R1/late", false, true},
		{disp, "depot/X/routes/R1/late", true, false},
		{disp, "depot/Y/routes/R1/late", false, false},
		{adm, "depot/X/routes/R1/late", false, true},
		{drv, "depot/X/routes/R1/late", false, false},
		{drv, "depot/X/routes/+/late", false, false},
		{drv, "depot/X/routes/R1/late", true, false},
		{disp, "depot/X/drivers/D1/gps", false, true},
		{disp, "depot/Y/#", false, false},
		{disp, "#", false, false},
		{disp, "depot/#", false, false},
		{disp, "$SYS/#", false, false},
		{disp, "depot/X/drivers/D1/inbox", true, false},
		{disp, "depot/X/events", true, false},
		{adm, "$SYS/#", false, true},
		{adm, "$SYS/broker/clients", false, true},
		{adm, "depot/X/#", false, true},
		{adm, "depot/X/events", true, false},
		{Identity{"ghost", "x"}, "depot/X/events", false, false},
	}
	for _, tt := range tests {
		if got := tt.who.Allowed("X", tt.topic, tt.write); got != tt.want {
			t.Errorf("%s write=%v %q: %v, want %v", tt.who, tt.write, tt.topic, got, tt.want)
		}
	}
}

func TestClientIDBinding(t *testing.T) {
	drv := Identity{RoleDriver, "D1"}
	for id, want := range map[string]bool{"drv-D1": true, "drv-D1:phone": true, "drv-D1:": true, "drv-D1-phone": false,
		"drv-D10": false, "drv-D2": false, "dash-D1": false, "drv-": false, "drv-:x": false, "": false} {
		if got := drv.ClientIDAllowed(id); got != want {
			t.Errorf("driver D1 client id %q: %v", id, got)
		}
	}
	disp := Identity{RoleDispatcher, "ana"}
	for id, want := range map[string]bool{"dash-ana": true, "dash-ana:3f2a": true, "dash-ana-3f2a": false, "dash-anabel": false, "drv-ana": false} {
		if got := disp.ClientIDAllowed(id); got != want {
			t.Errorf("dispatcher ana client id %q: %v", id, got)
		}
	}
}

// TestClientIDNeverShared is defect 4 of issue 10: with "drv-<id>-*", driver
// X1 could connect as "drv-X1-b", the client id of driver X1-b, and resume
// its session. Ids that are prefixes of each other, with every separator in
// them, must never share a client id.
func TestClientIDNeverShared(t *testing.T) {
	subjects := []string{"X1", "X1-b", "X1:b", "X1-b:c", "X1:", ":X1", "ana", "ana-x", "ana:x", "a", "a:", "a::"}
	var ids []Identity
	for _, s := range subjects {
		ids = append(ids, Identity{RoleDriver, s}, Identity{RoleDispatcher, s})
	}
	suffixes := []string{"", ":", ":b", "-b", ":b:c", "-b:c", ":x", "-x", "::"}
	for _, owner := range ids {
		own := owner.ClientID()
		if !owner.ClientIDAllowed(own) {
			t.Errorf("%s may not use its own client id %q", owner, own)
		}
		for _, base := range []string{"drv-", "dash-"} {
			for _, s := range subjects {
				for _, suf := range suffixes {
					cid := base + s + suf
					var holders []string
					for _, id := range ids {
						if id.ClientIDAllowed(cid) {
							holders = append(holders, id.String())
						}
					}
					// dispatcher and admin share "dash-", but a username is one user
					if len(holders) > 1 {
						t.Fatalf("client id %q is valid for %v", cid, holders)
					}
				}
			}
		}
	}
}

// FuzzClientID: no client id is valid for two identities.
func FuzzClientID(f *testing.F) {
	for _, s := range [][2]string{{"X1", "drv-X1-b"}, {"X1-b", "drv-X1:b"}, {"ana", "dash-ana:x"}, {"a:b", "drv-a:b:"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, subject, cid string) {
		for _, role := range []string{RoleDriver, RoleDispatcher} {
			id := Identity{role, subject}
			if subject != "" && !id.ClientIDAllowed(id.ClientID()) {
				t.Fatalf("%s refused its own client id %q", id, id.ClientID())
			}
			if !id.ClientIDAllowed(cid) {
				continue
			}
			// cid names exactly this subject: any other subject is refused.
			for _, other := range []string{subject + "-", subject + ":", strings.TrimSuffix(subject, ":"), "x" + subject, subject[:len(subject)/2]} {
				if other != subject && (Identity{role, other}).ClientIDAllowed(cid) {
					t.Fatalf("client id %q valid for %q and %q", cid, subject, other)
				}
			}
		}
	})
}

func TestParsePresence(t *testing.T) {
	for in, want := range map[string]string{
		"offline": PresenceOffline, "online": PresenceOnline,
		`{"state":"offline"}`: PresenceOffline, `{"state":"online","ts":1764150000123}`: PresenceOnline,
		` {"ts":0,"state":"offline"} `:          PresenceOffline,
		"":                                      "",
		"Offline":                               "",
		"silent":                                "",
		`{"state":"busy"}`:                      "",
		`{"state":"offline","x":1}`:             "",
		`{"state":"offline","ts":"1"}`:          "",
		`{"state":"offline","ts":-1}`:           "",
		`{"state":"offline","ts":1.5}`:          "",
		`{"state":"offline"}{"state":"online"}`: "",
		`{"state":"offline"} x`:                 "",
		`{}`:                                    "",
		`null`:                                  "",
		`["offline"]`:                           "",
		`{"state":"offline","ts":1}` + strings.Repeat(" ", MaxPresenceBytes): "",
		`{"state":"RED\"><img src=x onerror=alert(1)>"}`:                     "",
		`{"STATE":"offline"}`:                  "",
		`{"ſtate":"offline"}`:                  "",
		`{"state":"online","STATE":"offline"}`: "",
		`{"state":"online","state":"offline"}`: "",
		`{"state":"offline","ts":1,"ts":2}`:    "",
		`{"state":null}`:                       "",
	} {
		got, err := ParsePresence([]byte(in))
		if got != want || (want == "") != (err != nil) {
			t.Errorf("ParsePresence(%q) = %q, %v; want %q", in, got, err, want)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ParsePresence(%q): %v is not ErrInvalid", in, err)
		}
	}
}

// FuzzPresencePayload: a presence that passes is small, one of two states,
// and says the same when parsed again; nothing panics.
func FuzzPresencePayload(f *testing.F) {
	for _, s := range []string{"offline", "online", `{"state":"offline","ts":1}`, `{"state":"online"}`, `{"state":"x"}`, "\x00", `{"state":"offline","ts":1e300}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParsePresence(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("%q: %v", b, err)
			}
			return
		}
		if len(b) > MaxPresenceBytes || (st != PresenceOnline && st != PresenceOffline) {
			t.Fatalf("%q accepted as %q", b, st)
		}
		drv := Identity{RoleDriver, "D1"}
		retain, err := drv.MayPublish("X", Publication{Topic: "depot/X/drivers/D1/presence", Payload: b, Retain: true})
		if err != nil || !retain {
			t.Fatalf("%q: valid presence refused: %v", b, err)
		}
	})
}

func TestMayPublish(t *testing.T) {
	drv := Identity{RoleDriver, "D1"}
	disp := Identity{RoleDispatcher, "ana"}
	const own = "depot/X/drivers/D1/presence"
	tests := []struct {
		name   string
		who    Identity
		p      Publication
		retain bool
		err    error
	}{
		{"own presence will", drv, Publication{Topic: own, Payload: []byte("offline"), QoS: 1, Retain: true, Will: true}, true, nil},
		{"own presence will, json", drv, Publication{Topic: own, Payload: []byte(`{"state":"offline","ts":5}`), Will: true}, false, nil},
		{"will saying online", drv, Publication{Topic: own, Payload: []byte("online"), Will: true}, false, ErrInvalid},
		{"will on the events topic", drv, Publication{Topic: "depot/X/events", Payload: []byte(`{"seq":1}`), Retain: true, Will: true}, false, ErrForbidden},
		{"will on another driver's inbox", drv, Publication{Topic: "depot/X/drivers/D2/inbox", Payload: []byte("{}"), Will: true}, false, ErrForbidden},
		{"will on another driver's presence", drv, Publication{Topic: "depot/X/drivers/D2/presence", Payload: []byte("offline"), Will: true}, false, ErrForbidden},
		{"will on own gps", drv, Publication{Topic: "depot/X/drivers/D1/gps", Payload: []byte(`{"lat":1,"lng":2,"ts":3}`), Will: true}, false, ErrForbidden},
		{"will on a route state", drv, Publication{Topic: "depot/X/routes/R1/state", Payload: []byte("{}"), Retain: true, Will: true}, false, ErrForbidden},
		{"will on the heartbeat", drv, Publication{Topic: "depot/X/system/heartbeat", Payload: []byte("{}"), Will: true}, false, ErrForbidden},
		{"will of a dispatcher", disp, Publication{Topic: "depot/X/events", Payload: []byte("x"), Will: true}, false, ErrForbidden},
		{"will outside the depot", drv, Publication{Topic: "elsewhere", Payload: []byte("offline"), Will: true}, false, ErrForbidden},
		{"huge will", drv, Publication{Topic: own, Payload: make([]byte, 60<<10), Retain: true, Will: true}, false, ErrInvalid},
		{"retained presence", drv, Publication{Topic: own, Payload: []byte(`{"state":"online","ts":5}`), Retain: true}, true, nil},
		{"retained junk presence", drv, Publication{Topic: own, Payload: []byte(`<b>x</b>`), Retain: true}, false, ErrInvalid},
		{"presence not retained", drv, Publication{Topic: own, Payload: []byte("online")}, false, nil},
		{"retained gps is not retained", drv, Publication{Topic: "depot/X/drivers/D1/gps", Payload: []byte(`{"lat":1}`), Retain: true}, false, nil},
		{"retained reply is not retained", drv, Publication{Topic: "depot/X/drivers/D1/reply", Payload: []byte(`{}`), Retain: true}, false, nil},
		{"owntracks lwt will", drv, Publication{Topic: "owntracks/D1/phone", Payload: []byte(`{"_type":"lwt","tst":1764000000}`), Will: true}, false, nil},
		{"owntracks retained location is not retained", drv, Publication{Topic: "owntracks/D1/phone", Payload: []byte(`{"_type":"location"}`), Retain: true}, false, nil},
		{"owntracks retained lwt is not retained", drv, Publication{Topic: "owntracks/D1/phone", Payload: []byte(`{"_type":"lwt"}`), Retain: true, Will: true}, false, nil},
		{"owntracks will of a location", drv, Publication{Topic: "owntracks/D1/phone", Payload: []byte(`{"_type":"location","lat":1,"lon":2,"tst":3}`), Will: true}, false, ErrForbidden},
		{"owntracks will with markup", drv, Publication{Topic: "owntracks/D1/phone", Payload: []byte(`<img src=x onerror=alert(1)>`), Will: true}, false, ErrForbidden},
		{"owntracks will on a subtopic", drv, Publication{Topic: "owntracks/D1/phone/event", Payload: []byte(`{"_type":"lwt"}`), Will: true}, false, ErrForbidden},
		{"owntracks will of another driver", drv, Publication{Topic: "owntracks/D2/phone", Payload: []byte(`{"_type":"lwt"}`), Will: true}, false, ErrForbidden},
		{"owntracks will on a device presence topic", drv, Publication{Topic: "owntracks/D1/presence", Payload: []byte(`{"_type":"lwt"}`), Will: true}, false, nil},
		{"dispatcher publish", disp, Publication{Topic: "depot/X/events", Payload: []byte("x")}, false, ErrForbidden},
	}
	for _, tt := range tests {
		retain, err := tt.who.MayPublish("X", tt.p)
		if retain != tt.retain || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("%s: retain %v, err %v; want %v, %v", tt.name, retain, err, tt.retain, tt.err)
		}
	}
}

func TestParseIdentity(t *testing.T) {
	for s, ok := range map[string]bool{"driver:D1": true, "admin:root": true, "dispatcher:a:b": true, "driver:": false, "x:y": false, "": false, "open:x": false} {
		id, got := ParseIdentity(s)
		if got != ok || (ok && id.String() != s) {
			t.Errorf("ParseIdentity(%q) = %v, %v", s, id, got)
		}
	}
}
