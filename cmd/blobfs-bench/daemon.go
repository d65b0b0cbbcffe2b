package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// daemon is a blobfs mount running in the foreground as our child, so that
// its PID is known and its CPU and peak RSS can be read from /proc.
type daemon struct {
	cmd    *exec.Cmd
	mp     string
	log    string
	exited chan struct{}
	err    error // the child's exit, valid once exited is closed
}

// mountBlobfs mounts the world's container at its mountpoint with the
// binary at bin and blobfs's defaults for everything that tunes it.
func mountBlobfs(ctx context.Context, bin string, w *world, n int, extra []string) (*daemon, error) {
	mp := w.mountpoint()
	d := &daemon{mp: mp, log: filepath.Join(w.dir, fmt.Sprintf("blobfs-%d.log", n)), exited: make(chan struct{})}
	d.cmd = exec.Command(bin, "mount", mp,
		"--account", w.az.Account(), "--container", containerName,
		"--foreground",
		"--cache-dir", filepath.Join(w.dir, "cache"),
		"--log-file", d.log,
	)
	d.cmd.Args = append(d.cmd.Args, extra...)
	d.cmd.Env = w.env()
	// Its own process group, so that a Ctrl-C meant for the harness does
	// not reach blobfs before the harness has unmounted it.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	out, err := os.OpenFile(d.log+".stderr", os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	d.cmd.Stdout, d.cmd.Stderr = out, out
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.exited)
	}()
	deadline := time.NewTimer(2 * time.Minute)
	defer deadline.Stop()
	for {
		if isFUSEMount(mp) {
			return d, nil
		}
		select {
		case <-d.exited:
			return nil, fmt.Errorf("blobfs exited before mounting (%v): %s", d.err, d.tail())
		case <-deadline.C:
			d.stop()
			return nil, fmt.Errorf("blobfs did not mount %s within 2 minutes: %s", mp, d.tail())
		case <-ctx.Done():
			d.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

// alive reports an early exit of the daemon as an error.
func (d *daemon) alive() error {
	select {
	case <-d.exited:
		return fmt.Errorf("blobfs exited (%v): %s", d.err, d.tail())
	default:
		return nil
	}
}

// stop unmounts the way an administrator would, with SIGTERM (blobfs
// finishes pending uploads, then unmounts), and makes sure nothing is left
// behind if it does not.
func (d *daemon) stop() error {
	select {
	case <-d.exited:
	default:
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(3 * time.Minute):
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
	}
	if isFUSEMount(d.mp) {
		// A killed daemon leaves a dead mount behind: detach it lazily.
		_ = exec.Command("fusermount3", "-u", "-z", d.mp).Run()
		if isFUSEMount(d.mp) {
			_ = syscall.Unmount(d.mp, syscall.MNT_DETACH)
		}
		return errors.New("blobfs left its mount behind")
	}
	var ee *exec.ExitError
	if d.err != nil && !(errors.As(d.err, &ee) && ee.ExitCode() == 0) {
		return fmt.Errorf("blobfs exited with %v: %s", d.err, d.tail())
	}
	return nil
}

// tail is the end of the daemon's log, for error messages. blobfs never
// logs secrets, so it can be shown.
func (d *daemon) tail() string {
	var lines []string
	for _, f := range []string{d.log + ".stderr", d.log} {
		b, _ := os.ReadFile(f)
		lines = append(lines, strings.Split(strings.TrimSpace(string(b)), "\n")...)
	}
	if len(lines) > 12 {
		lines = lines[len(lines)-12:]
	}
	return strings.Join(lines, "\n")
}

// isFUSEMount reports whether path is the mountpoint of a FUSE file system
// in our mount namespace.
func isFUSEMount(path string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL…] - FSTYPE SOURCE SUPER
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 || unescapeMountinfo(fields[4]) != path {
			continue
		}
		for i := 6; i < len(fields)-1; i++ {
			if fields[i] == "-" {
				return strings.HasPrefix(fields[i+1], "fuse")
			}
		}
	}
	return false
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of
// /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
