package gcpace

import "syscall"

// MemTotal returns the machine's memory in bytes, or 0 when unknown. It
// asks sysinfo(2), not /proc/meminfo, which the unit's ProcSubset=pid hides.
func MemTotal() uint64 {
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		return 0
	}
	return memBytes(uint64(si.Totalram), uint64(si.Unit))
}
