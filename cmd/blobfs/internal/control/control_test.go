package control

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

type fakeMount struct {
	pending []Upload
	err     error
}

func (f *fakeMount) Status() Status {
	return Status{Mountpoint: "/mnt/x", Uploads: f.pending, Metrics: "# TYPE a gauge\na 1\n"}
}

func (f *fakeMount) Unmount(ctx context.Context, progress func(Status)) error {
	for len(f.pending) > 0 {
		progress(f.Status())
		f.pending = f.pending[1:]
	}
	return f.err
}

func TestStatsAndUnmount(t *testing.T) {
	tests := []struct {
		name     string
		pending  []Upload
		err      error
		progress int
	}{
		{"nothing pending", nil, nil, 0},
		{"two pending", []Upload{{Name: "a", Size: 10, Uploaded: 4}, {Name: "b", Size: 1}}, nil, 2},
		{"unmount fails", nil, errors.New("device busy"), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			h := &fakeMount{pending: tt.pending, err: tt.err}
			s, err := Listen(dir, "/mnt/x", h)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := Listen(dir, "/mnt/x", h); err == nil {
				t.Error("a second daemon could listen on the same mountpoint")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var st *Status
			if err := Call(ctx, dir, "/mnt/x/", "stats", func(m Message) { st = m.Status }); err != nil {
				t.Fatal(err)
			}
			if st == nil || len(st.Uploads) != len(tt.pending) || !strings.Contains(st.Metrics, "a 1") {
				t.Fatalf("stats %+v", st)
			}
			n := 0
			err = Call(ctx, dir, "/mnt/x", "unmount", func(m Message) {
				if !m.Done {
					n++
				}
			})
			if (err == nil) != (tt.err == nil) || n != tt.progress {
				t.Errorf("unmount: err %v, %d progress lines; want err %v, %d", err, n, tt.err, tt.progress)
			}
		})
	}
}

func TestNoDaemon(t *testing.T) {
	err := Call(context.Background(), t.TempDir(), "/mnt/none", "stats", nil)
	if !errors.Is(err, ErrNoDaemon) {
		t.Errorf("err = %v, want ErrNoDaemon", err)
	}
}

func TestSocketPathFitsAnyMountpoint(t *testing.T) {
	long := "/" + strings.Repeat("very-long-directory-name/", 20) + "mnt"
	p := SocketPath("/run/blobfs", long)
	if len(p) > 100 {
		t.Errorf("socket path %d bytes long: unix sockets take at most 107", len(p))
	}
	if SocketPath("/run/blobfs", "/mnt/a") == SocketPath("/run/blobfs", "/mnt/b") {
		t.Error("two mountpoints share a socket")
	}
}
