package fs_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blobfs/blobfs/fs"
)

// run runs a program and fails the test with its output when it fails.
func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
		"GIT_CONFIG_NOSYSTEM=1", "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func need(t *testing.T, prog string) {
	t.Helper()
	if _, err := exec.LookPath(prog); err != nil {
		if os.Getenv("BLOBFS_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s is not installed", prog)
		}
		t.Skipf("%s is not installed", prog)
	}
}

// makeTree writes a small tree with nested directories, an executable, an
// empty file, a binary file, awkward names and a symlink, with set mtimes.
func makeTree(t *testing.T, root string) {
	t.Helper()
	files := map[string]struct {
		data string
		mode os.FileMode
	}{
		"README":                   {"hello\n", 0644},
		"bin/run.sh":               {"#!/bin/sh\necho hi\n", 0755},
		"src/a b/c%d#e?f+g.txt":    {"awkward\n", 0600},
		"src/ünïcødé/日本語.txt":      {"unicode\n", 0644},
		"src/empty":                {"", 0644},
		"data/blob.bin":            {string(bytes.Repeat([]byte{0, 1, 2, 255}, 70000)), 0640},
		"deep/er/and/deeper/x.txt": {"deep\n", 0644},
	}
	for name, f := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "emptydir"), 0700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../README", filepath.Join(root, "bin/readme-link")); err != nil {
		t.Fatal(err)
	}
	when := time.Date(2020, 2, 29, 12, 34, 56, 0, time.UTC)
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode()&os.ModeSymlink == 0 {
			os.Chtimes(p, when, when)
		}
		return nil
	})
}

