// Package setup makes the set-ups of a driver's handheld: what an admin
// hands the driver (as links, a configuration object and QR codes) so each
// supported app is configured for the depot without typing the token.
// Pure functions: no HTTP server, no store. See docs/handhelds.md,
// "Provisioning answers with set-ups".
//
// The facts about the apps come from their own sources (read 2026):
//
//   - OwnTracks configuration keys: owntracks/booklet docs/tech/json.md,
//     "_type=configuration"; the iOS app's importer,
//     owntracks/ios OwnTracks/OwnTracks/Settings.m (fromDictionary), and the
//     Android app's preference names, owntracks/android
//     project/app/src/main/java/org/owntracks/android/preferences/Preferences.kt
//     (a configuration imports the keys that are preference names there and
//     ignores the rest, so the iOS-only "auth" and "allowRemoteLocation" do
//     no harm on Android).
//   - Mode numbers: 0 is MQTT, 3 is HTTP (booklet json.md "mode"; iOS
//     Settings.h CONNECTION_MODE_MQTT = 0, CONNECTION_MODE_HTTP = 3; Android
//     types/ConnectionMode.kt MQTT(0), HTTP(3)). iOS refuses a configuration
//     whose mode is neither.
//   - The inline link: owntracks:///config?inline=<base64 of the .otrc JSON>
//     (booklet docs/features/remoteconfig.md, "URL config"). iOS decodes the
//     query value with NSData initWithBase64EncodedString:options:0
//     (OwnTracksAppDelegate.m processURIConfig: the standard alphabet, with
//     padding); Android with kotlin.io.encoding.Base64.Default after
//     java.net.URLDecoder (LoadViewModel.kt), which turns a bare '+' into a
//     space. So: standard base64 with padding, percent-escaped in the query.
//     Both apps import a link or .otrc file only when "allow configuration
//     by URI and config file" is switched on in the app (off by default:
//     iOS MQTT.plist/HTTP.plist allowConfigurationByURIAndConfigFile false;
//     Android DefaultsProvider.kt), so the driver turns it on first.
//   - tid: at most two letters or digits (Android
//     types/StringMaxTwoAlphaNumericChars.kt keeps only those, two at most).
//   - mqttProtocolLevel: 3 (MQTT 3.1) or 4 (3.1.1) on both apps, 5 on iOS
//     only (booklet json.md; Android types/MqttProtocolLevel.kt): 4.
//   - Traccar Client: the current app (traccar/traccar-client, Flutter; it
//     replaced the native Android and iOS apps) has a QR scanner in its
//     settings (lib/qr_code_screen.dart, since 9.5): a scanned http(s) URL
//     sets the server URL to its origin and path, and its query sets the
//     other settings, "id" being the device identifier
//     (lib/configuration_service.dart applyUri; lib/preferences.dart). The
//     older native Android client (traccar/traccar-client-android) reads no
//     QR code and no link: there the driver types the server URL and the
//     identifier.
package setup

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// The kinds of set-up a QR code can carry.
const (
	KindDriverApp     = "driverapp"
	KindOwnTracks     = "owntracks"
	KindOwnTracksHTTP = "owntracks-http"
	KindTraccar       = "traccar"
)

// Kinds lists the kinds, in the order they are shown.
var Kinds = []string{KindDriverApp, KindOwnTracks, KindOwnTracksHTTP, KindTraccar}

// OwnTracks connection modes (see the package comment).
const (
	OwnTracksModeMQTT = 0
	OwnTracksModeHTTP = 3
)

// DeviceID is the OwnTracks device name the set-ups give: the app
// publishes on owntracks/<driverId>/phone.
const DeviceID = "phone"

// Params is what the set-ups are made from.
type Params struct {
	// Base is where handhelds reach the depot's HTTP side:
	// scheme://host[:port] (see ParseBase).
	Base *url.URL
	// MQTTPort and MQTTTLS describe the MQTT-over-TCP listener, reached at
	// Base's host name. 0: no OwnTracks MQTT set-up.
	MQTTPort int
	MQTTTLS  bool
	DriverID string
	Token    string
	// PairCode, when set, is a one-time code the driver app exchanges for
	// the credential (POST /api/v1/driver/pair): its link then carries
	// the code, not the token, so the token never enters the phone's
	// browser history.
	PairCode string
}

