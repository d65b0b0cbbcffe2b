package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/blobfs/blobfs/auth"
	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/cmd/blobfs/internal/config"
	"github.com/blobfs/blobfs/cmd/blobfs/internal/control"
	"github.com/blobfs/blobfs/cmd/blobfs/internal/daemon"
	"github.com/blobfs/blobfs/cmd/blobfs/internal/logs"
	"github.com/blobfs/blobfs/cmd/blobfs/internal/metrics"
	"github.com/blobfs/blobfs/cmd/blobfs/internal/mountpoint"
	"github.com/blobfs/blobfs/fs"
)

// startTimeout bounds everything before the mount is ready: IMDS alone may
// legitimately retry for about 100 s while a VM boots.
const startTimeout = 5 * time.Minute

func cmdMount(args []string, e env) int {
	l, err := config.Parse("mount", args, e.getenv, usageFor("mount", e.stdout))
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "blobfs mount: %v\n", err)
		return 2
	}
	if len(l.Args) != 1 {
		fmt.Fprintf(e.stderr, "blobfs mount: give exactly one MOUNTPOINT (see blobfs mount --help)\n")
		return 2
	}
	mp := control.CleanMountpoint(l.Args[0])
	if err := l.Resolve(); err != nil {
		fmt.Fprintf(e.stderr, "blobfs mount: %v\n", err)
		return 1
	}
	n, child := daemon.Child()
	if !l.Foreground && !child {
		return spawnDaemon(args, l, mp, e)
	}
	return serve(l, mp, n, e)
}

// spawnDaemon starts the background blobfs and waits for its verdict.
func spawnDaemon(args []string, l *config.Loaded, mp string, e env) int {
	target := l.LogFile
	if target == "" {
		if logs.SyslogAvailable() {
			target = logs.Syslog
		} else {
			target = filepath.Join(l.CacheDir, "blobfs.log")
			if err := os.MkdirAll(l.CacheDir, 0o700); err != nil {
				fmt.Fprintf(e.stderr, "blobfs mount: cache directory: %v\n", err)
				return 1
			}
		}
	}
	var out *os.File
	if target != logs.Syslog && target != logs.Stderr {
		abs, err := filepath.Abs(target)
		if err != nil {
			fmt.Fprintf(e.stderr, "blobfs mount: --log-file: %v\n", err)
			return 1
		}
		target = abs
		// The child's stdout and stderr go there too, so that even a crash
		// before its logger is set up leaves a trace.
		if out, err = os.OpenFile(target, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640); err != nil {
			fmt.Fprintf(e.stderr, "blobfs mount: --log-file: %v\n", err)
			return 1
		}
		defer out.Close()
	}
	childArgs := append(append([]string{"mount"}, args...), "--log-file", target)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout+time.Minute)
	defer cancel()
	pid, err := daemon.Spawn(ctx, daemon.Options{Args: childArgs, Output: out, Progress: func(msg string) {
		fmt.Fprintf(e.stderr, "blobfs mount: %s\n", msg)
	}})
	if err != nil {
		msg := err.Error()
		if out != nil {
			msg += " (log: " + target + ")"
		}
		fmt.Fprintf(e.stderr, "blobfs mount: %s\n", msg)
		return 1
	}
	fmt.Fprintln(e.stdout, mountedLine(l, mp, pid, target))
	return 0
}

// mountedLine is the one line a successful mount prints.
func mountedLine(l *config.Loaded, mp string, pid int, logTarget string) string {
	return fmt.Sprintf("blobfs: mounted %s/%s at %s (pid %d, log %s)", l.Account, l.Container, mp, pid, logTarget)
}

