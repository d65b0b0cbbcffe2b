package daemon

import (
	"context"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"os"
	"strings"
	"testing"
	"time"
)

// The test binary plays the child when started with a mode in
// BLOBFS_DAEMON_TEST.
func TestMain(m *testing.M) {
	if mode := os.Getenv("BLOBFS_DAEMON_TEST"); mode != "" {
		n, ok := Child()
		if !ok {
			fmt.Fprintln(os.Stderr, "not a child")
			os.Exit(3)
		}
		if os.Getenv(EnvFD) != "" {
			os.Exit(4) // the marker must not leak to grandchildren
		}
		switch mode {
		case "ready":
			if sid, _ := unix.Getsid(0); sid != os.Getpid() {
				n.Fail(fmt.Errorf("not a session leader"))
				os.Exit(1)
			}
			n.Ready()
			time.Sleep(200 * time.Millisecond) // keeps running after readiness
			os.Exit(0)
		case "fail":
			n.Fail(errors.New("container \"x\" does not exist: create it or check --container"))
			os.Exit(1)
		case "progress":
			n.Progress("waiting for IMDS at http://127.0.0.1:1\n(connection refused)")
			n.Progress("still waiting")
			n.Fail(errors.New("IMDS kept refusing\nsecond line of the error"))
			n.Progress("after the verdict: never sent")
			os.Exit(1)
		case "crash":
			os.Exit(7)
		case "hang":
			time.Sleep(time.Minute)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestSpawn(t *testing.T) {
	tests := []struct {
		mode    string
		wantErr string
		child   bool // the error is the child's own message
	}{
		{"ready", "", false},
		{"fail", `container "x" does not exist`, true},
		{"crash", "exit status 7", false},
		{"hang", "did not get ready", false},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if tt.mode == "hang" {
				ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
			}
			defer cancel()
			pid, err := Spawn(ctx, Options{
				Args: []string{"-test.run=^$"},
				Env:  append(os.Environ(), "BLOBFS_DAEMON_TEST="+tt.mode),
			})
			if tt.wantErr == "" {
				if err != nil || pid <= 0 {
					t.Fatalf("pid %d, err %v", pid, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			var ce *ChildError
			if errors.As(err, &ce) != tt.child {
				t.Errorf("ChildError: %v, want %v", errors.As(err, &ce), tt.child)
			}
		})
	}
}

// Progress lines reach the parent's callback as they come, each on one
// line, and do not mix with the verdict, which may span lines.
func TestSpawnProgress(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got []string
	_, err := Spawn(ctx, Options{
		Args:     []string{"-test.run=^$"},
		Env:      append(os.Environ(), "BLOBFS_DAEMON_TEST=progress"),
		Progress: func(msg string) { got = append(got, msg) },
	})
	want := []string{"waiting for IMDS at http://127.0.0.1:1 (connection refused)", "still waiting"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("progress %q, want %q", got, want)
	}
	var ce *ChildError
	if !errors.As(err, &ce) || ce.Msg != "IMDS kept refusing\nsecond line of the error" {
		t.Errorf("verdict %v, want the child's two-line error", err)
	}
}
