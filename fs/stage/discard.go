package stage

// Discard drops a file that must never be committed, such as one unlinked
// while open: its staged data is removed instead of being kept for Recover.
// (Added by the fs engineer; the stage owner may fold it into file.go.)
func (f *File) Discard() error {
	f.mu.Lock()
	f.dirty = false
	f.mu.Unlock()
	return f.Close()
}
