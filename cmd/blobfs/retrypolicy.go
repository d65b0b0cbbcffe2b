package main

import (
	"time"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/cmd/blobfs/internal/config"
)

// retryPolicy maps --retry-budget and --retry-attempt-timeout onto the blob
// client's policy. The client also caps the number of attempts (8 by
// default, about 20 s of back-off against a refused connection), which
// would end a retry long before a budget of minutes: the cap is raised so
// that the budget alone decides how long an outage may last, counting every
// wait at its shortest (¾ of the 10 s ceiling, after the jitter).
func retryPolicy(s *config.Settings) blob.RetryPolicy {
	const maxWait = 10 * time.Second
	budget, attempt := s.RetryBudget.D(), s.RetryAttemptTimeout.D()
	return blob.RetryPolicy{
		Budget:         budget,
		AttemptTimeout: attempt,
		MaxWait:        maxWait,
		MaxAttempts:    8 + int(budget/(maxWait*3/4)) + 1,
	}
}
