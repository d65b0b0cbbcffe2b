package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/blobfs/blobfs/auth"
	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/cmd/blobfs/internal/config"
)

// What a person at the terminal hears while blobfs waits, and the causes
// named when it gives up. A mount that waits silently for minutes and then
// names the wrong cause costs more time than one that fails at once.

// waitNotice is how long a wait may last before it is announced.
const waitNotice = 3 * time.Second

// waitReporter turns auth's retry pauses into lines for say: the first
// at the first pause that may be followed by more than waitNotice of
// retrying, then at most one every 15 s.
func waitReporter(say func(string)) func(auth.Wait) {
	var mu sync.Mutex
	var last time.Time
	return func(w auth.Wait) {
		if time.Until(w.Until) < waitNotice {
			return // the whole wait is short: not worth a line
		}
		mu.Lock()
		defer mu.Unlock()
		if !last.IsZero() && time.Since(last) < 15*time.Second {
			return
		}
		last = time.Now()
		why := fmt.Sprintf("it answered %d", w.Status)
		if w.Err != nil {
			why = netCause(w.Err)
		}
		say(fmt.Sprintf("waiting for %s at %s (%s); retrying until %s (--auth-wait; 0 means no retries)",
			w.Step, w.Endpoint, why, w.Until.Format("15:04:05")))
	}
}

// netCause names a failure to get an answer in a few words.
func netCause(err error) string {
	var dns *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused: nothing listens there"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to the host"
	case errors.As(err, &dns):
		return "the name does not resolve: " + dns.Name
	case errors.Is(err, blob.ErrStalled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "no answer in time"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "no answer in time"
	}
	return err.Error()
}

// firstContactBudget is how long the first request to storage is retried
// before blobfs says what it waits for; a refused connection is not
// retried beyond it, since on first contact it means a wrong host or port.
const firstContactBudget = 3 * time.Second

// contactContainer checks the container, the first request to storage.
// A quick probe tells a wrong endpoint (refused, or an emulator URL
// without the account path) at once; other failures to reach the service
// are announced with say and retried with ct's own retry policy.
func contactContainer(ctx context.Context, ct *blob.Container, cred blob.Credential, s *config.Settings,
	lg logrus.FieldLogger, say func(string)) error {
	quick, err := blob.NewClient(s.BlobEndpoint, cred, blob.Options{Log: lg, Retry: blob.RetryPolicy{
		Budget: firstContactBudget, MaxAttempts: 5, AttemptTimeout: 10 * time.Second,
	}})
	if err != nil {
		return fmt.Errorf("--blob-endpoint: %w", err)
	}
	err = quick.Container(ct.Name()).Check(ctx)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot reach the blob endpoint %s: connection refused, nothing listens there: check the host and port of --blob-endpoint (%w)", s.BlobEndpoint, err)
	case errors.Is(err, blob.ErrUnavailable) && ctx.Err() == nil:
		until := time.Now().Add(s.RetryBudget.D())
		say(fmt.Sprintf("waiting for the blob endpoint %s (%s); retrying until %s (--retry-budget)",
			s.BlobEndpoint, netCause(err), until.Format("15:04:05")))
		err = ct.Check(ctx)
	}
	return explainEndpoint(s.BlobEndpoint, s.Account, err)
}

// explainEndpoint adds the likely cause to a 400 from an emulator endpoint
// given without the account in its path: Azurite then takes the container
// for the account and answers 400 with no body, which says nothing.
func explainEndpoint(endpoint, account string, err error) error {
	var se *blob.StorageError
	if !errors.As(err, &se) || se.Status != 400 {
		return err
	}
	u, perr := url.Parse(endpoint)
	if perr != nil || strings.Trim(u.Path, "/") != "" || !isLocalHost(u.Hostname()) {
		return err
	}
	if account == "" {
		account = "devstoreaccount1"
	}
	return fmt.Errorf("the blob endpoint %s answered 400 Bad Request: it has no account in its path, which Azurite and other emulators need: use --blob-endpoint %s/%s (%w)",
		endpoint, strings.TrimRight(endpoint, "/"), account, err)
}

func isLocalHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && (ip.IsLoopback() || ip.IsPrivate())
}

// fuseDeviceProblem says why this user cannot open /dev/fuse, with the
// fix, or "" when it can. fusermount3 opens the device as the calling
// user, so an unreadable device fails the mount with only an exit code.
func fuseDeviceProblem() (detail, fix string) {
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err == nil {
		f.Close()
		return "", ""
	}
	switch {
	case errors.Is(err, os.ErrPermission):
		return fmt.Sprintf("%v (uid %d)", err, os.Geteuid()),
			"ask root to let this user use FUSE: chmod 0666 /dev/fuse (its usual mode; a udev rule keeps it), or add the user to the group owning /dev/fuse; or mount as root"
	case errors.Is(err, os.ErrNotExist):
		return err.Error(), "load the fuse module (modprobe fuse) or, in a container, pass --device /dev/fuse --cap-add SYS_ADMIN"
	}
	return err.Error(), "in a container, pass --device /dev/fuse --cap-add SYS_ADMIN"
}

// captureStderr sends what is written to fd 2 (by this process and by the
// children it starts, fusermount3 among them) to the original stderr and
// to a buffer as well, until the returned function is called; that
// function returns the buffer's text, trimmed. If fd 2 cannot be
// redirected, nothing is captured.
func captureStderr() func() string {
	saved, err := unix.Dup(2)
	if err != nil {
		return func() string { return "" }
	}
	r, w, err := os.Pipe()
	if err != nil {
		unix.Close(saved)
		return func() string { return "" }
	}
	if err := unix.Dup3(int(w.Fd()), 2, 0); err != nil {
		r.Close()
		w.Close()
		unix.Close(saved)
		return func() string { return "" }
	}
	var buf strings.Builder
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 4096)
		for {
			n, err := r.Read(b)
			if n > 0 {
				_, _ = unix.Write(saved, b[:n])
				if buf.Len() < 16<<10 {
					buf.Write(b[:n])
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return func() string {
		_ = unix.Dup3(saved, 2, 0)
		w.Close()
		// A child still holding the pipe (none should) must not hang us.
		select {
		case <-done:
		case <-time.After(time.Second):
			r.Close() // ends the copy; the buffer stays the goroutine's
			return ""
		}
		r.Close()
		unix.Close(saved)
		return strings.TrimSpace(buf.String())
	}
}

// fusermountLines keeps what fusermount3 wrote ("fusermount3: ...",
// "fuse: ...") out of everything captured on stderr, which in the
// foreground may include log lines.
func fusermountLines(captured string) string {
	var keep []string
	for _, l := range strings.Split(captured, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "fusermount") || strings.HasPrefix(l, "fuse:") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "; ")
}

// recoveryHook hears fs.Mount's log line for each upload it finished on
// behalf of a previous run, and tells the user, who otherwise would find
// it only in the log. It is a hook because fs reports recoveries only to
// the log.
type recoveryHook struct {
	say    func(string)
	active atomic.Bool
}

// recoveredMsg is fs.Mount's message for a recovered upload; the lost+found
// case is reported from the directory instead (see lostFound).
const recoveredMsg = "recovered a staged upload from a previous run"

func (h *recoveryHook) Levels() []logrus.Level { return []logrus.Level{logrus.InfoLevel} }

func (h *recoveryHook) Fire(e *logrus.Entry) error {
	if !h.active.Load() || e.Message != recoveredMsg {
		return nil
	}
	name, _ := e.Data["blob"].(string)
	saved, _ := e.Data["saved_as"].(string)
	msg := fmt.Sprintf("finished uploading %q (%v bytes), which the previous blobfs was committing when it stopped", name, e.Data["size"])
	if saved != "" && saved != name {
		msg += fmt.Sprintf("; the blob had changed meanwhile, so this version is %q", saved)
	}
	h.say(msg)
	return nil
}