// sameTree checks contents with diff -r, and modes and mtimes of every entry.
func sameTree(t *testing.T, a, b string) {
	t.Helper()
	if out, err := exec.Command("diff", "-r", "--no-dereference", a, b).CombinedOutput(); err != nil {
		t.Fatalf("diff -r %s %s: %v\n%s", a, b, err, out)
	}
	filepath.Walk(a, func(p string, fa os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(a, p)
		fb, err := os.Lstat(filepath.Join(b, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		if fa.Mode() != fb.Mode() {
			t.Errorf("%s: mode %v, want %v", rel, fb.Mode(), fa.Mode())
		}
		if fa.Mode()&os.ModeSymlink == 0 && rel != "." && !fa.ModTime().Equal(fb.ModTime()) {
			t.Errorf("%s: mtime %v, want %v", rel, fb.ModTime(), fa.ModTime())
		}
		return nil
	})
}

func TestScenarioGit(t *testing.T) {
	need(t, "git")
	e := newEnv(t)
	dir, mt := e.mount(t, fs.Options{})
	repo := filepath.Join(dir, "repo")
	if err := os.Mkdir(repo, 0755); err != nil {
		t.Fatal(err)
	}
	makeTree(t, repo)
	run(t, repo, "git", "init", "-q")
	run(t, repo, "git", "add", "-A")
	run(t, repo, "git", "commit", "-q", "-m", "first")
	if st := run(t, repo, "git", "status", "--porcelain"); st != "" {
		t.Fatalf("git status after commit:\n%s", st)
	}
	os.WriteFile(filepath.Join(repo, "README"), []byte("changed\n"), 0644)
	run(t, repo, "git", "commit", "-q", "-am", "second")
	unmount(t, mt)

	// Everything git wrote is in the container: a new mount sees a clean,
	// consistent repository with both commits.
	dir2, _ := e.mount(t, fs.Options{})
	repo = filepath.Join(dir2, "repo")
	run(t, repo, "git", "fsck", "--strict")
	if st := run(t, repo, "git", "status", "--porcelain"); st != "" {
		t.Fatalf("git status after remount:\n%s", st)
	}
	if log := run(t, repo, "git", "log", "--format=%s"); log != "second\nfirst\n" {
		t.Fatalf("git log = %q", log)
	}
	if b, _ := os.ReadFile(filepath.Join(repo, "README")); string(b) != "changed\n" {
		t.Fatalf("README = %q", b)
	}
}

func TestScenarioRsync(t *testing.T) {
	need(t, "rsync")
	e := newEnv(t)
	dir, mt := e.mount(t, fs.Options{})
	src := t.TempDir()
	makeTree(t, src)
	run(t, "/", "rsync", "-a", src+"/", dir+"/tree/")
	unmount(t, mt)

	dir2, _ := e.mount(t, fs.Options{})
	back := t.TempDir()
	run(t, "/", "rsync", "-a", dir2+"/tree/", back+"/")
	sameTree(t, src, back)
	// A second rsync finds nothing to do: sizes and mtimes all match.
	if out := run(t, "/", "rsync", "-a", "--itemize-changes", src+"/", dir2+"/tree/"); strings.Contains(out, ">f") {
		t.Fatalf("second rsync transferred files:\n%s", out)
	}
}

func TestScenarioTar(t *testing.T) {
	need(t, "tar")
	e := newEnv(t)
	dir, _ := e.mount(t, fs.Options{})
	src := t.TempDir()
	makeTree(t, src)
	work := t.TempDir()
	run(t, src, "tar", "cf", work+"/in.tar", ".")
	if err := os.Mkdir(dir+"/x", 0755); err != nil {
		t.Fatal(err)
	}
	run(t, dir+"/x", "tar", "xpf", work+"/in.tar")
	run(t, dir+"/x", "tar", "cf", work+"/out.tar", ".")
	out := filepath.Join(work, "out")
	os.Mkdir(out, 0755)
	run(t, out, "tar", "xpf", work+"/out.tar")
	sameTree(t, src, out)
}

func TestScenarioEditorSave(t *testing.T) {
	e := newEnv(t)
	dir, _ := e.mount(t, fs.Options{})
	target := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(target, []byte("version 1\n"), 0600); err != nil {
		t.Fatal(err)
	}
	for i, content := range []string{"version 2\n", "version 3, longer than before\n"} {
		tmp := filepath.Join(dir, ".notes.txt.swp")
		f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0600)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(content); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatalf("fsync: %v", err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		if err := os.Rename(tmp, target); err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
		if b, err := os.ReadFile(target); err != nil || string(b) != content {
			t.Fatalf("after save %d: %q, %v", i, b, err)
		}
		if got, _, ok := e.get(t, "notes.txt"); !ok || got != content {
			t.Fatalf("blob after save %d: %q (exists %v)", i, got, ok)
		}
		if _, _, ok := e.get(t, ".notes.txt.swp"); ok {
			t.Fatalf("temp file still in the container after save %d", i)
		}
	}
	if fi, err := os.Stat(target); err != nil || fi.Mode().Perm() != 0600 {
		t.Fatalf("mode after save: %v %v", fi, err)
	}
}

func TestScenarioCpP(t *testing.T) {
	e := newEnv(t)
	dir, mt := e.mount(t, fs.Options{})
	src := filepath.Join(t.TempDir(), "f")
	os.WriteFile(src, []byte("preserve me"), 0640)
	when := time.Date(2001, 9, 9, 1, 46, 40, 123456789, time.UTC)
	os.Chtimes(src, when, when)
	run(t, "/", "cp", "-p", src, dir+"/copy")
	unmount(t, mt)
	dir2, _ := e.mount(t, fs.Options{})
	fi, err := os.Stat(dir2 + "/copy")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0640 || !fi.ModTime().Equal(when) {
		t.Fatalf("cp -p: mode %v mtime %v, want 0640 %v", fi.Mode(), fi.ModTime(), when)
	}
	if b, _ := os.ReadFile(dir2 + "/copy"); string(b) != "preserve me" {
		t.Fatalf("content %q", b)
	}
	// cp -p back out preserves them too.
	back := filepath.Join(t.TempDir(), "back")
	run(t, "/", "cp", "-p", dir2+"/copy", back)
	if fb, _ := os.Stat(back); fb.Mode().Perm() != 0640 || !fb.ModTime().Equal(when) {
		t.Fatalf("cp -p out: mode %v mtime %v", fb.Mode(), fb.ModTime())
	}
}

func TestScenarioSQLite(t *testing.T) {
	need(t, "sqlite3")
	e := newEnv(t)
	dir, mt := e.mount(t, fs.Options{})
	db := filepath.Join(dir, "db", "test.sqlite")
	os.Mkdir(filepath.Dir(db), 0755)
	run(t, "/", "sqlite3", db,
		"create table t(id integer primary key, v text);"+
			"insert into t(v) values ('one'),('two'),('three');"+
			"update t set v = 'TWO' where id = 2;"+
			"delete from t where id = 3;")
	if out := run(t, "/", "sqlite3", db, "select id, v from t order by id;"); out != "1|one\n2|TWO\n" {
		t.Fatalf("query = %q", out)
	}
	unmount(t, mt)
	dir2, _ := e.mount(t, fs.Options{})
	db = filepath.Join(dir2, "db", "test.sqlite")
	if out := run(t, "/", "sqlite3", db, "pragma integrity_check; select count(*) from t;"); out != "ok\n2\n" {
		t.Fatalf("after remount = %q", out)
	}
}

var _ = syscall.Stat_t{}