// serve mounts and serves until a signal or an unmount; it runs in the
// foreground process or the daemon child.
func serve(l *config.Loaded, mp string, n *daemon.Notifier, e env) int {
	tuneGC()
	target := l.LogFile
	if target == "" {
		target = logs.Stderr
	}
	lg, err := logs.New(logs.Options{
		Level: l.LogLevel, Format: l.LogFormat, Target: target,
		Stdio: n != nil && target != logs.Stderr && target != logs.Syslog,
	})
	if err != nil {
		fmt.Fprintf(e.stderr, "blobfs mount: %v\n", err)
		if n != nil {
			n.Fail(err)
		}
		return 1
	}
	defer lg.Close()

	// say is for what the person who ran blobfs mount should see while
	// they wait: the parent prints what the daemon child sends it.
	say := func(msg string) {
		lg.Info(msg)
		if n != nil {
			n.Progress(msg)
		} else if target != logs.Stderr {
			fmt.Fprintf(e.stderr, "blobfs mount: %s\n", msg)
		}
	}
	d := &mountDaemon{l: l, mp: mp, log: lg, say: say, started: time.Now(), done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	err = d.start(ctx)
	cancel()
	if err != nil {
		lg.WithError(err).Error("mount failed")
		if n != nil {
			n.Fail(err)
		} else if target != logs.Stderr {
			fmt.Fprintf(e.stderr, "blobfs mount: %v\n", err)
		}
		return 1
	}
	lg.WithField("mountpoint", mp).Info("mounted")
	if n == nil {
		fmt.Fprintln(e.stdout, mountedLine(l, mp, os.Getpid(), target))
	}
	if n != nil {
		n.Ready()
		// Hold no directory busy: the admin may want to unmount or remove it.
		_ = os.Chdir("/")
	}
	return d.run()
}

// mountDaemon is one live mount and what serves it.
type mountDaemon struct {
	l       *config.Loaded
	mp      string
	log     *logs.Logger
	say     func(string)
	started time.Time

	metrics  *metrics.Set
	mounted  atomic.Pointer[fs.Mounted]
	ctrl     *control.Server
	httpSrv  *http.Server
	authMode string

	shutdownOnce sync.Once
	done         chan struct{}
	shutdownErr  error
	progressMu   sync.Mutex
	progress     []func(control.Status)
}

func (d *mountDaemon) start(ctx context.Context) error {
	s := &d.l.Settings
	d.log.WithFields(logrus.Fields{
		"version":       Version(),
		"account":       s.Account,
		"container":     s.Container,
		"auth_mode":     s.AuthMode,
		"blob_endpoint": s.BlobEndpoint,
		"mountpoint":    d.mp,
		"read_only":     s.ReadOnly,
		"cache_dir":     s.CacheDir,
		"cache_size":    s.CacheSize.String(),
		"block_size":    s.BlockSize.String(),
		"concurrency":   s.Concurrency,
		"pid":           os.Getpid(),
	}).Info("blobfs starting")

	if err := d.prepareMountpoint(ctx); err != nil {
		return err
	}
	if detail, fix := fuseDeviceProblem(); detail != "" {
		return fmt.Errorf("cannot open /dev/fuse: %s: %s", detail, fix)
	}
	if s.AllowOther && os.Geteuid() != 0 && !mountpoint.UserAllowOther("/etc/fuse.conf") {
		return errors.New("--allow-other needs a line 'user_allow_other' in /etc/fuse.conf when blobfs does not run as root: add it (as root) or drop --allow-other")
	}
	if !s.ReadOnly {
		if err := os.MkdirAll(s.CacheDir, 0o700); err != nil {
			return fmt.Errorf("--cache-dir %s: %w", s.CacheDir, err)
		}
	}

	d.metrics = metrics.New(Version(), func() metrics.FSStats {
		m := d.mounted.Load()
		if m == nil {
			return metrics.FSStats{}
		}
		_, st := mountStats(m)
		return st
	})
	var metricsLn net.Listener
	if s.MetricsAddr != "" {
		// Listen before mounting, so that a taken port fails the mount
		// instead of silently losing the metrics.
		ln, err := net.Listen("tcp", s.MetricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics-addr %s: %w", s.MetricsAddr, err)
		}
		metricsLn = ln
	}

	acfg := authConfig(d.l, d.log)
	acfg.OnRefresh = d.metrics.OnRefresh
	acfg.OnWait = waitReporter(d.say)
	cred, err := auth.NewCredential(ctx, acfg)
	if err != nil {
		closeListener(metricsLn)
		return err
	}
	client, err := blob.NewClient(s.BlobEndpoint, cred, blob.Options{Log: d.log, Observer: d.metrics, Retry: retryPolicy(s)})
	if err != nil {
		closeListener(metricsLn)
		return fmt.Errorf("--blob-endpoint: %w", err)
	}
	ct := client.Container(s.Container)
	if err := checkContainer(ctx, ct, cred, acfg, s, d.log, d.say); err != nil {
		closeListener(metricsLn)
		return err
	}

	lfDir := lostFoundDir(s.CacheDir)
	lostBefore := lostFound(lfDir)
	recovered := &recoveryHook{say: d.say}
	recovered.active.Store(true)
	d.log.AddHook(recovered)
	stopCapture := captureStderr()
	store := ct
	if s.DeleteSnapshots {
		// rm then removes a blob's snapshots with it; otherwise it fails
		// with EBUSY, naming them.
		store = ct.DeletingSnapshots()
	}
	m, err := fs.Mount(ctx, d.mp, store, fs.Options{
		UID: uint32(s.UID), GID: uint32(s.GID),
		FileMode: s.FileMode.FileMode(), DirMode: s.DirMode.FileMode(), Umask: s.Umask.FileMode(),
		ReadOnly: s.ReadOnly, AllowOther: s.AllowOther, DirectIO: s.DirectIO,
		AttrTTL: fsTTL(s.AttrTTL), EntryTTL: fsTTL(s.EntryTTL), NegativeTTL: fsTTL(s.NegativeTTL),
		CacheDir: s.CacheDir, CacheSize: int64(s.CacheSize), ReadCache: s.ReadCache, BlockSize: int64(s.BlockSize),
		Concurrency: s.Concurrency,
		FSName:      "blobfs:" + s.Account + "/" + s.Container,
		Debug:       s.FuseDebug,
		Log:         d.log,
		NoPutMD5:    !s.PutMD5,
	})
	recovered.active.Store(false) // only fs.Mount's own recovery
	if said := fusermountLines(stopCapture()); err != nil {
		closeListener(metricsLn)
		if said != "" {
			// fusermount3 explains itself on stderr, which in the daemon
			// is the log file: bring its words to the user.
			return fmt.Errorf("%w: fusermount said: %s", err, said)
		}
		return err
	}
	d.mounted.Store(m)
	// fs.Mount recovered what a previous run left staged: name each file
	// it had to put aside, where the user will see it.
	for _, name := range lostFound(lfDir) {
		if !slices.Contains(lostBefore, name) {
			d.say(fmt.Sprintf("%s/%s: a file the previous blobfs was still writing when it stopped; not uploaded, since it may be incomplete (see \"Restoring a file from lost+found\" in the README)", lfDir, name))
		}
	}

	ctrl, err := control.Listen(s.RunDir, d.mp, d)
	if err != nil {
		// Without the socket, blobfs stats and unmount cannot reach us;
		// the mount would still work, so warn rather than fail.
		d.log.WithError(err).Warn("control socket unavailable: blobfs stats and blobfs unmount will not reach this mount")
	}
	d.ctrl = ctrl
	if metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", d.metrics.Registry.Handler())
		d.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = d.httpSrv.Serve(metricsLn) }()
		d.log.WithField("addr", metricsLn.Addr().String()).Info("serving Prometheus metrics at /metrics")
	}
	return nil
}

