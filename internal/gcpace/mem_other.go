//go:build !linux

package gcpace

// MemTotal returns 0: the machine's memory is read on Linux only.
func MemTotal() uint64 { return 0 }
