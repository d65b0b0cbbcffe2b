// Package blobfake is an in-memory Blob service container with the
// semantics of the real one, for tests of code written against the
// blob.Container methods (fs.Store, stage.Store, readahead.Store): ETags
// that change on every write, If-Match and If-None-Match, staged and
// committed blocks, delimiter listings with markers, server-side copies,
// metadata, content headers, access tiers, index tags, and the errors
// *blob.Container returns (errors.Is and errors.As work on them the same
// way).
//
// Properties come back as blob.Container gives them, not only as the
// service stores them: metadata names are stored in the case they were
// sent and listed so, but a HEAD or GET answer has them lower-cased with
// MetaNamesLowered set (Go's HTTP client loses their case); Get Blob
// reports no access tier; index tags are read with GetTags only.
//
// It also lets tests shape the calls: a hook may fail a call before or
// after it is applied (an error answer, or a lost answer to a write that
// happened), a Gate holds calls until the test releases them, so races
// can be staged step by step, and every call is counted.
//
// The contract tests (contract_test.go) run the same table against the
// fake and against Azurite, so that the two cannot drift apart. Where
// Azure and Azurite differ the fake follows Azure, as blob does.
//
// The fake is one container of block blobs. Leases are not modelled:
// *blob.Container does not expose them. Nor are snapshots: the fake
// never has any, so a listing that includes them lists none.
package blobfake

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/blobfs/blobfs/blob"
	"github.com/blobfs/blobfs/fs/clock"
)

// Operation names, as the REST API (and blob.StorageError.Op) names them.
// Hooks, gates and call counts use them.
const (
	OpList          = "ListBlobs"
	OpGetProperties = "GetBlobProperties"
	OpGet           = "GetBlob"
	OpPut           = "PutBlob"
	OpPutBlock      = "PutBlock"
	OpPutBlockList  = "PutBlockList"
	OpGetBlockList  = "GetBlockList"
	OpDelete        = "DeleteBlob"
	OpSetMetadata   = "SetBlobMetadata"
	OpSetProperties = "SetBlobProperties"
	OpCopy          = "CopyBlob"
	OpGetTags       = "GetBlobTags"
)

// Limits the service enforces that the fake checks.
const (
	maxListResults = 5000
	maxBlockIDLen  = 64 // bytes, before base64
	maxTags        = 10
)

// Options configure a Store. The zero value is usable.
type Options struct {
	// Clock gives Last-Modified; nil is the real clock.
	Clock clock.Clock
	// Container names the container in copy source URLs; default "fake".
	Container string
}

// Hook decides the fate of one call: a non-nil error is returned to the
// caller. It may also sleep, to make the call slow. op is one of the Op constants, name the blob (the prefix for
// OpList, the destination for OpCopy).
type Hook func(op, name string) error

// Store is one container held in memory. It is safe for concurrent use.
type Store struct {
	clock     clock.Clock
	container string

	mu          sync.Mutex
	blobs       map[string]*entry
	uncommitted map[string]map[string][]byte // blob name → block ID → data, staged by PutBlock
	seq         uint64                       // makes ETags, copy IDs and request IDs unique
	calls       map[string]int
	before      Hook
	after       Hook
	gates       []*Gate
}

// entry is a committed blob. Its data slice is never modified in place
// (writes replace it), so readers may keep it without copying.
type entry struct {
	data   []byte
	blocks []block // committed block list; nil for a blob made by Put Blob
	// props are the blob's properties as the service holds them: metadata
	// names in the case they were sent, Tags nil (they are in tags).
	props blob.Properties
	tags  map[string]string // index tags; nil: none
}

type block struct {
	id   string
	size int64
}

// New makes an empty container.
func New(opts Options) *Store {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Container == "" {
		opts.Container = "fake"
	}
	return &Store{
		clock:       opts.Clock,
		container:   opts.Container,
		blobs:       map[string]*entry{},
		uncommitted: map[string]map[string][]byte{},
		calls:       map[string]int{},
	}
}

// SetHook installs h to run before every call; an error from it is the
// call's answer and the call is not applied (as a refused request). nil
// removes it. The hook runs without the store's lock held, so it may call
// the store (to act as another client in the middle of a call).
func (s *Store) SetHook(h Hook) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.before = h
}

// SetAfterHook installs h to run after every write was applied; an error
// from it is returned although the write happened, as when the answer to
// a request is lost. nil removes it.
func (s *Store) SetAfterHook(h Hook) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.after = h
}

// Calls is how many calls of op were made, failed ones included.
func (s *Store) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// CallCounts is a copy of all call counts by op.
func (s *Store) CallCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		m[k] = v
	}
	return m
}

// ResetCalls sets all call counts back to zero.
func (s *Store) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.calls)
}