// fsTTL maps a TTL setting to fs.Options, where 0 means "the default" and
// a negative value means "no caching": here 0 means no caching.
func fsTTL(d config.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d.D()
}

func closeListener(ln net.Listener) {
	if ln != nil {
		ln.Close()
	}
}

// prepareMountpoint refuses unusable mountpoints and recovers stale ones.
func (d *mountDaemon) prepareMountpoint(ctx context.Context) error {
	st, err := mountpoint.Inspect(d.mp)
	if err != nil {
		return err
	}
	switch st {
	case mountpoint.Missing:
		return fmt.Errorf("mountpoint %s does not exist: create it with mkdir -p", d.mp)
	case mountpoint.NotDir:
		return fmt.Errorf("mountpoint %s is not a directory", d.mp)
	case mountpoint.Mounted:
		typ, _ := mountpoint.MountType(d.mp)
		return fmt.Errorf("mountpoint %s already has a %s filesystem mounted: unmount it first (blobfs unmount %s)", d.mp, typ, d.mp)
	case mountpoint.Stale:
		d.log.WithField("mountpoint", d.mp).Warn("mountpoint is a stale FUSE mount left by a dead process (Transport endpoint is not connected): detaching it lazily and mounting again")
		if err := mountpoint.Detach(ctx, d.mp); err != nil {
			return fmt.Errorf("mountpoint %s is stale and could not be detached: %w (try: fusermount3 -uz %s)", d.mp, err, d.mp)
		}
		if st, err := mountpoint.Inspect(d.mp); err != nil || st != mountpoint.Ready {
			return fmt.Errorf("mountpoint %s is still unusable after detaching the stale mount (%v %v)", d.mp, st, err)
		}
	}
	if !d.l.NonEmpty {
		if names := someEntries(d.mp, 3); len(names) > 0 {
			return fmt.Errorf("mountpoint %s is not empty (it holds %s): the mount would hide those files until unmounted; empty it, pick another directory, or pass --nonempty (-o nonempty)",
				d.mp, strings.Join(names, ", "))
		}
	}
	return nil
}

