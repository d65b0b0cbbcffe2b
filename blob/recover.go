package blob

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
)

// ambiguous says whether a failed write may nevertheless have been applied:
// no answer came, or a server error that does not promise otherwise.
func ambiguous(err error) bool {
	var te *transportError
	var se *StorageError
	switch {
	case errors.As(err, &te):
		return true
	case errors.As(err, &se):
		return retryableStatus(se.Status) && !unapplied(se.Status)
	}
	return false
}

// writeChecked sends a write that must not simply be repeated after an
// ambiguous failure, because a repeat of an applied write would fail or do
// harm: a conditional write (If-Match, If-None-Match: *) would be refused
// with 412/409 although it succeeded, a Delete would report 404. After such
// a failure it looks at the blob (HEAD): when applied says the blob shows
// the write, the write succeeded; when the condition still holds, the write
// was not applied and is sent again; otherwise another writer got in
// between and the original failure is returned.
func (ct *Container) writeChecked(ctx context.Context, r *request, cond Conditions, applied func(cur *Properties, headErr error) bool) (*Properties, error) {
	r.idempotent = false
	start := time.Now()
	for attempt := 0; ; attempt++ {
		p, err := ct.doWrite(ctx, r)
		if err == nil || !ambiguous(err) || ctx.Err() != nil {
			return p, err
		}
		cur, herr := ct.GetProperties(ctx, r.name)
		log := ct.c.log.WithFields(logrus.Fields{"op": r.op, "blob": r.name})
		switch {
		case applied != nil && applied(cur, herr) && (herr != nil || cur.ETag != cond.IfMatch || cond.IfMatch == ""):
			log.WithError(err).Info("the write failed ambiguously but the blob shows it was applied")
			if herr != nil {
				return &Properties{Name: r.name}, nil
			}
			return cur, nil
		case conditionHolds(cond, cur, herr):
			// Not applied: safe to send again.
		default:
			return nil, err
		}
		wait, ok := ct.c.retry.next(attempt, err, true, time.Since(start))
		if !ok {
			return nil, err
		}
		log.WithError(err).WithField("wait", wait).Debug("write not applied; sending it again")
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s %q: %w (after: %v)", r.op, r.name, ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}

// conditionHolds says whether the blob, as a HEAD found it, still meets the
// write's preconditions, which means the write was not applied.
func conditionHolds(cond Conditions, cur *Properties, headErr error) bool {
	switch {
	case cond.IfNoneMatch == "*":
		return errors.Is(headErr, ErrNotFound)
	case cond.IfMatch != "":
		return headErr == nil && cur.ETag == cond.IfMatch
	}
	// Unconditional: it may be sent again when the blob is there.
	return headErr == nil
}