// Set is the set-ups of one handheld, as POST /api/v1/devices answers them.
type Set struct {
	// DriverApp opens the driver web app with the credential in the URL
	// fragment, which browsers never send to a server.
	DriverApp string `json:"driverApp"`
	// OwnTracks is the inline link of OwnTracksConfig (MQTT mode).
	OwnTracks           string         `json:"ownTracks,omitempty"`
	OwnTracksConfig     *OwnTracksMQTT `json:"ownTracksConfig,omitempty"`
	OwnTracksHTTP       string         `json:"ownTracksHttp"`
	OwnTracksHTTPConfig OwnTracksHTTP  `json:"ownTracksHttpConfig"`
	// Traccar is the server URL to type into Traccar Client, and TraccarID
	// the device identifier to type with it; TraccarQR is both in one URL,
	// as the app's own QR scanner reads it.
	Traccar   string `json:"traccar"`
	TraccarID string `json:"traccarId"`
	TraccarQR string `json:"traccarQr"`
}

// OwnTracksMQTT is an OwnTracks configuration (.otrc) for MQTT mode.
type OwnTracksMQTT struct {
	Type                string `json:"_type"` // "configuration"
	Mode                int    `json:"mode"`  // OwnTracksModeMQTT
	Host                string `json:"host"`
	Port                int    `json:"port"`
	TLS                 bool   `json:"tls"`
	Auth                bool   `json:"auth"` // iOS: send username and password
	Username            string `json:"username"`
	Password            string `json:"password"`
	DeviceID            string `json:"deviceId"`
	TID                 string `json:"tid"`
	ClientID            string `json:"clientId"` // the app's default (user+device) could collide
	CleanSession        bool   `json:"cleanSession"`
	MQTTProtocolLevel   int    `json:"mqttProtocolLevel"`
	Keepalive           int    `json:"keepalive"` // within the broker's maximum of 120 s
	Cmd                 bool   `json:"cmd"`
	AllowRemoteLocation bool   `json:"allowRemoteLocation"` // iOS: answer reportLocation
	PubRetain           bool   `json:"pubRetain"`
}

// OwnTracksHTTP is an OwnTracks configuration (.otrc) for HTTP mode.
type OwnTracksHTTP struct {
	Type                string `json:"_type"` // "configuration"
	Mode                int    `json:"mode"`  // OwnTracksModeHTTP
	URL                 string `json:"url"`
	Auth                bool   `json:"auth"`
	Username            string `json:"username"`
	Password            string `json:"password"`
	DeviceID            string `json:"deviceId"`
	TID                 string `json:"tid"`
	Cmd                 bool   `json:"cmd"` // the endpoint answers with waiting commands
	AllowRemoteLocation bool   `json:"allowRemoteLocation"`
}