// lostFoundDir is where fs/stage puts staged files it could not upload.
func lostFoundDir(cacheDir string) string { return filepath.Join(cacheDir, "lost+found") }

// lostFound lists the data files in dir (not their .json journals).
func lostFound(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			out = append(out, e.Name())
		}
	}
	return out
}

// someEntries returns up to n names in dir, quoted, with "..." when
// there are more.
func someEntries(dir string, n int) []string {
	f, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer f.Close()
	names, _ := f.Readdirnames(n + 1)
	var out []string
	for i, name := range names {
		if i == n {
			out = append(out, "...")
			break
		}
		out = append(out, strconv.Quote(name))
	}
	return out
}

// authConfig maps the settings onto auth's.
func authConfig(l *config.Loaded, lg logrus.FieldLogger) auth.Config {
	s := &l.Settings
	return auth.Config{
		Mode:               s.AuthMode,
		Account:            s.Account,
		Subscription:       s.Subscription,
		ResourceGroup:      s.ResourceGroup,
		IMDSEndpoint:       s.IMDSEndpoint,
		ARMEndpoint:        s.ARMEndpoint,
		ClientID:           s.ClientID,
		ObjectID:           s.ObjectID,
		IdentityResourceID: s.IdentityResourceID,
		AccountKey:         s.AccountKey,
		SASToken:           s.SASToken,
		Retry:              authRetry(s.AuthWait.D()),
		Log:                lg,
	}.WithEnv(os.Getenv)
}

// authRetry maps --auth-wait: 0 means no retries, not the default.
func authRetry(wait time.Duration) auth.Retry {
	if wait <= 0 {
		return auth.Retry{Budget: -1}
	}
	return auth.Retry{Budget: wait}
}

