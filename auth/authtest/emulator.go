// Package authtest is a small, strict emulator of the Azure Instance
// Metadata Service (managed identity tokens, instance metadata, and the
// App Service IDENTITY_ENDPOINT variant) and of the Azure Resource Manager
// calls auth makes (listKeys, read an account, list a subscription's
// accounts). IMDS and ARM listen on separate loopback ports so that tests
// can see which token went where. It refuses what Azure refuses (a token
// request without Metadata: true or api-version, an ARM call without a
// valid, unexpired token for ARM's audience) and answers errors in Azure's
// JSON shapes.
package authtest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Defaults of Options.
const (
	DefaultTenant        = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	DefaultSubscription  = "11111111-2222-3333-4444-555555555555"
	DefaultResourceGroup = "blobfs-vm-rg"
	DefaultVMName        = "blobfs-vm"
)

// Identity is a managed identity attached to the emulated VM, with the
// roles it lacks.
type Identity struct {
	ClientID   string // user-assigned: required; system: generated when empty
	ObjectID   string // generated when empty
	ResourceID string // user-assigned: …/userAssignedIdentities/NAME; generated when empty
	// DenyListKeys takes away Microsoft.Storage/storageAccounts/listKeys/action.
	DenyListKeys bool
	// DenyRead takes away Microsoft.Storage/storageAccounts/read (reading
	// an account, listing the subscription's accounts).
	DenyRead bool
}

// Account is a storage account known to ARM.
type Account struct {
	Name          string
	ResourceGroup string // default Options.ResourceGroup
	Key1, Key2    string
	// SharedKeyDisabled makes properties.allowSharedKeyAccess false.
	SharedKeyDisabled bool
}

// Options configure the emulator. The zero value is a VM with a system
// identity allowed everything and no storage accounts.
type Options struct {
	Tenant, Subscription, ResourceGroup, VMName string

	Accounts []Account

	System           Identity
	NoSystemIdentity bool
	UserAssigned     []Identity

	// TokenTTL is the lifetime of minted tokens; default 1 h.
	TokenTTL time.Duration
	// IdentityHeader, when set, also serves the App Service protocol at
	// IdentityEndpoint(), requiring this X-IDENTITY-HEADER.
	IdentityHeader string
	// PageSize, when set, splits the subscription's account list into
	// pages of this many linked by nextLink.
	PageSize int

	// Listen addresses; default 127.0.0.1:0. Only loopback is accepted.
	IMDSAddr, ARMAddr string
}

// Fault is a scripted misbehaviour for the next request to IMDS or ARM.
type Fault struct {
	Status     int           // answer this status, with an error body in the service's shape
	Code       string        // the error code in that body; a default per status when empty
	RetryAfter time.Duration // sent as Retry-After, in whole seconds (rounded up)
	Drop       bool          // close the connection without answering instead
}

// Request is one request the emulator received.
type Request struct {
	Server string // "imds" or "arm"
	Kind   string // "token", "instance", "appservice-token", "listKeys", "getAccount", "listAccounts", "unknown"
	Method string
	Path   string
	Query  string
	Header http.Header
	Status int // what was answered; 0 for a dropped connection
	// Identity is the client id of the identity a token was minted for, or
	// of the caller on ARM.
	Identity string
}

// Server is a running emulator.
type Server struct {
	opts Options

	imds, arm *listener

	mu         sync.Mutex
	accounts   []*Account
	system     *Identity
	users      []*Identity
	ttl        time.Duration
	tokens     map[string]minted
	imdsFaults []Fault
	armFaults  []Fault
	requests   []Request
}

// minted records a token the emulator handed out.
type minted struct {
	claims   claims
	identity *Identity
}

