// Package bridge joins the depot's handhelds, its route system and its dashboards (the design's
// "bridge"); the feed fetcher is its subpackage feed, and the fleet's upstream forwarder will be another.
//
// Machine (machine.go) is the depot's rules as a pure state machine:
// positions, route status and its colour rule, rescues, VTO,
// reassignments and presence, each command returning typed events. Depot
// (depot.go) runs it behind one lock in front of the commit pipeline
// (pipeline.go), which stores each batch and then publishes it. The
// package imports only the standard library: what it needs from outside
// it declares as small interfaces (Store, Publisher, RouteSource) that
// storage, broker and feed satisfy, so every rule here is tested with
// fakes and an injected clock.
package bridge
