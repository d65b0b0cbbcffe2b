package blob

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Rename moves src to dst the only way a flat namespace allows: a copy on
// the service side, pinned to one version of src, then a Delete of that
// version of src. It is not atomic: a reader may see both names for a
// moment. md, srcCond and dstCond are as for Copy; an empty srcCond pins
// the version a HEAD finds.
//
// If src is rewritten between the copy and the delete, dst holds the old
// content, src the new, and the error matches ErrPrecondition. A Delete
// that answers 404 right after the copy is asked again (the service can
// briefly report a copied source as missing) and then taken as done.
func (ct *Container) Rename(ctx context.Context, dst, src string, md map[string]string, srcCond, dstCond Conditions) (*Properties, error) {
	if srcCond.IfMatch == "" {
		p, err := ct.GetProperties(ctx, src)
		if err != nil {
			return nil, err
		}
		srcCond.IfMatch = p.ETag
	}
	p, err := ct.Copy(ctx, dst, src, md, srcCond, dstCond)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		err = ct.Delete(ctx, src, Conditions{IfMatch: srcCond.IfMatch})
		switch {
		case err == nil:
			return p, nil
		case errors.Is(err, ErrPrecondition):
			return nil, fmt.Errorf("rename %q to %q: %q was rewritten during the rename, so both names now exist: %w", src, dst, src, err)
		case !errors.Is(err, ErrNotFound):
			return nil, fmt.Errorf("rename %q to %q: copied, but removing the source failed: %w", src, dst, err)
		case attempt == 2:
			return p, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("rename %q to %q: %w", src, dst, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}
