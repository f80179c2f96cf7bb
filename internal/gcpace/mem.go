package gcpace

import "math"

// memBytes is total × unit (sysinfo's memory unit, 0 meaning 1), or 0 if
// that overflows.
func memBytes(total, unit uint64) uint64 {
	if unit == 0 {
		unit = 1
	}
	if total > math.MaxUint64/unit {
		return 0
	}
	return total * unit
}
