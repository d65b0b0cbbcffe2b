package blobtest

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"
)

// Require skips tb when Azurite is not installed, or fails it when
// BLOBFS_REQUIRE_AZURITE is set (as make test and CI do), so that nothing
// is silently skipped there.
func Require(tb testing.TB) {
	tb.Helper()
	if _, err := Bin(); err != nil {
		if os.Getenv("BLOBFS_REQUIRE_AZURITE") == "" {
			tb.Skip(err)
		}
		tb.Fatal(err)
	}
}

// Shared is one Azurite for a whole test binary, started on first use:
// starting one per test costs more than most tests. Each test takes its
// own container in it. Stop it from TestMain after m.Run.
type Shared struct {
	Options Options

	once sync.Once
	az   *Azurite
	err  error
}

// Get returns the shared Azurite, starting it the first time.
func (s *Shared) Get(tb testing.TB) *Azurite {
	tb.Helper()
	Require(tb)
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s.az, s.err = Start(ctx, s.Options)
	})
	if s.err != nil {
		tb.Fatal(s.err)
	}
	return s.az
}

// Stop ends the shared Azurite if it was started.
func (s *Shared) Stop() {
	if s.az != nil {
		s.az.Stop()
	}
}
