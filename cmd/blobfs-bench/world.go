package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/blobfs/blobfs/auth/authtest"
	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/blob/blobtest"
	"github.com/blobfs/blobfs/blob/transfer"
)

// containerName is the container every round mounts.
const containerName = "bench"

// world is one round's services, all on 127.0.0.1: a fresh in-memory
// Azurite, the counting proxy in front of it that both the direct client
// and blobfs talk through (so both pay the same hop and are counted the
// same way), and the IMDS/ARM emulator that hands blobfs the account key
// on the managed-identity path (auth-mode msi-key, the default).
type world struct {
	az    *blobtest.Azurite
	proxy *blobtest.Proxy
	emu   *authtest.Server
	ct    *blob.Container  // the direct client, through the proxy
	dir   string           // scratch for this round: cache, logs, mountpoint
	bufs  transfer.Buffers // shared by the direct transfers, as one client's would be
}

func startWorld(ctx context.Context, dir string) (w *world, err error) {
	w = &world{dir: dir}
	// The error returns set w to nil: close what was started through a
	// copy (it was a nil dereference that hid the error).
	started := w
	defer func() {
		if err != nil {
			started.close()
		}
	}()
	if w.az, err = blobtest.Start(ctx, blobtest.Options{}); err != nil {
		return nil, fmt.Errorf("start azurite: %w", err)
	}
	if w.proxy, err = blobtest.StartProxy(w.az.Endpoint()); err != nil {
		return nil, fmt.Errorf("start the counting proxy: %w", err)
	}
	w.emu, err = authtest.Start(authtest.Options{
		Accounts: []authtest.Account{{Name: w.az.Account(), Key1: w.az.Key(), Key2: authtest.RandomKey()}},
	})
	if err != nil {
		return nil, fmt.Errorf("start the IMDS/ARM emulator: %w", err)
	}
	c, err := blob.NewClient(w.proxy.Endpoint(), &blob.SharedKey{Account: w.az.Account(), Keys: blob.StaticKey(w.az.Key())}, blob.Options{})
	if err != nil {
		return nil, err
	}
	w.ct = c.Container(containerName)
	if err := w.ct.Create(ctx); err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "mnt"), 0o755); err != nil {
		return nil, err
	}
	return w, nil
}

// env is the environment blobfs runs in: the caller's, less anything that
// could point it at Azure, plus the loopback endpoints.
func (w *world) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case hasAnyPrefix(k, "BLOBFS_", "AZURE_", "IDENTITY_", "MSI_"),
			hasAnyPrefix(k, "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy"):
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"BLOBFS_BLOB_ENDPOINT="+w.proxy.Endpoint(),
		"BLOBFS_IMDS_ENDPOINT="+w.emu.IMDSURL(),
		"BLOBFS_ARM_ENDPOINT="+w.emu.ARMURL(),
		"BLOBFS_RUN_DIR="+filepath.Join(w.dir, "run"),
	)
}

func (w *world) mountpoint() string { return filepath.Join(w.dir, "mnt") }

func (w *world) close() {
	if w.proxy != nil {
		w.proxy.Close()
	}
	if w.emu != nil {
		w.emu.Close()
	}
	if w.az != nil {
		w.az.Stop()
	}
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
