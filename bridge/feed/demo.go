package feed

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/depotcc/depot/bridge"
)

// Demo simulates one depot day: routes around a depot whose stops and
// packages progress with time, drivers moving along loops, a few routes
// drifting behind and at least one crossing RescueThreshold within the
// first 15 minutes. It is a pure function of time (and its seed), so the
// feed and the simulated handhelds agree, and tests step it with a clock.
type Demo struct {
	Start    time.Time
	Lat, Lng float64          // the depot
	Now      func() time.Time // for Fetch; time.Now when nil
	routes   []demoRoute
}

type demoRoute struct {
	id, code, driver, name string
	tier                   bridge.Tier
	total, pkgs            int
	done0                  float64 // stops completed at Start
	behind0                float64 // stops behind at Start
	plan, rate             float64 // planned and actual stops per hour
	loop                   [][2]float64
}

// Demo locations: Sacramento, as in the design's examples.
const (
	DemoLat = 38.5816
	DemoLng = -121.4944
)

var demoNames = []string{"Ana Silva", "Ben Okafor", "Carla Mendes", "Dev Patel", "Eli Novak",
	"Fatima Zahra", "Gus Larsen", "Hana Sato", "Ivan Petrov", "Jade Wong", "Kofi Mensah",
	"Lena Fischer", "Marco Rossi", "Nia Brooks", "Omar Haddad", "Priya Nair", "Quinn Dubois",
	"Rosa Ortiz", "Sam Kowalski", "Tara Byrne", "Umar Siddiqui", "Vera Lindqvist", "Wes Harper",
	"Xin Li", "Yusuf Demir", "Zoe Laurent", "Aiden Walsh", "Bea Castro", "Cyrus Farahani",
	"Dina Ivanova", "Emeka Eze", "Freya Holm", "Goran Marić", "Hugo Blanc", "Iris Tan"}

// NewDemo builds a demo of n routes (clamped to 1–35) starting at start.
// Routes are R1…Rn driven by D1…Dn.
func NewDemo(start time.Time, n int, seed uint64) *Demo {
	n = max(1, min(n, len(demoNames)))
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	d := &Demo{Start: start, Lat: DemoLat, Lng: DemoLng}
	for i := range n {
		r := demoRoute{
			id: fmt.Sprintf("R%d", i+1), code: fmt.Sprintf("CX%02d", i+1),
			driver: fmt.Sprintf("D%d", i+1), name: demoNames[i],
			total: 140 + rng.IntN(60), plan: 20 + rng.Float64()*4,
		}
		r.pkgs = r.total + r.total/3 + rng.IntN(r.total/3)
		r.done0 = float64(r.total) * (0.2 + rng.Float64()*0.35)
		switch {
		case i == 6: // crosses 6 behind about a minute in: the demo shows a rescue at once
			r.tier, r.behind0, r.rate = bridge.TierStruggling, 5.8, r.plan-12
		case i == 18: // crosses 6 behind ~12 minutes in
			r.tier, r.behind0, r.rate = bridge.TierAverage, 4.5, r.plan-8
		case i%7 == 3: // drifting into YELLOW
			r.tier, r.behind0, r.rate = bridge.TierAverage, 1.5+rng.Float64(), r.plan*0.85
		case i%5 == 0:
			r.tier, r.behind0, r.rate = bridge.TierTop, 0, r.plan*(1.05+rng.Float64()*0.1)
		default:
			r.tier, r.behind0, r.rate = bridge.TierAverage, rng.Float64()*1.5, r.plan*(0.97+rng.Float64()*0.06)
		}
		// A loop of 8 points around a centre 2–12 km from the depot.
		ang := rng.Float64() * 2 * math.Pi
		dist := 2 + rng.Float64()*10
		cLat := d.Lat + dist/111*math.Cos(ang)
		cLng := d.Lng + dist/(111*math.Cos(d.Lat*math.Pi/180))*math.Sin(ang)
		for k := range 8 {
			a := float64(k) / 8 * 2 * math.Pi
			rad := (1 + rng.Float64()*2) / 111
			r.loop = append(r.loop, [2]float64{cLat + rad*math.Cos(a), cLng + rad*math.Sin(a)/math.Cos(d.Lat*math.Pi/180)})
		}
		d.routes = append(d.routes, r)
	}
	return d
}

func (d *Demo) String() string { return "demo" }

// Fetch implements RouteSource.
func (d *Demo) Fetch(ctx context.Context) ([]bridge.RouteSnapshot, error) {
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	return d.Snapshots(now()), nil
}

// demoLaps is how many times a driver goes round its loop in a whole route,
// chosen so that drivers move at a van's urban pace.
const demoLaps = 10

func (r *demoRoute) at(h float64) (done, behind float64) {
	done = min(float64(r.total), r.done0+r.rate*max(h, 0))
	planned := min(float64(r.total), r.done0+r.behind0+r.plan*max(h, 0))
	return done, max(0, planned-done)
}

func (r *demoRoute) position(done float64) (float64, float64) {
	f := done / float64(r.total) * demoLaps
	f -= math.Floor(f)
	x := f * float64(len(r.loop))
	k := int(x) % len(r.loop)
	a, b := r.loop[k], r.loop[(k+1)%len(r.loop)]
	t := x - math.Floor(x)
	return a[0] + (b[0]-a[0])*t, a[1] + (b[1]-a[1])*t
}

// Snapshots returns the feed as it stands at t.
func (d *Demo) Snapshots(t time.Time) []bridge.RouteSnapshot {
	h := t.Sub(d.Start).Hours()
	out := make([]bridge.RouteSnapshot, 0, len(d.routes))
	for i := range d.routes {
		r := &d.routes[i]
		done, behind := r.at(h)
		stops := int(done)
		lat, lng := r.position(float64(stops))
		out = append(out, bridge.RouteSnapshot{
			RouteID: r.id, RouteCode: r.code, DriverID: r.driver, DriverName: r.name,
			PerformanceTier: r.tier, TotalStops: r.total, CompletedStops: stops,
			TotalPackages: r.pkgs, CompletedPackages: stops * r.pkgs / r.total,
			BehindSchedule: int(behind), CurrentLat: round6(lat), CurrentLng: round6(lng),
			LastUpdated: t.UTC().Truncate(time.Second),
		})
	}
	return out
}

// Drivers returns the ids of the demo's drivers.
func (d *Demo) Drivers() []string {
	out := make([]string, len(d.routes))
	for i, r := range d.routes {
		out[i] = r.driver
	}
	return out
}

// Position is where driver is at t, moving smoothly between stops; ok is
// false for a driver the demo does not have.
func (d *Demo) Position(driver string, t time.Time) (lat, lng float64, ok bool) {
	for i := range d.routes {
		if r := &d.routes[i]; r.driver == driver {
			done, _ := r.at(t.Sub(d.Start).Hours())
			lat, lng = r.position(done)
			return round6(lat), round6(lng), true
		}
	}
	return 0, 0, false
}

func round6(x float64) float64 { return math.Round(x*1e6) / 1e6 }
