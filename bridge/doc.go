// Package bridge joins the depot's handhelds, its route system and its
// dashboards: the domain's rules, the event log and the commit pipeline.
//
// It holds driver positions, route status and its colour rule, rescues,
// VTO, reassignments and presence, the deltas and event envelopes
// dashboards read, and judges the route feed's documents; fetching the feed
// and the demo simulation live in the subpackage feed. It imports only the
// standard library: what it needs from the outside world it declares as
// small interfaces (Store, Publisher, RouteSource) that storage, broker and
// feed satisfy, so every rule here is tested with fakes and an injected
// clock.
package bridge