// Injected returns an error answer of the kind a service failure gives:
// 500 InternalError, which matches blob.ErrUnavailable. Hooks return it
// to simulate an outage.
func Injected(op, name string) error {
	return &blob.StorageError{Op: op, Name: name, Status: http.StatusInternalServerError, Code: "InternalError", Message: "injected by blobfake"}
}

// ErrorFor returns the answer the service gives with this status and code,
// e.g. ErrorFor(OpPut, name, 503, "ServerBusy"), for hooks.
func ErrorFor(op, name string, status int, code string) error {
	return &blob.StorageError{Op: op, Name: name, Status: status, Code: code, Message: "injected by blobfake"}
}

// call is the common prologue of every operation: count it, run the hook
// and the gates. It returns the error to answer with, if any.
func (s *Store) call(ctx context.Context, op, name string) error {
	s.mu.Lock()
	s.calls[op]++
	hook := s.before
	gates := s.matching(op, name, false)
	s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %q: %w", op, name, err)
	}
	for _, g := range gates {
		if err := g.hold(ctx, op, name); err != nil {
			return err
		}
	}
	if hook != nil {
		if err := hook(op, name); err != nil {
			return err
		}
	}
	return nil
}

// done is the epilogue of a write that was applied: gates that hold after
// the write, then the after-hook.
func (s *Store) done(ctx context.Context, op, name string) error {
	s.mu.Lock()
	hook := s.after
	gates := s.matching(op, name, true)
	s.mu.Unlock()
	for _, g := range gates {
		if err := g.hold(ctx, op, name); err != nil {
			return err
		}
	}
	if hook != nil {
		return hook(op, name)
	}
	return nil
}

func (s *Store) stErr(op, name string, status int, code, msg string) error {
	s.seq++
	return &blob.StorageError{Op: op, Name: name, Status: status, Code: code, Message: msg, RequestID: fmt.Sprintf("blobfake-%d", s.seq)}
}

func (s *Store) notFound(op, name string) error {
	return s.stErr(op, name, http.StatusNotFound, "BlobNotFound", "The specified blob does not exist.")
}

// checkName is blob's check: ValidateName, letting through the single
// trailing '/' of a directory marker.
func checkName(name string) error {
	if n := strings.TrimSuffix(name, "/"); n != name && n != "" {
		return blob.ValidateName(n)
	}
	return blob.ValidateName(name)
}

// newVersion gives e a new ETag and Last-Modified, as every write does.
// The service's Last-Modified has a resolution of one second.
func (s *Store) newVersion(e *entry) {
	s.seq++
	e.props.ETag = fmt.Sprintf("\"0x8DC%013X\"", s.seq)
	e.props.LastModified = s.clock.Now().UTC().Truncate(time.Second)
}

