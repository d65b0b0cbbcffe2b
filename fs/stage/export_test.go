package stage

import (
	"context"
	"fmt"
)

// Wait blocks until no commit or upload is under way. Only tests wait so:
// the mount waits for its own commits (fs's mount.commits) at unmount.
func (m *Manager) Wait(ctx context.Context) error {
	for {
		m.mu.Lock()
		busy, ch := m.busy, m.changed
		m.mu.Unlock()
		if busy == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("stage: %d uploads still under way: %w", busy, ctx.Err())
		}
	}
}

// Hashing reports whether the file's writes are being hashed for the
// whole-blob MD5.
func (f *File) Hashing() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sum.hashing()
}
