//go:build depothooks

package main

// Test hooks of a binary built with -tags depothooks, for tests that run
// the real binary (TestSystemdNotify). Never part of a release build: the
// Makefile and packaging build without the tag.

import (
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/depotcc/depot/bridge"
)

func init() {
	testHooks = func(m *Main) {
		hs := &hangStore{}
		m.faults.wrapStore = func(s bridge.Store) bridge.Store { hs.Store = s; return hs }
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGUSR2)
		// Each SIGUSR2 hangs the store's commits, or lets them go on.
		go func() {
			for range sig {
				if hs.toggle() {
					m.Log.Warn("test hook: commits hang")
				} else {
					m.Log.Warn("test hook: commits go on")
				}
			}
		}()
	}
}

// hangStore blocks every commit while hung.
type hangStore struct {
	bridge.Store
	mu      sync.Mutex
	release chan struct{} // nil: not hung
}

// toggle hangs the commits or releases them; it says whether they hang now.
func (s *hangStore) toggle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.release == nil {
		s.release = make(chan struct{})
		return true
	}
	close(s.release)
	s.release = nil
	return false
}

func (s *hangStore) Commit(b *bridge.Batch) error {
	s.mu.Lock()
	r := s.release
	s.mu.Unlock()
	if r != nil {
		<-r
	}
	return s.Store.Commit(b)
}
