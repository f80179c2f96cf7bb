//go:build race

package storage

// raceOn: the race detector slows the randomized tests ~5×; they run
// fewer seeds under it (make test), all of them in a plain go test.
const raceOn = true
