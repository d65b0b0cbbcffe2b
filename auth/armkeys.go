package auth

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/blobfs/blobfs/blob"
)

// ARMKeys hands out the account key listed by ARM and recovers from key
// rotation: when storage refuses a key that used to work, Refresh lists
// the keys again (at most once per interval, ARM's storage provider allows
// only 1,200 writes an hour) and moves to a key not yet refused; when ARM
// may not be asked again yet, it tries the account's other key.
type ARMKeys struct {
	arm      *armClient
	ref      accountRef
	interval time.Duration
	log      logrus.FieldLogger
	onFetch  func()

	refreshMu sync.Mutex // one Refresh at a time; AccountKey never waits on it

	mu          sync.Mutex
	keys        []Secret
	cur         int
	refused     map[int]bool // keys storage refused since the last listing
	lastRefetch time.Time    // zero until the first refetch after the initial listing
	changedAt   time.Time
}

var (
	_ blob.KeySource = (*ARMKeys)(nil)
	_ blob.Refresher = (*ARMKeys)(nil)
)

// AccountKey returns the key in use.
func (k *ARMKeys) AccountKey(context.Context) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return []byte(k.keys[k.cur].Reveal()), nil
}

// Refresh is called by the blob client after storage answered 403
// AuthenticationFailed. changed=true means the caller should retry with
// the key AccountKey now returns.
func (k *ARMKeys) Refresh(ctx context.Context) (bool, error) {
	k.refreshMu.Lock()
	defer k.refreshMu.Unlock()
	k.mu.Lock()
	now := time.Now()
	if !k.changedAt.IsZero() && now.Sub(k.changedAt) < refreshGrace(k.interval) {
		// Another call has just moved to a new key; this caller most
		// likely signed with the old one before that.
		k.mu.Unlock()
		return true, nil
	}
	failed := k.keys[k.cur]
	k.refused[k.cur] = true
	mayFetch := k.lastRefetch.IsZero() || now.Sub(k.lastRefetch) >= k.interval
	if mayFetch {
		k.lastRefetch = now
	}
	k.mu.Unlock()

	if mayFetch {
		k.log.WithFields(logrus.Fields{"account": k.ref.name}).Info("auth: storage refused the account key; listing the keys again (rotated?)")
		if k.onFetch != nil {
			k.onFetch()
		}
		keys, err := k.arm.listKeys(ctx, k.ref)
		if err != nil {
			k.log.WithError(err).Warn("auth: listing the keys again failed; trying the other key")
		} else if changed := k.adopt(keys, failed); changed {
			return true, nil
		}
	}
	if k.tryOther() {
		return true, nil
	}
	return false, &Error{Step: "account key for " + k.ref.name, Kind: ErrSecretRefused,
		Detail: "storage refused every key ARM lists for the account",
		Fix: fmt.Sprintf("if the keys were just rotated, ARM may lag; otherwise check that --account names the account at %s (keys are listed again at most every %v)",
			k.ref.scope(), k.interval)}
}

// refreshGrace is how long after a key change a Refresh assumes its caller
// had signed with the old key: the calls in flight at the change get their
// refusals within seconds. Refresh cannot know which key a failed request
// carried (blob.Refresher has no argument), so this is a bound on time.
func refreshGrace(interval time.Duration) time.Duration {
	return min(5*time.Second, interval)
}

// adopt takes a new listing; it reports whether the key in use changed.
func (k *ARMKeys) adopt(keys []Secret, failed Secret) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	same := len(keys) == len(k.keys)
	for i := range keys {
		if same && !keys[i].Equal(k.keys[i]) {
			same = false
		}
	}
	if same {
		return false
	}
	k.keys = keys
	k.refused = map[int]bool{}
	k.cur = 0
	for i, key := range keys {
		if !key.Equal(failed) {
			k.cur = i
			break
		}
	}
	if keys[k.cur].Equal(failed) {
		return false
	}
	k.changedAt = time.Now()
	k.log.WithFields(logrus.Fields{"account": k.ref.name, "key_index": k.cur + 1}).Info("auth: the account's keys changed; using the new one")
	return true
}

// tryOther moves to a key storage has not refused since the last listing.
func (k *ARMKeys) tryOther() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i := range k.keys {
		if !k.refused[i] && !k.keys[i].Equal(k.keys[k.cur]) {
			k.cur = i
			k.changedAt = time.Now()
			k.log.WithFields(logrus.Fields{"account": k.ref.name, "key_index": i + 1}).Info("auth: trying the account's other key")
			return true
		}
	}
	return false
}
