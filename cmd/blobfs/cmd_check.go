package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/blobfs/blobfs/auth"
	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/cmd/blobfs/internal/config"
	"github.com/blobfs/blobfs/cmd/blobfs/internal/control"
	"github.com/blobfs/blobfs/cmd/blobfs/internal/logs"
	"github.com/blobfs/blobfs/cmd/blobfs/internal/mountpoint"
)

// checker prints one line per hop and remembers the first failure.
type checker struct {
	w      io.Writer
	first  string
	failed int
}

func (c *checker) ok(name, detail string) {
	fmt.Fprintf(c.w, "ok    %-34s %s\n", name, detail)
}

func (c *checker) fail(name, detail, fix string) {
	fmt.Fprintf(c.w, "FAIL  %-34s %s\n", name, detail)
	if fix != "" {
		fmt.Fprintf(c.w, "      -> %s\n", fix)
	}
	if c.first == "" {
		c.first = name
	}
	c.failed++
}

func (c *checker) skip(name, why string) {
	fmt.Fprintf(c.w, "skip  %-34s %s\n", name, why)
}

// fuseConf is where fuse3 reads user_allow_other.
const fuseConf = "/etc/fuse.conf"

func cmdCheck(args []string, e env) int {
	l, err := config.Parse("check", args, e.getenv, usageFor("check", e.stdout))
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "blobfs check: %v\n", err)
		return 2
	}
	c := &checker{w: e.stdout}
	if err := l.Resolve(); err != nil {
		c.fail("settings", "invalid", err.Error())
		return c.done()
	}
	c.ok("settings", fmt.Sprintf("account %s, container %s, auth %s", l.Account, l.Container, l.AuthMode))

	checkFUSE(c, l)
	if len(l.Args) > 0 {
		checkMountpoint(c, l, control.CleanMountpoint(l.Args[0]))
	}

	lg, err := logs.New(logs.Options{Level: l.LogLevel, Format: l.LogFormat, Target: l.LogFile})
	if err != nil {
		c.fail("logging", err.Error(), "")
		return c.done()
	}
	defer lg.Close()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()

	acfg := authConfig(l, lg)
	say := func(msg string) { fmt.Fprintf(e.stdout, "      .. %s\n", msg) }
	acfg.OnWait = waitReporter(say)
	cred, err := auth.Diagnose(ctx, acfg, func(h auth.Hop) {
		if h.OK {
			c.ok(h.Name, h.Detail)
		} else {
			c.fail(h.Name, h.Detail, h.Fix)
		}
	})
	if err != nil {
		if c.failed == 0 {
			c.fail("credential", err.Error(), "")
		}
		return c.done()
	}
	client, err := blob.NewClient(l.BlobEndpoint, cred, blob.Options{Log: quiet(lg), Retry: retryPolicy(&l.Settings)})
	if err != nil {
		c.fail("blob endpoint", err.Error(), "fix --blob-endpoint")
		return c.done()
	}
	ct := client.Container(l.Container)
	err = contactContainer(ctx, ct, cred, &l.Settings, quiet(lg), say)
	var se *blob.StorageError
	switch {
	case err == nil:
		c.ok("storage accepts the credential", l.BlobEndpoint)
		c.ok("container exists", l.Container)
	case errors.Is(err, blob.ErrNotFound):
		// Storage looked the container up, so it took the credential.
		c.ok("storage accepts the credential", l.BlobEndpoint)
		c.fail("container exists", fmt.Sprintf("no container %q in account %s", l.Container, l.Account),
			"create it (az storage container create --name "+l.Container+" --account-name "+l.Account+" --auth-mode login), fix --container, or mount with --create-container")
		return c.done()
	default:
		detail, fix := err.Error(), ""
		var ae *auth.Error
		if errors.As(auth.Explain(acfg, err), &ae) {
			detail, fix = ae.Detail, ae.Fix
		} else if errors.As(err, &se) {
			// explainEndpoint's advice, or the service's own words.
			detail, fix = fmt.Sprintf("storage answered %d %s", se.Status, se.Code), err.Error()
		}
		c.fail("storage accepts the credential", detail, fix)
		return c.done()
	}

	if !l.WriteProbe {
		c.skip("write/read/delete probe", "pass --write-probe to try one")
		return c.done()
	}
	writeProbe(ctx, c, ct, acfg)
	return c.done()
}

func (c *checker) done() int {
	if c.failed > 0 {
		fmt.Fprintf(c.w, "\n%d check(s) failed; the first was %q.\n", c.failed, c.first)
		return 1
	}
	fmt.Fprintf(c.w, "\nall checks passed\n")
	return 0
}

