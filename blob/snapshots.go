package blob

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// DeletingSnapshots is a handle on the same container whose Delete also
// removes the blob's snapshots (x-ms-delete-snapshots: include), for
// mounts that opted in (--delete-snapshots).
func (ct *Container) DeletingSnapshots() *Container {
	c := *ct
	c.deleteSnapshots = true
	return &c
}

// DeletesSnapshots says whether Delete removes a blob's snapshots with it
// (the handle came from DeletingSnapshots).
func (ct *Container) DeletesSnapshots() bool { return ct.deleteSnapshots }

// Snapshot takes a snapshot of a blob and returns its time stamp.
func (ct *Container) Snapshot(ctx context.Context, name string) (string, error) {
	r, err := ct.blobRequest("SnapshotBlob", http.MethodPut, name, url.Values{"comp": {"snapshot"}})
	if err != nil {
		return "", err
	}
	r.ok = []int{http.StatusCreated}
	resp, err := ct.c.do(ctx, r)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	return resp.Header.Get("x-ms-snapshot"), nil
}

// SnapshotsError is a Delete refused because the blob has snapshots.
type SnapshotsError struct {
	Name      string
	Snapshots []string // their time stamps, as listed; may be short if listing failed
	Err       *StorageError
}

func (e *SnapshotsError) Error() string {
	list := strings.Join(e.Snapshots, ", ")
	if len(e.Snapshots) > 5 {
		list = strings.Join(e.Snapshots[:5], ", ") + fmt.Sprintf(" and %d more", len(e.Snapshots)-5)
	}
	if list == "" {
		list = "not listed"
	}
	return fmt.Sprintf("DeleteBlob %q: the blob has %d snapshot(s) (%s), kept with it: delete them with another tool, or mount with --delete-snapshots to remove them with the blob", e.Name, len(e.Snapshots), list)
}

func (e *SnapshotsError) Unwrap() error { return e.Err }

// snapshotsError lists name's snapshots to name them in the error.
func (ct *Container) snapshotsError(ctx context.Context, name string, se *StorageError) error {
	e := &SnapshotsError{Name: name, Err: se}
	marker := ""
	for {
		page, err := ct.List(ctx, ListOptions{Prefix: name, Marker: marker, IncludeSnapshots: true})
		if err != nil {
			break
		}
		for _, b := range page.Blobs {
			if b.Name == name && b.Snapshot != "" {
				e.Snapshots = append(e.Snapshots, b.Snapshot)
			}
		}
		if marker = page.NextMarker; marker == "" {
			break
		}
	}
	return e
}
