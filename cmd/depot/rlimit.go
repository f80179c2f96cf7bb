package main

import (
	"log/slog"
	"syscall"
)

// Headroom kept out of the connection caps, in file descriptors: the
// store's segment files, backups, the feed, log and metrics files.
const fdReserve = 128

// raiseFileLimit lifts the soft limit on open files to the hard one and
// returns the limit in force. Every MQTT and HTTP connection is a file
// descriptor; at the common soft default of 1,024 a few hundred slow
// clients would exhaust it.
func raiseFileLimit(log *slog.Logger) uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		log.Warn("open files limit unknown", "err", err)
		return 1024
	}
	was := l.Cur
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			log.Warn("could not raise the open files limit", "soft", was, "hard", l.Max, "err", err)
			l.Cur = was
		}
	}
	log.Info("open files limit", "was", was, "now", l.Cur, "hard", l.Max)
	return l.Cur
}

// connCaps splits a file descriptor limit between MQTT clients and HTTP
// connections (WebSocket dashboards count in both), keeping fdReserve for
// the rest, so that the process meets its own caps before the kernel's.
func connCaps(limit uint64) (mqtt, http int) {
	avail := int64(limit) - fdReserve
	m := min(20000, avail*3/4)
	h := min(10000, avail-m)
	return int(max(m, 16)), int(max(h, 16))
}
