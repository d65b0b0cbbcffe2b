// Package daemon lets `blobfs mount` return once the mount is ready. Go
// cannot fork, so the parent re-executes its own binary with the same
// arguments, a marker in the environment and the write end of a pipe; the
// child detaches (new session), does the real work and writes "ok" or the
// error text to the pipe. The parent exits 0 on "ok" and otherwise prints
// the child's error, so that a failure is never lost in a log nobody reads.
package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// EnvFD names the environment variable that marks the child and carries
// the number of its readiness fd.
const EnvFD = "BLOBFS_DAEMON_READY_FD"

const okMsg = "ok"

// Options describe the child to start.
type Options struct {
	// Args are the child's arguments, without the program name.
	Args []string
	// Output receives the child's stdout and stderr; nil means /dev/null.
	Output *os.File
	// Env is the child's environment; nil means this process's.
	Env []string
	// Progress, when set, hears each line the child sends with
	// Notifier.Progress while the parent waits (e.g. "waiting for IMDS").
	Progress func(string)
}

// ChildError is the failure the child reported, as it reported it.
type ChildError struct{ Msg string }

func (e *ChildError) Error() string { return e.Msg }

// Spawn starts the child and waits until it reports. It returns the
// child's pid once the child says it is ready, or the child's error.
func Spawn(ctx context.Context, o Options) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		exe = "/proc/self/exe"
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	cmd := exec.Command(exe, o.Args...)
	// argv[0] stays the binary's path: as mount.fuse.blobfs the child
	// would take itself for the mount helper again.
	env := o.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(env, EnvFD+"=3") // ExtraFiles[0] is fd 3
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if o.Output != nil {
		cmd.Stdout, cmd.Stderr = o.Output, o.Output
	}
	if err := cmd.Start(); err != nil {
		w.Close()
		return 0, fmt.Errorf("starting the background process: %w", err)
	}
	w.Close() // only the child holds the write end now: EOF means it is done or dead

	type result struct {
		msg string
		err error
	}
	done := make(chan result, 1)
	go func() {
		// Progress lines come first, one per line; whatever follows the
		// last of them is the verdict ("ok" or the error).
		br := bufio.NewReader(io.LimitReader(r, 1<<20))
		var verdict strings.Builder
		for {
			line, err := br.ReadString('\n')
			if msg, ok := strings.CutPrefix(line, progressPrefix); ok && verdict.Len() == 0 {
				if o.Progress != nil {
					o.Progress(strings.TrimSpace(msg))
				}
			} else {
				verdict.WriteString(line)
			}
			if err != nil {
				if err == io.EOF {
					err = nil
				}
				done <- result{strings.TrimSpace(verdict.String()), err}
				return
			}
		}
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return 0, fmt.Errorf("the background process did not get ready: %w", ctx.Err())
	}
	switch {
	case res.msg == okMsg:
		pid := cmd.Process.Pid
		_ = cmd.Process.Release()
		return pid, nil
	case res.msg != "":
		_ = cmd.Wait()
		return 0, &ChildError{Msg: res.msg}
	}
	// The child closed the pipe without a word: it crashed or was killed.
	werr := cmd.Wait()
	if werr == nil {
		return 0, errors.New("the background process exited before the mount was ready, without saying why")
	}
	return 0, fmt.Errorf("the background process died before the mount was ready (%v)", werr)
}

// progressPrefix marks a progress line, which is not the verdict.
const progressPrefix = "\x00progress "

// Notifier is the child's end of the pipe. Its methods may be called from
// several goroutines: progress comes from the auth retry loop.
type Notifier struct {
	mu sync.Mutex
	f  *os.File
}

// Child reports whether this process is a daemon child, and if so returns
// its notifier. It clears the marker from the environment so that nothing
// this process starts mistakes itself for a child.
func Child() (*Notifier, bool) {
	v := os.Getenv(EnvFD)
	if v == "" {
		return nil, false
	}
	os.Unsetenv(EnvFD)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, false
	}
	syscall.CloseOnExec(fd) // fusermount and friends must not hold it open
	return &Notifier{f: os.NewFile(uintptr(fd), "ready")}, true
}

// Ready tells the parent the mount is up.
func (n *Notifier) Ready() { n.send(okMsg) }

// Fail tells the parent why the mount failed.
func (n *Notifier) Fail(err error) {
	msg := strings.TrimSpace(err.Error())
	if msg == okMsg || msg == "" {
		msg = "failed: " + msg
	}
	n.send(msg)
}

// Progress tells the waiting parent what the child is waiting for; the
// parent shows it to the user. Newlines in msg are flattened.
func (n *Notifier) Progress(msg string) {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.f == nil {
		return
	}
	msg = strings.Join(strings.Fields(msg), " ")
	_, _ = io.WriteString(n.f, progressPrefix+msg+"\n")
}

func (n *Notifier) send(msg string) {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.f == nil {
		return
	}
	_, _ = io.WriteString(n.f, msg+"\n")
	n.f.Close()
	n.f = nil
}
