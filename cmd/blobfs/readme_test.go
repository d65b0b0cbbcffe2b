package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tryItLocally returns the commands of the README's "Try it locally"
// section: the lines of its first ```sh block.
func tryItLocally(t *testing.T, readme string) []string {
	t.Helper()
	_, sec, ok := strings.Cut(readme, "\n## Try it locally\n")
	if !ok {
		t.Fatal(`README.md has no "## Try it locally" section`)
	}
	if i := strings.Index(sec, "\n## "); i >= 0 {
		sec = sec[:i]
	}
	_, block, ok := strings.Cut(sec, "```sh\n")
	if !ok {
		t.Fatal(`"Try it locally" has no sh block`)
	}
	block, _, _ = strings.Cut(block, "```")
	var cmds []string
	for _, l := range strings.Split(block, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			cmds = append(cmds, l)
		}
	}
	return cmds
}

// The README's "Try it locally" commands, run as written from the
// repository's root, mount the sandbox for real, write a file through it
// and stop everything; the mount line the README shows is the one make
// sandbox prints. So the README cannot drift from what works.
func TestReadmeTryItLocally(t *testing.T) {
	needFUSE(t)
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	for _, port := range []string{"10000", "40342", "40343"} {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second); err == nil {
			c.Close()
			t.Skipf("127.0.0.1:%s is taken (a sandbox already running?): the sandbox needs its fixed ports", port)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	cmds := tryItLocally(t, string(b))
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "BLOBFS_") && !strings.HasPrefix(k, "AZURE_") {
			env = append(env, kv)
		}
	}
	sh := func(line string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", "-c", line)
		cmd.Dir, cmd.Env = root, env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	t.Cleanup(func() {
		if out, err := sh("make sandbox-stop"); err != nil {
			t.Errorf("make sandbox-stop at cleanup: %v\n%s", err, out)
		}
	})

	var mountLine string
	outs := map[string]string{}
	for _, c := range cmds {
		out, err := sh(c)
		t.Logf("$ %s\n%s", c, out)
		if err != nil {
			t.Fatalf("README command failed: %s: %v\n%s", c, err, out)
		}
		outs[c] = out
		if strings.Contains(c, "blobfs mount ") {
			mountLine = c
		}
	}
	if mountLine == "" {
		t.Fatal(`"Try it locally" has no blobfs mount line`)
	}
	var sandbox string
	for c, out := range outs {
		if c == "make sandbox" {
			sandbox = out
		}
	}
	if !strings.Contains(sandbox, "\n"+mountLine+"\n") {
		t.Errorf("the README's mount line is not the one make sandbox prints:\nREADME: %s\nmake sandbox:\n%s", mountLine, sandbox)
	}
	if !strings.Contains(outs[mountLine], "blobfs: mounted devstoreaccount1/sandbox at ") {
		t.Errorf("the mount did not print its success line: %q", outs[mountLine])
	}
	var listed bool
	for c, out := range outs {
		if strings.HasPrefix(c, "ls ") && strings.Contains(out, "hello.txt") {
			listed = true
		}
	}
	if !listed {
		t.Error("no ls in the README's commands listed the file written through the mount")
	}
	// Everything is stopped: the ports are free again.
	for _, port := range []string{"10000", "40342", "40343"} {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second); err == nil {
			c.Close()
			t.Errorf("127.0.0.1:%s still answers after make sandbox-stop", port)
		}
	}
}
