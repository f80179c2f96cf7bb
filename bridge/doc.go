// Package bridge is the domain of the depot appliance: driver positions, route
// status and its colour rule, the deltas and event envelopes dashboards read,
// the route-data feed (Cortex) and its demo simulation.
//
// It imports only the standard library. What it needs from the outside world
// it declares as small interfaces (Store, Publisher) that storage and broker
// satisfy, so every rule here is tested with fakes and an injected clock.
package bridge
