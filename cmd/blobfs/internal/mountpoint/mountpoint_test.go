package mountpoint

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
)

// With BLOBFS_MOUNTPOINT_TEST_MP set, the test binary mounts an empty
// go-fuse filesystem there, says "ready" and serves until killed: the
// daemon whose death leaves a stale mount behind.
func TestMain(m *testing.M) {
	if mp := os.Getenv("BLOBFS_MOUNTPOINT_TEST_MP"); mp != "" {
		srv, err := gofs.Mount(mp, &gofs.Inode{}, &gofs.Options{})
		if err != nil {
			os.Stdout.WriteString("error " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString("ready\n")
		srv.Wait()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestStaleMountIsDetected(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	mp := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BLOBFS_MOUNTPOINT_TEST_MP="+mp)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = Detach(context.Background(), mp)
	})
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("helper: %q", line)
	}
	if st, err := Inspect(mp); err != nil || st != Mounted {
		t.Fatalf("live mount: %v, %v", st, err)
	}
	if typ, ok := MountType(mp); !ok || typ[:4] != "fuse" {
		t.Errorf("MountType = %q, %v", typ, ok)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	st, err := Inspect(mp)
	for st != Stale && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		st, err = Inspect(mp)
	}
	if err != nil || st != Stale {
		t.Fatalf("after the daemon died: %v, %v; want stale", st, err)
	}
	if err := Detach(context.Background(), mp); err != nil {
		t.Fatal(err)
	}
	if st, err := Inspect(mp); err != nil || st != Ready {
		t.Errorf("after Detach: %v, %v; want ready", st, err)
	}
}

func TestInspect(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	tests := []struct {
		path string
		want State
	}{
		{dir, Ready},
		{filepath.Join(dir, "nope"), Missing},
		{file, NotDir},
	}
	for _, tt := range tests {
		if got, err := Inspect(tt.path); err != nil || got != tt.want {
			t.Errorf("Inspect(%s) = %v, %v; want %v", tt.path, got, err, tt.want)
		}
	}
}

func TestFuseConf(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		body string
		want bool
	}{
		{"#user_allow_other\n", false},
		{"mount_max = 10\n  user_allow_other  \n", true},
		{"", false},
	}
	for _, tt := range tests {
		p := filepath.Join(dir, "fuse.conf")
		os.WriteFile(p, []byte(tt.body), 0o644)
		if got := UserAllowOther(p); got != tt.want {
			t.Errorf("UserAllowOther(%q) = %v", tt.body, got)
		}
	}
}
