// Package control is the mount daemon's control socket, through which
// `blobfs stats` reads its numbers and `blobfs unmount` asks it to finish
// its uploads and unmount. One unix socket per mount lives in the run
// directory (0700), named after a hash of the mountpoint so that any path
// length fits; the protocol is one JSON request line, answered by JSON
// lines.
package control

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Upload is a file whose data is not all in the container yet.
type Upload struct {
	Name     string `json:"name"`
	Size     int64  `json:"size"`
	Uploaded int64  `json:"uploaded"`
}

// Status is what the daemon reports.
type Status struct {
	Version    string    `json:"version"`
	PID        int       `json:"pid"`
	Mountpoint string    `json:"mountpoint"`
	Account    string    `json:"account"`
	Container  string    `json:"container"`
	AuthMode   string    `json:"auth_mode"`
	Since      time.Time `json:"since"`
	Uploads    []Upload  `json:"uploads"`
	// LostFound lists the staged files a previous run could not upload,
	// in LostFoundDir (see the README on restoring one).
	LostFound    []string `json:"lost_found,omitempty"`
	LostFoundDir string   `json:"lost_found_dir,omitempty"`
	Metrics      string   `json:"metrics"` // Prometheus text format
}

// Message is one answer line. Unmount answers with progress lines (Status
// set) and ends with Done.
type Message struct {
	Status *Status `json:"status,omitempty"`
	Done   bool    `json:"done,omitempty"`
	Error  string  `json:"error,omitempty"`
}

type request struct {
	Op string `json:"op"` // "stats" or "unmount"
}

// Handler is the daemon side.
type Handler interface {
	Status() Status
	// Unmount finishes pending uploads and unmounts, calling progress while
	// it waits.
	Unmount(ctx context.Context, progress func(Status)) error
}

// SocketPath is the control socket of the mount at mountpoint.
func SocketPath(runDir, mountpoint string) string {
	sum := sha256.Sum256([]byte(CleanMountpoint(mountpoint)))
	return filepath.Join(runDir, hex.EncodeToString(sum[:12])+".sock")
}

// CleanMountpoint makes a mountpoint absolute and resolves symlinks in its
// parent (not in itself: a live or stale mount may not answer a stat).
func CleanMountpoint(mp string) string {
	abs, err := filepath.Abs(mp)
	if err != nil {
		return filepath.Clean(mp)
	}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		return filepath.Join(dir, filepath.Base(abs))
	}
	return abs
}

// Server serves one mount's socket.
type Server struct {
	l    net.Listener
	path string
	busy sync.WaitGroup // requests being answered
}

// Listen creates the socket, replacing a leftover one from a dead daemon.
// It refuses when a live daemon answers there already.
func Listen(runDir, mountpoint string, h Handler) (*Server, error) {
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		return nil, fmt.Errorf("run directory: %w", err)
	}
	if err := os.Chmod(runDir, 0o700); err != nil {
		return nil, fmt.Errorf("run directory: %w", err)
	}
	path := SocketPath(runDir, mountpoint)
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another blobfs already serves %s (control socket %s)", mountpoint, path)
	}
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	s := &Server{l: l, path: path}
	go s.serve(h)
	return s, nil
}

// Close removes the socket.
func (s *Server) Close() error {
	err := s.l.Close()
	_ = os.Remove(s.path)
	return err
}

func (s *Server) serve(h Handler) {
	for {
		c, err := s.l.Accept()
		if err != nil {
			return
		}
		s.busy.Add(1)
		go func() {
			defer s.busy.Done()
			handle(c, h)
		}()
	}
}

// Drain waits, up to timeout, for the answers still being written: the
// daemon calls it before exiting so that `blobfs unmount` hears how the
// unmount it asked for ended instead of a closed socket.
func (s *Server) Drain(timeout time.Duration) {
	done := make(chan struct{})
	go func() { s.busy.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

func handle(c net.Conn, h Handler) {
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var req request
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&req); err != nil {
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	enc := json.NewEncoder(c)
	switch req.Op {
	case "stats":
		st := h.Status()
		_ = enc.Encode(Message{Status: &st, Done: true})
	case "unmount":
		// The client may give up waiting; the unmount goes on regardless,
		// so it is not tied to the connection.
		err := h.Unmount(context.Background(), func(st Status) { _ = enc.Encode(Message{Status: &st}) })
		m := Message{Done: true}
		if err != nil {
			m.Error = err.Error()
		}
		_ = enc.Encode(m)
	default:
		_ = enc.Encode(Message{Done: true, Error: fmt.Sprintf("unknown request %q", req.Op)})
	}
}

// ErrNoDaemon means nothing answers on the mount's control socket.
var ErrNoDaemon = errors.New("no blobfs daemon answers for this mountpoint")

// Call sends op to the daemon serving mountpoint and passes each answer
// line to each until Done; it returns the daemon's final error.
func Call(ctx context.Context, runDir, mountpoint, op string, each func(Message)) error {
	path := SocketPath(runDir, mountpoint)
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return fmt.Errorf("%w (%s: %v)", ErrNoDaemon, path, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if err := json.NewEncoder(c).Encode(request{Op: op}); err != nil {
		return err
	}
	dec := json.NewDecoder(bufio.NewReader(c))
	for {
		var m Message
		if err := dec.Decode(&m); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("control socket closed before the answer: %w", err)
		}
		if each != nil {
			each(m)
		}
		if m.Done {
			if m.Error != "" {
				return errors.New(m.Error)
			}
			return nil
		}
	}
}
