// Package logs sets up blobfs's logrus logger: level, text or JSON, and
// where it goes (stderr, a file reopened on SIGHUP for logrotate, or
// syslog, which journald collects).
package logs

import (
	"fmt"
	"io"
	"log/syslog"
	"os"
	"sync"

	"github.com/sirupsen/logrus"
	lsyslog "github.com/sirupsen/logrus/hooks/syslog"
	"golang.org/x/sys/unix"
)

// Targets other than a file path.
const (
	Stderr = "stderr"
	Syslog = "syslog"
)

// Logger is a logrus logger that knows how to reopen its file.
type Logger struct {
	*logrus.Logger

	mu     sync.Mutex
	path   string   // "" unless logging to a file
	file   *os.File // the open log file
	stdio  bool     // also point fds 1 and 2 at the file (daemon), so panics land there
	closer io.Closer
}

// Options say how to log.
type Options struct {
	Level  string // debug, info, warn, error
	Format string // text or json
	Target string // "", "stderr", "syslog" or a file path
	// Stdio makes fds 1 and 2 follow the log file, so that a daemon's
	// panics and anything written to stderr end up in it too.
	Stdio bool
}

// New makes the logger. A file target is created 0640 if missing.
func New(o Options) (*Logger, error) {
	l := &Logger{Logger: logrus.New(), stdio: o.Stdio}
	lvl, err := logrus.ParseLevel(o.Level)
	if err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", o.Level)
	}
	l.SetLevel(lvl)
	switch o.Format {
	case "", "text":
		l.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, DisableColors: o.Target != "" && o.Target != Stderr})
	case "json":
		l.SetFormatter(&logrus.JSONFormatter{})
	default:
		return nil, fmt.Errorf("--log-format %q: use text or json", o.Format)
	}
	switch o.Target {
	case "", Stderr:
		l.SetOutput(os.Stderr)
	case Syslog:
		w, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, "blobfs")
		if err != nil {
			return nil, fmt.Errorf("--log-file syslog: no syslog or journald socket (%v): pass --log-file PATH instead", err)
		}
		l.closer = w
		l.SetOutput(io.Discard)
		l.AddHook(&lsyslog.SyslogHook{Writer: w})
	default:
		l.path = o.Target
		if err := l.Reopen(); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// SyslogAvailable reports whether a local syslog (or journald's) socket
// accepts connections.
func SyslogAvailable() bool {
	w, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, "blobfs")
	if err != nil {
		return false
	}
	w.Close()
	return true
}

// Reopen opens the log file again, for logrotate's SIGHUP. It is a no-op
// for other targets.
func (l *Logger) Reopen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.path == "" {
		return nil
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	if l.stdio {
		for _, fd := range []int{1, 2} {
			if err := unix.Dup2(int(f.Fd()), fd); err != nil {
				f.Close()
				return fmt.Errorf("log file: redirect fd %d: %w", fd, err)
			}
		}
	}
	l.SetOutput(f)
	if l.file != nil {
		l.file.Close()
	}
	l.file = f
	return nil
}

// Close releases the file or syslog connection.
func (l *Logger) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file != nil {
		l.file.Close()
		l.file = nil
	}
	if l.closer != nil {
		l.closer.Close()
	}
}