// checkContainer makes sure the container is there and the credential may
// use it, creating it when asked to.
func checkContainer(ctx context.Context, ct *blob.Container, cred blob.Credential, acfg auth.Config, s *config.Settings,
	lg logrus.FieldLogger, say func(string)) error {
	err := contactContainer(ctx, ct, cred, s, lg, say)
	if errors.Is(err, blob.ErrNotFound) && s.CreateContainer {
		lg.WithField("container", ct.Name()).Info("creating the container")
		err = ct.Create(ctx)
		if errors.Is(err, blob.ErrExists) {
			err = nil
		}
	}
	if errors.Is(err, blob.ErrNotFound) {
		return fmt.Errorf("container %q does not exist in account %s: create it, fix --container, or pass --create-container", ct.Name(), acfg.Account)
	}
	if err != nil {
		return auth.Explain(acfg, err)
	}
	return nil
}

// run serves until SIGTERM/SIGINT, an unmount request or an unmount from
// outside, and returns the exit status.
func (d *mountDaemon) run() int {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	gone := make(chan struct{})
	go func() {
		d.mounted.Load().Wait()
		close(gone)
	}()
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				if err := d.log.Reopen(); err != nil {
					d.log.WithError(err).Error("SIGHUP: reopening the log file failed")
				} else {
					d.log.Info("SIGHUP: log file reopened")
				}
				continue
			}
			d.log.WithField("signal", sig.String()).Info("refusing new writes, finishing the uploads of closed files and unmounting; files still open for writing are kept in the cache, not uploaded")
			return d.exitCode(d.shutdown(nil))
		case <-gone:
			d.log.Info("unmounted from outside; finishing pending uploads")
			return d.exitCode(d.shutdown(nil))
		case <-d.done:
			return d.exitCode(d.shutdownErr)
		}
	}
}

func (d *mountDaemon) exitCode(err error) int {
	if d.ctrl != nil {
		d.ctrl.Drain(5 * time.Second)
	}
	if err != nil {
		d.log.WithError(err).Error("unmount did not finish cleanly; data not uploaded stays staged in " + d.l.CacheDir)
		return 1
	}
	d.log.Info("unmounted cleanly")
	return 0
}

// shutdown flushes and unmounts once; later callers wait for the first.
// progress, when set, hears about pending uploads while it waits.
func (d *mountDaemon) shutdown(progress func(control.Status)) error {
	if progress != nil {
		d.progressMu.Lock()
		d.progress = append(d.progress, progress)
		d.progressMu.Unlock()
	}
	d.shutdownOnce.Do(func() {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), d.l.UnmountTimeout.D())
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- d.mounted.Load().Unmount(ctx) }()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case err := <-errc:
					d.shutdownErr = err
					if d.ctrl != nil {
						d.ctrl.Close()
					}
					if d.httpSrv != nil {
						d.httpSrv.Close()
					}
					close(d.done)
					return
				case <-tick.C:
					st := d.Status()
					if len(st.Uploads) > 0 {
						d.log.WithField("pending", len(st.Uploads)).Info("waiting for uploads")
					}
					d.progressMu.Lock()
					for _, p := range d.progress {
						p(st)
					}
					d.progressMu.Unlock()
				}
			}
		}()
	})
	<-d.done
	return d.shutdownErr
}

// Status implements control.Handler.
func (d *mountDaemon) Status() control.Status {
	st := control.Status{
		Version:    Version(),
		PID:        os.Getpid(),
		Mountpoint: d.mp,
		Account:    d.l.Account,
		Container:  d.l.Container,
		AuthMode:   d.l.AuthMode,
		Since:      d.started,
		Metrics:    d.metrics.Registry.Text(),
	}
	if m := d.mounted.Load(); m != nil {
		st.Uploads, _ = mountStats(m)
	}
	if !d.l.ReadOnly {
		st.LostFoundDir = lostFoundDir(d.l.CacheDir)
		st.LostFound = lostFound(st.LostFoundDir)
	}
	return st
}

// Unmount implements control.Handler.
func (d *mountDaemon) Unmount(ctx context.Context, progress func(control.Status)) error {
	d.log.Info("unmount requested through the control socket")
	return d.shutdown(progress)
}

var _ control.Handler = (*mountDaemon)(nil)