// ParseBase reads the public base URL of the depot: an absolute http or
// https URL with a host and nothing after it but an optional "/". It
// returns scheme://host[:port].
func ParseBase(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%.100q is not a URL", s)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%.100q: want an http:// or https:// URL", s)
	case u.Host == "" || u.Hostname() == "" || u.Opaque != "":
		return nil, fmt.Errorf("%.100q: no host", s)
	case u.User != nil:
		return nil, fmt.Errorf("%.100q: no user or password in it, please", s)
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.ForceQuery, u.Fragment != "", strings.Contains(s, "#"):
		return nil, fmt.Errorf("%.100q: want only scheme://host[:port], no path, query or fragment", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%.100q: port %q out of range", s, p)
		}
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// Make returns the set-ups of p's handheld.
func Make(p Params) (Set, error) {
	if p.Base == nil || (p.Base.Scheme != "http" && p.Base.Scheme != "https") || p.Base.Hostname() == "" {
		return Set{}, errors.New("setup: a base URL http(s)://host[:port] is needed")
	}
	if p.DriverID == "" || p.Token == "" {
		return Set{}, errors.New("setup: driver id and token are needed")
	}
	base := p.Base.Scheme + "://" + p.Base.Host
	tid := TID(p.DriverID)
	var s Set
	s.DriverApp = base + "/driver/#driver=" + url.QueryEscape(p.DriverID) + "&token=" + url.QueryEscape(p.Token)
	if p.PairCode != "" {
		s.DriverApp = base + "/driver/#pair=" + url.QueryEscape(p.PairCode)
	}
	if p.MQTTPort > 0 {
		s.OwnTracksConfig = &OwnTracksMQTT{
			Type: "configuration", Mode: OwnTracksModeMQTT,
			Host: p.Base.Hostname(), Port: p.MQTTPort, TLS: p.MQTTTLS,
			Auth: true, Username: p.DriverID, Password: p.Token,
			DeviceID: DeviceID, TID: tid, ClientID: "drv-" + p.DriverID,
			CleanSession: false, MQTTProtocolLevel: 4, Keepalive: 60,
			Cmd: true, AllowRemoteLocation: true, PubRetain: false,
		}
		s.OwnTracks = InlineLink(s.OwnTracksConfig)
	}
	s.OwnTracksHTTPConfig = OwnTracksHTTP{
		Type: "configuration", Mode: OwnTracksModeHTTP, URL: base + "/api/v1/owntracks",
		Auth: true, Username: p.DriverID, Password: p.Token, DeviceID: DeviceID, TID: tid,
		Cmd: true, AllowRemoteLocation: true,
	}
	s.OwnTracksHTTP = InlineLink(s.OwnTracksHTTPConfig)
	s.Traccar = base + "/api/v1/osmand/" + url.PathEscape(p.Token)
	s.TraccarID = p.DriverID
	s.TraccarQR = s.Traccar + "?id=" + url.QueryEscape(p.DriverID)
	return s, nil
}

// InlineLink is the owntracks:///config?inline= link of an OwnTracks
// configuration: its JSON in standard base64 (with padding),
// percent-escaped.
func InlineLink(config any) string {
	b, err := json.Marshal(config)
	if err != nil {
		panic(err) // the configuration types always marshal
	}
	return "owntracks:///config?inline=" + url.QueryEscape(base64.StdEncoding.EncodeToString(b))
}

// DecodeInlineLink returns the JSON an OwnTracks inline link carries.
func DecodeInlineLink(link string) ([]byte, error) {
	u, err := url.Parse(link)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "owntracks" || u.Path != "/config" {
		return nil, errors.New("not an owntracks:///config link")
	}
	v, ok := u.Query()["inline"]
	if !ok || len(v) != 1 {
		return nil, errors.New("no inline configuration")
	}
	return base64.StdEncoding.DecodeString(v[0])
}

// TID is the OwnTracks tracker id of a driver: the last two letters or
// digits of the driver id, upper case ("D7" → "D7", "van-12" → "12").
func TID(driverID string) string {
	var keep []byte
	for i := len(driverID) - 1; i >= 0 && len(keep) < 2; i-- {
		c := driverID[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			keep = append([]byte{c}, keep...)
		}
	}
	return strings.ToUpper(string(keep))
}

// Text is what the QR code of kind carries, or an error for an unknown
// kind or a set-up s does not have.
func (s Set) Text(kind string) (string, error) {
	var t string
	switch kind {
	case KindDriverApp:
		t = s.DriverApp
	case KindOwnTracks:
		t = s.OwnTracks
	case KindOwnTracksHTTP:
		t = s.OwnTracksHTTP
	case KindTraccar:
		t = s.TraccarQR
	default:
		return "", fmt.Errorf("unknown set-up %.32q: want %s", kind, strings.Join(Kinds, ", "))
	}
	if t == "" {
		return "", fmt.Errorf("no %s set-up", kind)
	}
	return t, nil
}

// PortOf is the port of a listen address such as "[::]:1883" (0 when
// there is none).
func PortOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return 0
	}
	return n
}
