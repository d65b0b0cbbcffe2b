// Command bloblist lists a container through the blob REST client, without
// FUSE: the demo uses it to show that what it copied into the mount is a
// blob in the service. The key comes from AZURE_STORAGE_KEY.
//
//	bloblist --endpoint http://127.0.0.1:10000/devstoreaccount1 --account devstoreaccount1 --container demo
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/blobfs/blobfs/blob"
)

func main() {
	endpoint := flag.String("endpoint", "", "blob endpoint (path-style for Azurite)")
	account := flag.String("account", "", "storage account")
	container := flag.String("container", "", "container to list")
	flag.Parse()
	key := os.Getenv("AZURE_STORAGE_KEY")
	if *endpoint == "" || *account == "" || *container == "" || key == "" {
		fmt.Fprintln(os.Stderr, "usage: AZURE_STORAGE_KEY=... bloblist --endpoint URL --account A --container C")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := blob.NewClient(*endpoint, &blob.SharedKey{Account: *account, Keys: blob.StaticKey(key)}, blob.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bloblist:", err)
		os.Exit(1)
	}
	ct := c.Container(*container)
	marker := ""
	for {
		page, err := ct.List(ctx, blob.ListOptions{Marker: marker})
		if err != nil {
			fmt.Fprintln(os.Stderr, "bloblist:", err)
			os.Exit(1)
		}
		for _, b := range page.Blobs {
			fmt.Printf("%10d  %s  %s\n", b.Size, b.LastModified.Format(time.RFC3339), b.Name)
		}
		if marker = page.NextMarker; marker == "" {
			return
		}
	}
}
