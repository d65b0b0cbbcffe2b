package blob

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"hash"
	"io"
)

// downloadReader is the body of a Download. When the connection fails
// mid-body (reset, truncated, stalled past the attempt timeout) it asks for
// the rest of the range again, pinned with If-Match to the ETag of the first
// answer, so the bytes it yields always come from one version of the blob.
// A whole-blob read is checked against the blob's MD5 at the end.
type downloadReader struct {
	ct   *Container
	ctx  context.Context // the Download call's: the body lives as long as it
	name string
	etag string
	next int64 // offset of the next byte to yield
	end  int64 // offset just past the last byte to yield
	body io.ReadCloser

	md5  hash.Hash // nil: nothing to verify
	want []byte

	stuck int // resumptions in a row that yielded nothing
	err   error
}

func (d *downloadReader) Read(p []byte) (int, error) {
	for {
		if d.err != nil {
			return 0, d.err
		}
		if d.next >= d.end {
			d.err = d.finish()
			return 0, d.err
		}
		if d.body == nil {
			if err := d.reopen(); err != nil {
				d.err = err
				return 0, err
			}
		}
		if rest := d.end - d.next; int64(len(p)) > rest {
			p = p[:rest]
		}
		n, err := d.body.Read(p)
		if n > 0 {
			d.next += int64(n)
			d.stuck = 0
			if d.md5 != nil {
				d.md5.Write(p[:n])
			}
		}
		if err == nil {
			return n, nil
		}
		d.body.Close()
		d.body = nil
		if err == io.EOF && d.next < d.end {
			err = &transportError{op: "GetBlob", name: d.name, err: io.ErrUnexpectedEOF}
		}
		if err != io.EOF && !d.resumable(err) {
			d.err = err
			return n, err
		}
		if n > 0 {
			return n, nil // the next Read resumes or finishes
		}
	}
}

// resumable says whether a failed body may be picked up where it stopped.
func (d *downloadReader) resumable(err error) bool {
	var te *transportError
	if !errors.As(err, &te) || d.etag == "" || d.ctx.Err() != nil {
		return false
	}
	d.stuck++
	return d.stuck < d.ct.c.retry.MaxAttempts
}

func (d *downloadReader) reopen() error {
	r, err := d.ct.blobRequest("GetBlob", "GET", d.name, nil)
	if err != nil {
		return err
	}
	r.header.Set("x-ms-range", fmt.Sprintf("bytes=%d-%d", d.next, d.end-1))
	r.header.Set("If-Match", d.etag)
	r.ok, r.idempotent = []int{206}, true
	d.ct.c.log.WithField("blob", d.name).WithField("offset", d.next).Debug("resuming an interrupted download")
	resp, err := d.ct.c.do(d.ctx, r)
	if err != nil {
		return err
	}
	d.body = resp.Body
	return nil
}

func (d *downloadReader) finish() error {
	if d.md5 != nil {
		if got := d.md5.Sum(nil); !bytes.Equal(got, d.want) {
			err := &IntegrityError{Op: "GetBlob", Name: d.name, Want: d.want, Got: got}
			d.ct.c.log.WithField("blob", d.name).Error(err.Error())
			return err
		}
	}
	return io.EOF
}

func (d *downloadReader) Close() error {
	if d.err == nil {
		d.err = errors.New("read after Close")
	}
	if d.body != nil {
		err := d.body.Close()
		d.body = nil
		return err
	}
	return nil
}

func newMD5Verifier(want []byte) (hash.Hash, []byte) {
	if len(want) != md5.Size {
		return nil, nil
	}
	return md5.New(), want
}