// precondition checks cond against the blob as it is (nil: absent) for a
// write that creates or replaces it (Put Blob, Put Block List, the
// destination of a copy).
func (s *Store) precondition(op, name string, e *entry, cond blob.Conditions) error {
	switch {
	case cond.IfMatch != "" && e == nil:
		return s.stErr(op, name, http.StatusPreconditionFailed, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met.")
	case cond.IfMatch != "" && cond.IfMatch != "*" && cond.IfMatch != e.props.ETag:
		return s.stErr(op, name, http.StatusPreconditionFailed, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met.")
	case cond.IfNoneMatch == "*" && e != nil:
		return s.stErr(op, name, http.StatusConflict, "BlobAlreadyExists", "The specified blob already exists.")
	case cond.IfNoneMatch != "" && cond.IfNoneMatch != "*" && e != nil && cond.IfNoneMatch == e.props.ETag:
		return s.stErr(op, name, http.StatusPreconditionFailed, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met.")
	}
	return nil
}

// existing finds the blob a call on an existing blob is about and checks
// cond against it. An If-Match on a missing blob fails as a condition
// (412), as Azurite answers and HTTP says; without one it is a 404.
func (s *Store) existing(op, name string, cond blob.Conditions) (*entry, error) {
	e := s.blobs[name]
	if e == nil && cond.IfMatch != "" {
		return nil, s.stErr(op, name, http.StatusPreconditionFailed, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met.")
	}
	if e == nil {
		return nil, s.notFound(op, name)
	}
	if cond.IfNoneMatch == "*" || (cond.IfNoneMatch != "" && cond.IfNoneMatch == e.props.ETag) ||
		(cond.IfMatch != "" && cond.IfMatch != "*" && cond.IfMatch != e.props.ETag) {
		return nil, s.stErr(op, name, http.StatusPreconditionFailed, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met.")
	}
	return e, nil
}

// copyProps returns a copy of e's properties, as stored, that the caller
// may keep.
func (e *entry) copyProps() *blob.Properties {
	p := e.props
	p.Metadata = copyMetadata(e.props.Metadata)
	if e.props.ContentMD5 != nil {
		p.ContentMD5 = bytes.Clone(e.props.ContentMD5)
	}
	return &p
}

// headProps are e's properties as blob.Container's GetProperties gives
// them: the service sends metadata names in the case they were stored,
// but Go's HTTP client canonicalises header names, so blob lower-cases
// them and says so (MetaNamesLowered). Tags are not in a HEAD's answer,
// only their count.
func (e *entry) headProps() *blob.Properties {
	p := e.copyProps()
	if len(p.Metadata) > 0 {
		lowered := make(map[string]string, len(p.Metadata))
		for k, v := range p.Metadata {
			lowered[strings.ToLower(k)] = v
		}
		p.Metadata, p.MetaNamesLowered = lowered, true
	}
	return p
}

// getProps are e's properties as Download gives them: a HEAD's, but Get
// Blob does not report the access tier (neither Azure nor Azurite sends
// x-ms-access-tier with it).
func (e *entry) getProps() *blob.Properties {
	p := e.headProps()
	p.AccessTier, p.AccessTierInferred, p.ArchiveStatus = "", false, ""
	return p
}

// listProps are e's properties as a listing gives them: metadata names as
// stored (only when asked for), no copy properties (blob does not read
// them from a listing), no tags but their count.
func (e *entry) listProps(withMetadata bool) *blob.Properties {
	p := e.copyProps()
	p.CopyStatus, p.CopyID, p.CopySource = "", "", ""
	if !withMetadata {
		p.Metadata = nil
	}
	return p
}

// newProps are the properties a Put Blob or Put Block List gives the blob
// it writes: everything opts carries replaces what the blob had. A blob
// written without a tier has the account's default, Hot, inferred.
func newProps(name string, size int64, md map[string]string, opts blob.PutOptions, tier string) blob.Properties {
	p := blob.Properties{Name: name, Size: size, ContentType: contentType(opts.ContentType), Metadata: md,
		ContentHeaders: opts.ContentHeaders, BlobType: "BlockBlob", AccessTier: tier, TagCount: len(opts.Tags)}
	if tier == "" {
		p.AccessTier, p.AccessTierInferred = "Hot", true
	}
	return p
}

func copyMetadata(md map[string]string) map[string]string {
	if len(md) == 0 {
		return nil
	}
	m := make(map[string]string, len(md))
	for k, v := range md {
		m[k] = v
	}
	return m
}

// metadata is md as the service stores it: names in the case blob sends
// them (the service keeps it), values without surrounding blanks (HTTP
// trims them). Of names that differ only in case blob sends one, the
// lower-case one, else the first in order; so does the fake keep one. It
// refuses names that are not C# identifiers, as the service does.
func (s *Store) metadata(op, name string, md map[string]string) (map[string]string, error) {
	if len(md) == 0 {
		return nil, nil
	}
	names := make([]string, 0, len(md))
	for k := range md {
		if !identifier(k) {
			return nil, s.stErr(op, name, http.StatusBadRequest, "InvalidMetadata", fmt.Sprintf("metadata name %q is not a valid C# identifier", k))
		}
		names = append(names, k)
	}
	sort.Strings(names)
	m := make(map[string]string, len(md))
	kept := make(map[string]string, len(md)) // lower-cased name → the name kept
	for _, k := range names {
		l := strings.ToLower(k)
		if prev, dup := kept[l]; dup {
			if k != l {
				continue
			}
			delete(m, prev)
		}
		kept[l] = k
		m[k] = strings.Trim(md[k], " \t")
	}
	return m, nil
}

// tier checks a Put's access tier as the service does and gives it in the
// service's spelling; "" stays "" (the account's default).
func (s *Store) tier(op, name, t string) (string, error) {
	if t == "" {
		return "", nil
	}
	for _, known := range []string{"Hot", "Cool", "Cold", "Archive"} {
		if strings.EqualFold(t, known) {
			return known, nil
		}
	}
	return "", s.stErr(op, name, http.StatusBadRequest, "InvalidHeaderValue", fmt.Sprintf("access tier %q is not one a block blob may have", t))
}

// checkTags refuses what the service refuses of x-ms-tags: more than 10
// tags, a name of 0 or more than 128 bytes, a value of more than 256,
// characters other than those tagText lets through.
func (s *Store) checkTags(op, name string, tags map[string]string) error {
	if len(tags) > maxTags {
		return s.stErr(op, name, http.StatusBadRequest, "InvalidTag", fmt.Sprintf("%d tags; a blob may have at most %d", len(tags), maxTags))
	}
	for k, v := range tags {
		if k == "" || len(k) > 128 || len(v) > 256 || !tagText(k) || !tagText(v) {
			return s.stErr(op, name, http.StatusBadRequest, "InvalidTag", fmt.Sprintf("tag %q=%q: a name has 1 to 128 characters, a value up to 256, of letters, digits, space and + - . / : = _", k, v))
		}
	}
	return nil
}

func tagText(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune(" +-./:=_", r):
		default:
			return false
		}
	}
	return true
}

func copyTags(tags map[string]string) map[string]string {
	if len(tags) == 0 {
		return nil
	}
	return maps.Clone(tags)
}

func identifier(k string) bool {
	if k == "" {
		return false
	}
	for i, r := range k {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func contentType(ct string) string {
	if ct == "" {
		return "application/octet-stream"
	}
	return ct
}

// GetProperties reads a blob's properties and metadata.
func (s *Store) GetProperties(ctx context.Context, name string) (*blob.Properties, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := s.call(ctx, OpGetProperties, name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.blobs[name]
	if e == nil {
		return nil, s.notFound(OpGetProperties, name)
	}
	return e.headProps(), nil
}

// Download reads count bytes from offset (count < 0: to the end), as
// blob.Container.Download does: the Properties describe the whole blob,
// reading at or past the end is ErrInvalidRange, and a whole read is
// checked against the blob's MD5 at EOF.
func (s *Store) Download(ctx context.Context, name string, offset, count int64, cond blob.Conditions) (io.ReadCloser, *blob.Properties, error) {
	if err := checkName(name); err != nil {
		return nil, nil, err
	}
	if count == 0 {
		return io.NopCloser(strings.NewReader("")), nil, fmt.Errorf("GetBlob %q: empty range", name)
	}
	if err := s.call(ctx, OpGet, name); err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.blobs[name]
	switch {
	case e == nil && cond.IfMatch != "":
		return nil, nil, s.stErr(OpGet, name, http.StatusPreconditionFailed, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met.")
	case e == nil:
		return nil, nil, s.notFound(OpGet, name)
	case cond.IfMatch != "" && cond.IfMatch != "*" && cond.IfMatch != e.props.ETag:
		return nil, nil, s.stErr(OpGet, name, http.StatusPreconditionFailed, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met.")
	case cond.IfNoneMatch == "*" || (cond.IfNoneMatch != "" && cond.IfNoneMatch == e.props.ETag):
		return nil, nil, s.stErr(OpGet, name, http.StatusNotModified, "ConditionNotMet", "")
	}
	if e.props.AccessTier == "Archive" {
		return nil, nil, s.stErr(OpGet, name, http.StatusConflict, "BlobArchived", "This operation is not permitted on an archived blob.")
	}
	size := int64(len(e.data))
	ranged := count > 0 || offset > 0
	if ranged && offset >= size {
		return nil, nil, s.stErr(OpGet, name, http.StatusRequestedRangeNotSatisfiable, "InvalidRange",
			fmt.Sprintf("offset %d is at or past the end of the %d-byte blob", offset, size))
	}
	end := size
	if count > 0 && offset+count < end {
		end = offset + count
	}
	r := &reader{r: bytes.NewReader(e.data[offset:end]), name: name}
	if !ranged && len(e.props.ContentMD5) == md5.Size {
		r.want = e.props.ContentMD5
		r.h = md5.New()
	}
	return r, e.getProps(), nil
}

// reader is a Download's body: a snapshot of the version read.
type reader struct {
	r      *bytes.Reader
	name   string
	h      hash.Hash // nil: not checked
	want   []byte
	err    error
	closed bool
}

func (r *reader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, errors.New("read after Close")
	}
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.r.Read(p)
	if r.h != nil {
		r.h.Write(p[:n])
	}
	if err == io.EOF && r.h != nil {
		if got := r.h.Sum(nil); !bytes.Equal(got, r.want) {
			r.err = &blob.IntegrityError{Op: OpGet, Name: r.name, Want: r.want, Got: got}
			return n, r.err
		}
	}
	return n, err
}

func (r *reader) Close() error {
	r.closed = true
	return nil
}

// Upload writes a whole blob (Put Blob). The service stores the MD5 the
// call carries (opts.ContentMD5, else the data's) and refuses data that
// does not match it; the blob's staged blocks are dropped.
func (s *Store) Upload(ctx context.Context, name string, data []byte, opts blob.PutOptions) (*blob.Properties, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := s.call(ctx, OpPut, name); err != nil {
		return nil, err
	}
	sum := md5.Sum(data)
	s.mu.Lock()
	if opts.ContentMD5 != nil && !bytes.Equal(opts.ContentMD5, sum[:]) {
		defer s.mu.Unlock()
		return nil, s.stErr(OpPut, name, http.StatusBadRequest, "Md5Mismatch", "The MD5 value specified in the request did not match with the MD5 value calculated by the server.")
	}
	md, err := s.metadata(OpPut, name, opts.Metadata)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	tier, err := s.tier(OpPut, name, opts.AccessTier)
	if err == nil {
		err = s.checkTags(OpPut, name, opts.Tags)
	}
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	old := s.blobs[name]
	if err := s.precondition(OpPut, name, old, opts.Conditions); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	e := &entry{data: bytes.Clone(data)}
	if e.data == nil {
		e.data = []byte{}
	}
	e.props = newProps(name, int64(len(data)), md, opts, tier)
	e.props.ContentMD5 = sum[:]
	e.tags = copyTags(opts.Tags)
	s.newVersion(e)
	s.blobs[name] = e
	delete(s.uncommitted, name)
	// The answer to Put Blob carries the ETag, Last-Modified and the MD5
	// of the request's body, not the size or content type.
	ans := &blob.Properties{Name: name, ETag: e.props.ETag, LastModified: e.props.LastModified, ContentMD5: bytes.Clone(sum[:])}
	s.mu.Unlock()
	if err := s.done(ctx, OpPut, name); err != nil {
		return nil, err
	}
	return ans, nil
}

// PutBlock stages a block for a later PutBlockList. The blob, if it
// exists, does not change (nor does its ETag).
func (s *Store) PutBlock(ctx context.Context, name, id string, data io.ReaderAt, size int64) error {
	if err := checkName(name); err != nil {
		return err
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(io.NewSectionReader(data, 0, size), buf); err != nil {
		return fmt.Errorf("PutBlock %q: reading the block: %w", name, err)
	}
	if err := s.call(ctx, OpPutBlock, name); err != nil {
		return err
	}
	s.mu.Lock()
	raw, err := base64.StdEncoding.DecodeString(id)
	switch {
	case err != nil || id == "":
		defer s.mu.Unlock()
		return s.stErr(OpPutBlock, name, http.StatusBadRequest, "InvalidQueryParameterValue", fmt.Sprintf("block ID %q is not base64", id))
	case len(raw) > maxBlockIDLen:
		defer s.mu.Unlock()
		return s.stErr(OpPutBlock, name, http.StatusBadRequest, "InvalidQueryParameterValue", fmt.Sprintf("block ID %q is longer than %d bytes", id, maxBlockIDLen))
	}
	// Azure wants all block IDs of a blob to have the same length
	// (Azurite does not check).
	if other := s.someBlockID(name); other != "" && len(other) != len(id) {
		defer s.mu.Unlock()
		return s.stErr(OpPutBlock, name, http.StatusBadRequest, "InvalidBlobOrBlock", fmt.Sprintf("block ID %q does not have the length of the blob's other block IDs (%q)", id, other))
	}
	if s.uncommitted[name] == nil {
		s.uncommitted[name] = map[string][]byte{}
	}
	s.uncommitted[name][id] = buf
	s.mu.Unlock()
	return s.done(ctx, OpPutBlock, name)
}

func (s *Store) someBlockID(name string) string {
	for id := range s.uncommitted[name] {
		return id
	}
	if e := s.blobs[name]; e != nil && len(e.blocks) > 0 {
		return e.blocks[0].id
	}
	return ""
}

// PutBlockList commits the blocks, in order, as the blob's new content.
// Each ID is looked up among the staged blocks first, then among the
// committed ones (the <Latest> of blob's request). After the commit the
// blob has exactly these blocks; every other staged block of it is
// dropped. The blob has an MD5 only if opts gives one.
func (s *Store) PutBlockList(ctx context.Context, name string, ids []string, opts blob.PutOptions) (*blob.Properties, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := s.call(ctx, OpPutBlockList, name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	md, err := s.metadata(OpPutBlockList, name, opts.Metadata)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	tier, err := s.tier(OpPutBlockList, name, opts.AccessTier)
	if err == nil {
		err = s.checkTags(OpPutBlockList, name, opts.Tags)
	}
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	old := s.blobs[name]
	if err := s.precondition(OpPutBlockList, name, old, opts.Conditions); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	staged := s.uncommitted[name]
	committed := map[string][]byte{}
	if old != nil {
		off := int64(0)
		for _, b := range old.blocks {
			committed[b.id] = old.data[off : off+b.size]
			off += b.size
		}
	}
	var data []byte
	blocks := make([]block, 0, len(ids))
	for _, id := range ids {
		b, ok := staged[id]
		if !ok {
			b, ok = committed[id]
		}
		if !ok {
			s.mu.Unlock()
			return nil, s.stErr(OpPutBlockList, name, http.StatusBadRequest, "InvalidBlockList", fmt.Sprintf("block %q is neither staged nor committed", id))
		}
		data = append(data, b...)
		blocks = append(blocks, block{id: id, size: int64(len(b))})
	}
	if data == nil {
		data = []byte{}
	}
	e := &entry{data: data, blocks: blocks, tags: copyTags(opts.Tags)}
	e.props = newProps(name, int64(len(data)), md, opts, tier)
	if opts.ContentMD5 != nil {
		e.props.ContentMD5 = bytes.Clone(opts.ContentMD5)
	}
	s.newVersion(e)
	s.blobs[name] = e
	delete(s.uncommitted, name)
	// The service's answer also has an MD5, of the request body (the
	// block list), which is no use to anyone: the fake gives none.
	ans := &blob.Properties{Name: name, ETag: e.props.ETag, LastModified: e.props.LastModified}
	s.mu.Unlock()
	if err := s.done(ctx, OpPutBlockList, name); err != nil {
		return nil, err
	}
	return ans, nil
}

// GetBlockList returns the committed blocks of a blob and its ETag, as
// blob.Container.GetBlockList does; a blob made by Put Blob has none.
func (s *Store) GetBlockList(ctx context.Context, name string) ([]blob.Block, string, error) {
	if err := checkName(name); err != nil {
		return nil, "", err
	}
	if err := s.call(ctx, OpGetBlockList, name); err != nil {
		return nil, "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.blobs[name]
	if e == nil {
		return nil, "", s.notFound(OpGetBlockList, name)
	}
	out := make([]blob.Block, len(e.blocks))
	for i, b := range e.blocks {
		out[i] = blob.Block{ID: b.id, Size: b.size}
	}
	return out, e.props.ETag, nil
}

// UncommittedBlocks lists the IDs of the blocks staged for name and not
// yet committed, sorted, for tests that check nothing is left behind.
// (The service offers this as Get Block List with blocklisttype=uncommitted.)
func (s *Store) UncommittedBlocks(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id := range s.uncommitted[name] {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Delete removes a blob and the blocks staged for it.
func (s *Store) Delete(ctx context.Context, name string, cond blob.Conditions) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := s.call(ctx, OpDelete, name); err != nil {
		return err
	}
	s.mu.Lock()
	if _, err := s.existing(OpDelete, name, cond); err != nil {
		s.mu.Unlock()
		return err
	}
	delete(s.blobs, name)
	delete(s.uncommitted, name)
	s.mu.Unlock()
	return s.done(ctx, OpDelete, name)
}

// SetMetadata replaces all of a blob's metadata; the blob gets a new ETag.
// Like blob's, the answer carries only the ETag and Last-Modified.
func (s *Store) SetMetadata(ctx context.Context, name string, md map[string]string, cond blob.Conditions) (*blob.Properties, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := s.call(ctx, OpSetMetadata, name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	e, err := s.existing(OpSetMetadata, name, cond)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	m, err := s.metadata(OpSetMetadata, name, md)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	ne := *e
	ne.props.Metadata = m
	s.newVersion(&ne)
	s.blobs[name] = &ne
	ans := &blob.Properties{Name: name, ETag: ne.props.ETag, LastModified: ne.props.LastModified}
	s.mu.Unlock()
	if err := s.done(ctx, OpSetMetadata, name); err != nil {
		return nil, err
	}
	return ans, nil
}

// SetContentType sets a blob's Content-Type and MD5 (Set Blob
// Properties): an MD5 not given is cleared, and so are the other content
// headers (Cache-Control...), which blob does not send: the service clears
// the content headers it is not sent. The blob gets a new ETag.
func (s *Store) SetContentType(ctx context.Context, name, contentType string, md5sum []byte, cond blob.Conditions) (*blob.Properties, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := s.call(ctx, OpSetProperties, name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	e, err := s.existing(OpSetProperties, name, cond)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	ne := *e
	ne.props.ContentType = contentType
	ne.props.ContentMD5 = bytes.Clone(md5sum)
	ne.props.ContentHeaders = blob.ContentHeaders{}
	ne.props.CopyStatus, ne.props.CopyID, ne.props.CopySource = "", "", ""
	s.newVersion(&ne)
	s.blobs[name] = &ne
	ans := &blob.Properties{Name: name, ETag: ne.props.ETag, LastModified: ne.props.LastModified}
	s.mu.Unlock()
	if err := s.done(ctx, OpSetProperties, name); err != nil {
		return nil, err
	}
	return ans, nil
}

// CopySourceURL is the URL blob.Container would send as the copy source
// for name, and that the copy's CopySource then shows.
func (s *Store) CopySourceURL(name string) string {
	segs := strings.Split(name, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return "http://127.0.0.1/blobfake/" + url.PathEscape(s.container) + "/" + strings.Join(segs, "/")
}

// Copy copies req.Src to req.Dst on the service side, synchronously: the
// copy is finished when it returns. With req.Metadata nil (or empty: blob
// then sends no metadata) Dst gets Src's metadata, otherwise exactly it.
// SrcCond.IfMatch pins Src's version; DstCond is checked against Dst. Like
// blob's, it returns Dst's full properties.
func (s *Store) Copy(ctx context.Context, req blob.CopyRequest) (*blob.Properties, error) {
	if _, err := s.copy(ctx, req.Dst, req.Src, req.Metadata, req.SrcCond, req.DstCond, nil); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.blobs[req.Dst]; e != nil {
		return e.headProps(), nil
	}
	return nil, s.notFound(OpGetProperties, req.Dst)
}

// CopyFrom copies the version of a blob src describes (pinned to its
// ETag) to dst and returns src's properties under dst's name, ETag and
// Last-Modified, with md as metadata when md is not nil, exactly as
// blob.Container.CopyFrom builds them. Like it, it carries src's index
// tags and explicit access tier over (Copy Blob does not), reading the
// tags (a GetBlobTags call) when src counts some it does not hold.
func (s *Store) CopyFrom(ctx context.Context, dst string, src *blob.Properties, md map[string]string, dstCond blob.Conditions) (*blob.Properties, error) {
	keep := *src
	if keep.TagCount > 0 && keep.Tags == nil {
		tags, err := s.GetTags(ctx, src.Name)
		if err != nil {
			return nil, fmt.Errorf("CopyBlob %q to %q: reading the index tags to keep them: %w", src.Name, dst, err)
		}
		keep.Tags = tags
	}
	got, err := s.copy(ctx, dst, src.Name, md, blob.Conditions{IfMatch: src.ETag}, dstCond, &keep)
	if err != nil {
		return nil, err
	}
	p := keep
	p.Name, p.ETag, p.LastModified = dst, got.ETag, got.LastModified
	p.CopyStatus, p.CopyID, p.CopySource = got.CopyStatus, got.CopyID, got.CopySource
	if md != nil {
		p.Metadata = md
	}
	return &p, nil
}

// copy applies a copy and returns what the service's answer carries:
// ETag, Last-Modified, copy ID and status. The copy has src's content,
// content headers and metadata (or md), but neither its index tags nor an
// explicit tier (as on Azure): those come from keep, as blob sends them.
func (s *Store) copy(ctx context.Context, dst, src string, md map[string]string, srcCond, dstCond blob.Conditions, keep *blob.Properties) (*blob.Properties, error) {
	if err := checkName(src); err != nil {
		return nil, err
	}
	if err := checkName(dst); err != nil {
		return nil, err
	}
	if err := s.call(ctx, OpCopy, dst); err != nil {
		return nil, err
	}
	s.mu.Lock()
	se := s.blobs[src]
	if se == nil {
		defer s.mu.Unlock()
		return nil, s.stErr(OpCopy, dst, http.StatusNotFound, "BlobNotFound", "The specified blob does not exist.")
	}
	if srcCond.IfMatch != "" && srcCond.IfMatch != "*" && srcCond.IfMatch != se.props.ETag {
		defer s.mu.Unlock()
		return nil, s.stErr(OpCopy, dst, http.StatusPreconditionFailed, "SourceConditionNotMet", "The source condition specified using HTTP conditional header(s) is not met.")
	}
	if err := s.precondition(OpCopy, dst, s.blobs[dst], dstCond); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	m := copyMetadata(se.props.Metadata)
	if len(md) > 0 {
		var err error
		if m, err = s.metadata(OpCopy, dst, md); err != nil {
			s.mu.Unlock()
			return nil, err
		}
	}
	var tags map[string]string
	tier := ""
	if keep != nil {
		tags = copyTags(keep.Tags)
		if t := keep.ExplicitTier(); !strings.EqualFold(t, "Archive") {
			tier = t
		}
	}
	if err := s.checkTags(OpCopy, dst, tags); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	tier, err := s.tier(OpCopy, dst, tier)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	e := &entry{data: se.data, blocks: append([]block(nil), se.blocks...), tags: tags}
	e.props = *se.copyProps()
	e.props.Name = dst
	e.props.Metadata = m
	e.props.TagCount = len(tags)
	e.props.AccessTier, e.props.AccessTierInferred, e.props.ArchiveStatus = "Hot", true, ""
	if tier != "" {
		e.props.AccessTier, e.props.AccessTierInferred = tier, false
	}
	s.newVersion(e)
	e.props.CopyStatus = "success"
	e.props.CopyID = fmt.Sprintf("%08x-0000-4000-8000-%012x", s.seq, s.seq)
	e.props.CopySource = s.CopySourceURL(src)
	s.blobs[dst] = e
	delete(s.uncommitted, dst)
	ans := &blob.Properties{Name: dst, ETag: e.props.ETag, LastModified: e.props.LastModified, CopyStatus: e.props.CopyStatus, CopyID: e.props.CopyID}
	s.mu.Unlock()
	if err := s.done(ctx, OpCopy, dst); err != nil {
		return nil, err
	}
	return ans, nil
}

// List returns one page of the committed blobs under opts.Prefix, in name
// order. With a delimiter, names that have it after the prefix are rolled
// up into one prefix each. A page holds at most MaxResults entries
// (5,000 when 0 or more), blobs and prefixes together; NextMarker resumes
// after its last entry and is empty on the last page. Listed blobs carry
// what a listing carries: no copy properties, metadata only when asked
// and with its names as stored.
func (s *Store) List(ctx context.Context, opts blob.ListOptions) (*blob.ListPage, error) {
	if err := s.call(ctx, OpList, opts.Prefix); err != nil {
		return nil, err
	}
	limit := opts.MaxResults
	if limit <= 0 || limit > maxListResults {
		limit = maxListResults
	}
	after, err := decodeMarker(opts.Marker)
	if err != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		return nil, s.stErr(OpList, s.container, http.StatusBadRequest, "OutOfRangeInput", "the marker is not one this service gave")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.blobs))
	for n := range s.blobs {
		if strings.HasPrefix(n, opts.Prefix) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	page := &blob.ListPage{}
	last := ""
	for _, n := range names {
		item, isPrefix := n, false
		if opts.Delimiter != "" {
			if i := strings.Index(n[len(opts.Prefix):], opts.Delimiter); i >= 0 {
				item, isPrefix = n[:len(opts.Prefix)+i+len(opts.Delimiter)], true
			}
		}
		if after != "" && item <= after {
			continue
		}
		if isPrefix && item == last {
			continue // rolled up already
		}
		if len(page.Blobs)+len(page.Prefixes) == limit {
			page.NextMarker = encodeMarker(last)
			break
		}
		last = item
		if isPrefix {
			page.Prefixes = append(page.Prefixes, item)
			continue
		}
		page.Blobs = append(page.Blobs, s.blobs[n].listProps(opts.IncludeMetadata))
	}
	return page, nil
}

// Markers are opaque to callers, as the service's are: the last name or
// prefix listed, encoded.
func encodeMarker(after string) string {
	return "2!" + base64.RawURLEncoding.EncodeToString([]byte(after))
}

func decodeMarker(m string) (string, error) {
	if m == "" {
		return "", nil
	}
	rest, ok := strings.CutPrefix(m, "2!")
	if !ok {
		return "", errors.New("bad marker")
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	return string(b), err
}

// Names lists every committed blob, sorted: a test's view of the whole
// container without going through List.
func (s *Store) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.blobs))
	for n := range s.blobs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Content returns a blob's bytes and properties without counting a call
// or running hooks: for a test's assertions. The properties are all the
// fake holds: metadata names in the case they were sent, the index tags.
func (s *Store) Content(name string) ([]byte, *blob.Properties, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.blobs[name]
	if e == nil {
		return nil, nil, false
	}
	p := e.copyProps()
	p.Tags = copyTags(e.tags)
	return bytes.Clone(e.data), p, true
}

// GetTags reads a blob's index tags (Get Blob Tags); a blob without any
// has an empty map, as blob.Container.GetTags gives.
func (s *Store) GetTags(ctx context.Context, name string) (map[string]string, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := s.call(ctx, OpGetTags, name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.blobs[name]
	if e == nil {
		return nil, s.notFound(OpGetTags, name)
	}
	tags := make(map[string]string, len(e.tags))
	maps.Copy(tags, e.tags)
	return tags, nil
}

// The fake answers for the methods the mount's stores are made of.
var _ interface {
	List(ctx context.Context, opts blob.ListOptions) (*blob.ListPage, error)
	GetProperties(ctx context.Context, name string) (*blob.Properties, error)
	Download(ctx context.Context, name string, offset, count int64, cond blob.Conditions) (io.ReadCloser, *blob.Properties, error)
	Upload(ctx context.Context, name string, data []byte, opts blob.PutOptions) (*blob.Properties, error)
	PutBlock(ctx context.Context, name, id string, data io.ReaderAt, size int64) error
	PutBlockList(ctx context.Context, name string, ids []string, opts blob.PutOptions) (*blob.Properties, error)
	GetBlockList(ctx context.Context, name string) ([]blob.Block, string, error)
	Delete(ctx context.Context, name string, cond blob.Conditions) error
	SetMetadata(ctx context.Context, name string, md map[string]string, cond blob.Conditions) (*blob.Properties, error)
	SetContentType(ctx context.Context, name, contentType string, md5 []byte, cond blob.Conditions) (*blob.Properties, error)
	Copy(ctx context.Context, req blob.CopyRequest) (*blob.Properties, error)
	CopyFrom(ctx context.Context, dst string, src *blob.Properties, md map[string]string, dstCond blob.Conditions) (*blob.Properties, error)
	GetTags(ctx context.Context, name string) (map[string]string, error)
} = (*Store)(nil)