// Start runs an emulator until Close.
func Start(opts Options) (*Server, error) {
	if opts.Tenant == "" {
		opts.Tenant = DefaultTenant
	}
	if opts.Subscription == "" {
		opts.Subscription = DefaultSubscription
	}
	if opts.ResourceGroup == "" {
		opts.ResourceGroup = DefaultResourceGroup
	}
	if opts.VMName == "" {
		opts.VMName = DefaultVMName
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = time.Hour
	}
	s := &Server{opts: opts, ttl: opts.TokenTTL, tokens: map[string]minted{}}
	for _, a := range opts.Accounts {
		a := a
		if a.ResourceGroup == "" {
			a.ResourceGroup = opts.ResourceGroup
		}
		s.accounts = append(s.accounts, &a)
	}
	if !opts.NoSystemIdentity {
		sys := opts.System
		if sys.ClientID == "" {
			sys.ClientID = randomGUID()
		}
		if sys.ObjectID == "" {
			sys.ObjectID = randomGUID()
		}
		sys.ResourceID = ""
		s.system = &sys
	}
	for _, u := range opts.UserAssigned {
		u := u
		if u.ClientID == "" {
			return nil, errors.New("authtest: a user-assigned identity needs a ClientID")
		}
		if u.ObjectID == "" {
			u.ObjectID = randomGUID()
		}
		if u.ResourceID == "" {
			u.ResourceID = fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-%s",
				opts.Subscription, opts.ResourceGroup, u.ClientID)
		}
		s.users = append(s.users, &u)
	}
	var err error
	if s.imds, err = listen(opts.IMDSAddr, http.HandlerFunc(s.serveIMDS)); err != nil {
		return nil, err
	}
	if s.arm, err = listen(opts.ARMAddr, http.HandlerFunc(s.serveARM)); err != nil {
		s.imds.close()
		return nil, err
	}
	return s, nil
}

// StartT runs an emulator for the duration of a test.
func StartT(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s, err := Start(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

// Close stops both listeners.
func (s *Server) Close() {
	s.imds.close()
	s.arm.close()
}

// IMDSURL is the base URL to use as the IMDS endpoint, e.g. http://127.0.0.1:PORT.
func (s *Server) IMDSURL() string { return "http://" + s.imds.addr }

// ARMURL is the base URL to use as the ARM endpoint.
func (s *Server) ARMURL() string { return "http://" + s.arm.addr }

// IdentityEndpoint is the App Service style IDENTITY_ENDPOINT (served only
// when Options.IdentityHeader is set).
func (s *Server) IdentityEndpoint() string { return s.IMDSURL() + "/msi/token" }

// Subscription, ResourceGroup and Tenant are the emulated VM's.
func (s *Server) Subscription() string  { return s.opts.Subscription }
func (s *Server) ResourceGroup() string { return s.opts.ResourceGroup }
func (s *Server) Tenant() string        { return s.opts.Tenant }

// SystemClientID is the system-assigned identity's client id ("" if none).
func (s *Server) SystemClientID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.system == nil {
		return ""
	}
	return s.system.ClientID
}

// UserAssigned returns the user-assigned identities as completed at start
// (object and resource ids filled in).
func (s *Server) UserAssigned() []Identity {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Identity
	for _, u := range s.users {
		out = append(out, *u)
	}
	return out
}

// SetKeys replaces an account's keys, as a rotation by its owner does.
func (s *Server) SetKeys(account, key1, key2 string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.account(account); a != nil {
		a.Key1, a.Key2 = key1, key2
	}
}

// SetSharedKeyDisabled flips an account's allowSharedKeyAccess.
func (s *Server) SetSharedKeyDisabled(account string, disabled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.account(account); a != nil {
		a.SharedKeyDisabled = disabled
	}
}

// SetDenied changes the roles of the identity with clientID ("" for the
// system identity).
func (s *Server) SetDenied(clientID string, listKeys, read bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id := s.byClientID(clientID); id != nil {
		id.DenyListKeys, id.DenyRead = listKeys, read
	}
}

// SetTokenTTL changes the lifetime of tokens minted from now on.
func (s *Server) SetTokenTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ttl = d
}

// RevokeTokens makes ARM refuse every token minted so far, as expired.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, m := range s.tokens {
		m.claims.Exp = time.Now().Add(-time.Minute).Unix()
		s.tokens[k] = m
	}
}

// FailIMDS scripts the answers to the next len(faults) IMDS requests.
func (s *Server) FailIMDS(faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.imdsFaults = append(s.imdsFaults, faults...)
}