// checkFUSE looks at what the kernel side of a mount needs.
func checkFUSE(c *checker, l *config.Loaded) {
	if detail, fix := fuseDeviceProblem(); detail != "" {
		c.fail("/dev/fuse", detail, fix)
	} else {
		c.ok("/dev/fuse", "can be opened")
	}
	if p, err := exec.LookPath("fusermount3"); err != nil {
		if os.Geteuid() == 0 {
			c.skip("fusermount3", "not installed; root can mount without it, but unmounting is easier with it (apt-get install fuse3)")
		} else {
			c.fail("fusermount3", "not found in PATH", "install the fuse3 package (apt-get install fuse3)")
		}
	} else {
		c.ok("fusermount3", p)
	}
	if l.AllowOther {
		switch {
		case os.Geteuid() == 0:
			c.ok("allow_other", "running as root")
		case mountpoint.UserAllowOther(fuseConf):
			c.ok("allow_other", fuseConf+" has user_allow_other")
		default:
			c.fail("allow_other", fuseConf+" lacks user_allow_other",
				"add a line 'user_allow_other' to "+fuseConf+" (as root), or drop --allow-other")
		}
	}
}

func checkMountpoint(c *checker, l *config.Loaded, mp string) {
	st, err := mountpoint.Inspect(mp)
	switch {
	case err == nil && st == mountpoint.Mounted:
		checkLiveMount(c, l, mp)
	case err == nil && st == mountpoint.Ready && !l.NonEmpty && len(someEntries(mp, 3)) > 0:
		c.fail("mountpoint", mp+" is not empty: holds "+strings.Join(someEntries(mp, 3), ", "),
			"empty it, pick another directory, or mount with --nonempty to hide those files while mounted")
	case err != nil:
		c.fail("mountpoint", err.Error(), "")
	case st == mountpoint.Ready:
		c.ok("mountpoint", mp)
	case st == mountpoint.Stale:
		c.ok("mountpoint", mp+" is a stale mount of a dead blobfs; mount will detach it")
	case st == mountpoint.Missing:
		c.fail("mountpoint", mp+" does not exist", "mkdir -p "+mp)
	default:
		c.fail("mountpoint", mp+": "+st.String(), "unmount it or pick another directory")
	}
}

// checkLiveMount asks the blobfs serving mp how it is, rather than calling
// a healthy mount a failure because the directory is taken.
func checkLiveMount(c *checker, l *config.Loaded, mp string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var st *control.Status
	err := control.Call(ctx, l.RunDir, mp, "stats", func(m control.Message) {
		if m.Status != nil {
			st = m.Status
		}
	})
	if err != nil || st == nil {
		typ, _ := mountpoint.MountType(mp)
		c.fail("mountpoint", fmt.Sprintf("%s has a %s filesystem mounted and no blobfs answers for it in --run-dir %s", mp, typ, l.RunDir),
			"if a blobfs serves it, pass the --run-dir it was mounted with; otherwise unmount it (blobfs unmount "+mp+") or pick another directory")
		return
	}
	detail := fmt.Sprintf("%s is mounted: blobfs %s, pid %d, serving %s/%s since %s, %d upload(s) pending",
		mp, st.Version, st.PID, st.Account, st.Container, st.Since.Format(time.RFC3339), len(st.Uploads))
	if st.Account != l.Account || st.Container != l.Container {
		detail += fmt.Sprintf(" (not the %s/%s checked here)", l.Account, l.Container)
	}
	c.ok("mountpoint", detail)
}

// writeProbe writes, reads back and deletes a small blob.
func writeProbe(ctx context.Context, c *checker, ct *blob.Container, acfg auth.Config) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	name := ".blobfs-probe-" + hex.EncodeToString(rnd[:])
	data := []byte("blobfs write probe " + name)
	explain := func(err error) (string, string) {
		var ae *auth.Error
		if errors.As(auth.Explain(acfg, err), &ae) {
			return ae.Detail, ae.Fix
		}
		return err.Error(), ""
	}
	if _, err := ct.Upload(ctx, name, data, blob.PutOptions{}); err != nil {
		d, f := explain(err)
		if f == "" {
			f = "the credential may read but not write: mount with --read-only, or give it write access"
		}
		c.fail("write probe", d, f)
		return
	}
	defer func() {
		if err := ct.Delete(ctx, name, blob.Conditions{}); err != nil {
			d, f := explain(err)
			c.fail("delete probe", d+" (left "+name+" behind)", f)
		} else {
			c.ok("delete probe", name)
		}
	}()
	rc, _, err := ct.Download(ctx, name, 0, -1, blob.Conditions{})
	if err != nil {
		d, f := explain(err)
		c.fail("read probe", d, f)
		return
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		c.fail("read probe", fmt.Sprintf("read back %d bytes that differ from the %d written (%v)", len(got), len(data), err), "")
		return
	}
	c.ok("write probe", name)
	c.ok("read probe", fmt.Sprintf("%d bytes match", len(got)))
}

// quiet keeps the blob client's own failure lines out of check's output,
// which reports each failure itself, unless debugging.
func quiet(lg *logs.Logger) logrus.FieldLogger {
	if lg.GetLevel() >= logrus.DebugLevel {
		return lg
	}
	q := logrus.New()
	q.SetOutput(io.Discard)
	return q
}
