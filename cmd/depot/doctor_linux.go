package main

import "syscall"

// kernelSynced asks the kernel (adjtimex, read only) whether the clock is
// synchronised: TIME_ERROR or STA_UNSYNC means not.
func kernelSynced() (bool, error) {
	var tx syscall.Timex
	state, err := syscall.Adjtimex(&tx)
	if err != nil {
		return false, err
	}
	const timeError, staUnsync = 5, 0x0040
	return state != timeError && tx.Status&staUnsync == 0, nil
}