// FailARM scripts the answers to the next len(faults) ARM requests.
func (s *Server) FailARM(faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armFaults = append(s.armFaults, faults...)
}

// StopIMDS closes the IMDS listener, so that connections are refused, as
// on a VM whose IMDS route is not up yet; StartIMDS reopens it on the same
// address.
func (s *Server) StopIMDS() { s.imds.close() }

// StartIMDS reopens the IMDS listener after StopIMDS.
func (s *Server) StartIMDS() error { return s.imds.reopen() }

// Count returns how many requests of kind (see Request.Kind) arrived.
func (s *Server) Count(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if r.Kind == kind {
			n++
		}
	}
	return n
}

// Counts returns the number of requests per kind.
func (s *Server) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]int{}
	for _, r := range s.requests {
		m[r.Kind]++
	}
	return m
}

// Requests returns a copy of every request received, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Header = r.Header.Clone()
		out[i] = r
	}
	return out
}

// ResetRequests forgets the requests received so far.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// Tokens returns every token minted so far, for tests that look for them
// where they must not be (logs, errors).
func (s *Server) Tokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for t := range s.tokens {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// account finds an account by name; s.mu is held.
func (s *Server) account(name string) *Account {
	for _, a := range s.accounts {
		if strings.EqualFold(a.Name, name) {
			return a
		}
	}
	return nil
}

// byClientID finds an identity; "" is the system one. s.mu is held.
func (s *Server) byClientID(id string) *Identity {
	if id == "" {
		return s.system
	}
	if s.system != nil && strings.EqualFold(s.system.ClientID, id) {
		return s.system
	}
	for _, u := range s.users {
		if strings.EqualFold(u.ClientID, id) {
			return u
		}
	}
	return nil
}

// record appends r and returns its index, so that the status can be set
// once known.
func (s *Server) record(r Request) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r)
	return len(s.requests) - 1
}

func (s *Server) setStatus(i, status int, identity string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[i].Status = status
	if identity != "" {
		s.requests[i].Identity = identity
	}
}

// nextFault pops the next scripted fault from q.
// scripted answers request i with the next fault scripted in q, if any, in
// its server's error shape (answer), the error code taken from the fault,
// else from codes by status, else fallback. It reports whether it answered.
func (s *Server) scripted(w http.ResponseWriter, i int, q *[]Fault, answer func(http.ResponseWriter, int, string, string) int, fallback string, codes map[int]string) bool {
	f, ok := s.nextFault(q)
	if !ok {
		return false
	}
	if f.Drop {
		s.setStatus(i, 0, "")
		drop(w)
		return true
	}
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", retryAfterSeconds(f.RetryAfter))
	}
	code := cmp.Or(f.Code, codes[f.Status], fallback)
	s.setStatus(i, answer(w, f.Status, code, fmt.Sprintf("scripted fault %d", f.Status)), "")
	return true
}

func (s *Server) nextFault(q *[]Fault) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(*q) == 0 {
		return Fault{}, false
	}
	f := (*q)[0]
	*q = (*q)[1:]
	return f, true
}

// listener is one loopback HTTP server that can be stopped and reopened
// on the same address.
type listener struct {
	addr    string
	handler http.Handler

	mu  sync.Mutex
	srv *http.Server
}

func listen(addr string, h http.Handler) (*listener, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("authtest: listen address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("authtest: refusing to listen on %s: the emulator serves loopback only", addr)
	}
	l := &listener{addr: addr, handler: h}
	if err := l.reopen(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *listener) reopen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.srv != nil {
		return nil
	}
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		return fmt.Errorf("authtest: listen: %w", err)
	}
	l.addr = ln.Addr().String()
	l.srv = &http.Server{Handler: l.handler, ReadHeaderTimeout: 10 * time.Second}
	go l.srv.Serve(ln)
	return nil
}

func (l *listener) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = l.srv.Shutdown(ctx)
	_ = l.srv.Close()
	l.srv = nil
}

// drop closes the client's connection without an answer.
func drop(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // a reset, not a clean close
			}
			c.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

func retryAfterSeconds(d time.Duration) string {
	s := int((d + time.Second - 1) / time.Second)
	return fmt.Sprint(max(s, 1))
}
