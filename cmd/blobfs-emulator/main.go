// Command blobfs-emulator runs the IMDS and ARM emulator of auth/authtest on
// loopback, for `make demo` and manual testing without Azure:
//
//	blobfs-emulator --account devstoreaccount1 --key KEY
//	IMDS=http://127.0.0.1:40001
//	ARM=http://127.0.0.1:40002
//
// then `blobfs mount --imds-endpoint $IMDS --arm-endpoint $ARM …`. It
// serves until killed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/blobfs/blobfs/auth/authtest"
	"github.com/blobfs/blobfs/blob"
)

func main() {
	var (
		imdsAddr = flag.String("imds-addr", "127.0.0.1:0", "IMDS listen address (loopback only)")
		armAddr  = flag.String("arm-addr", "127.0.0.1:0", "ARM listen address (loopback only)")
		account  = flag.String("account", "devstoreaccount1", "storage account ARM knows")
		key      = flag.String("key", "", "the account's key1 (base64)")
		key2     = flag.String("key2", "", "the account's key2 (default: a random key)")
		sub      = flag.String("subscription", authtest.DefaultSubscription, "the VM's subscription id")
		rg       = flag.String("resource-group", authtest.DefaultResourceGroup, "the VM's resource group")
		acctRG   = flag.String("account-resource-group", "", "the account's resource group (default: the VM's)")
		ttl      = flag.Duration("token-ttl", time.Hour, "lifetime of minted tokens")
		noShared = flag.Bool("shared-key-disabled", false, "report allowSharedKeyAccess=false for the account")
		denyKeys = flag.Bool("deny-listkeys", false, "deny listKeys to the system identity")
		header   = flag.String("identity-header", "", "also serve IDENTITY_ENDPOINT, requiring this X-IDENTITY-HEADER")
		endpoint = flag.String("blob-endpoint", "", "with --create-container: the (loopback) blob endpoint, e.g. http://127.0.0.1:10000/devstoreaccount1")
		create   = flag.String("create-container", "", "create this container (with --key) at --blob-endpoint before serving, if it is not there")
	)
	flag.Parse()
	if *key == "" {
		fail("--key is required")
	}
	for _, a := range []string{*imdsAddr, *armAddr} {
		if !loopback(a) {
			fail(fmt.Sprintf("%s is not a loopback address: the emulator must not be reachable from the network", a))
		}
	}
	if *create != "" {
		if err := createContainer(*endpoint, *account, *key, *create); err != nil {
			fail(err.Error())
		}
	}
	if *key2 == "" {
		*key2 = authtest.RandomKey()
	}
	s, err := authtest.Start(authtest.Options{
		Subscription:   *sub,
		ResourceGroup:  *rg,
		Accounts:       []authtest.Account{{Name: *account, ResourceGroup: *acctRG, Key1: *key, Key2: *key2, SharedKeyDisabled: *noShared}},
		System:         authtest.Identity{DenyListKeys: *denyKeys},
		TokenTTL:       *ttl,
		IdentityHeader: *header,
		IMDSAddr:       *imdsAddr,
		ARMAddr:        *armAddr,
	})
	if err != nil {
		fail(err.Error())
	}
	defer s.Close()
	fmt.Printf("IMDS=%s\nARM=%s\n", s.IMDSURL(), s.ARMURL())
	if *header != "" {
		fmt.Printf("IDENTITY_ENDPOINT=%s\n", s.IdentityEndpoint())
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
}

// createContainer makes the sandbox's container, so that the first mount
// needs no --create-container.
func createContainer(endpoint, account, key, name string) error {
	u, err := url.Parse(endpoint)
	if err != nil || !loopback(u.Host) {
		return fmt.Errorf("--blob-endpoint %q: give a loopback URL such as http://127.0.0.1:10000/%s", endpoint, account)
	}
	c, err := blob.NewClient(endpoint, &blob.SharedKey{Account: account, Keys: blob.StaticKey(key)}, blob.Options{
		Retry: blob.RetryPolicy{Budget: 20 * time.Second}, // Azurite may still be starting
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Container(name).Create(ctx); err != nil && !errors.Is(err, blob.ErrExists) {
		return fmt.Errorf("creating container %s at %s: %w", name, endpoint, err)
	}
	return nil
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "blobfs-emulator:", msg)
	os.Exit(2)
}
