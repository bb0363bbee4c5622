// Package wecomsim simulates the part of the WeCom (企业微信) server API that wecomgate uses:
// gettoken, miniprogram/jscode2session, user/get, department/simplelist and tag/get, with
// WeCom's token and code lifetimes and error codes, plus a development interface to mint login
// codes, expire tokens, inject faults, change users, departments and tags, and read call
// counts. It lets the example, the tests and the benchmarks run on one machine with no WeCom
// account. It is for development only: the development interface answers only loopback clients
// at a loopback Host unless [Config.DevAllowRemote] says otherwise, and its writes need
// Content-Type: application/json.
//
// The core ([Simulator]) is a plain http.Handler usable with httptest; the Caddy module
// http.handlers.wecom_simulator wraps it.
package wecomsim

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Defaults mirror WeCom: tokens live 7200 s, wx.qy.login codes 5 minutes.
const (
	DefaultTokenTTL = 7200 * time.Second
	DefaultCodeTTL  = 5 * time.Minute
	DefaultDevPath  = "/sim"
)

// DefaultMiniProgramAppID is the watermark appid of [Simulator.UserData] when
// Config.MiniProgramAppID is empty. It has the shape of a real appid (wx + 16 characters) and
// says "demo" so that nobody mistakes it for one.
const DefaultMiniProgramAppID = "wx00000000000demo"

// Endpoint names, as used by Fault.Endpoint and Counts.
const (
	EndpointGetToken       = "gettoken"
	EndpointJSCode2Session = "jscode2session"
	EndpointUserGet        = "user/get"
	EndpointDepartmentList = "department/simplelist"
	EndpointTagGet         = "tag/get"
)

var endpoints = []string{EndpointGetToken, EndpointJSCode2Session, EndpointUserGet, EndpointDepartmentList, EndpointTagGet}

// User status values of user/get.
const (
	StatusActive       = 1
	StatusDisabled     = 2
	StatusNotActivated = 4
	StatusLeft         = 5
)

// Errors of MintCode, SetUser and the department and tag methods, for callers that map them to
// answers (the dev interface: 404 for the unknown, 400 for a cycle, 409 for a department in use).
var (
	ErrUnknownCorp        = errors.New("unknown corp")
	ErrUnknownUser        = errors.New("unknown user")
	ErrUnknownDepartment  = errors.New("unknown department")
	ErrUnknownTag         = errors.New("unknown tag")
	ErrDepartmentCycle    = errors.New("department cycle")
	ErrDepartmentNotEmpty = errors.New("department not empty")
	// ErrNoLogin: UserData has no session_key to encrypt with, because the user has not
	// exchanged a code at jscode2session yet (the dev interface answers 409).
	ErrNoLogin = errors.New("no login yet")
	// ErrUnknownKind: UserData was asked for something other than mobile, email or enterprise.
	ErrUnknownKind = errors.New("unknown kind")
)

// RootDepartment is the id of a corp's root department, which every corp has.
const RootDepartment int64 = 1

// Config configures a Simulator. Zero values mean the defaults.
type Config struct {
	TokenTTL time.Duration // default 7200s
	CodeTTL  time.Duration // default 5m
	DevPath  string        // prefix of the development interface, default "/sim"
	Corps    []Corp
	// DevAllowRemote lets any client at any Host use the development interface (and the
	// playground); by default only loopback clients at a loopback Host may, see admitDev.
	DevAllowRemote bool
	// MiniProgramAppID is the mini program's appid that [Simulator.UserData] writes into the
	// watermark, as WeCom does (not the corp id); default [DefaultMiniProgramAppID]. A gateway
	// with `decrypt <appid>` accepts only this appid.
	MiniProgramAppID string
	// Limits emulate WeCom's frequency limits (45009 past them); Latency
	// delays every answer of an endpoint (limits.go).
	Limits  []Limit
	Latency []Latency
}

// Corp is one WeCom organisation with the secret of the app the mini program belongs to.
type Corp struct {
	Name, CorpID, Secret string
	Users                []User
	// Departments are the corp's departments besides the root (1), which always exists and may
	// be listed only to name it. A department that a user or a tag names but that is not listed
	// exists all the same, unnamed, directly under the root.
	Departments []Department
	Tags        []Tag
	// Callback, if set, is the gateway's callback URL with its Token and EncodingAESKey:
	// changes made through the development interface are sent there (callback.go).
	Callback *Callback
}

// User is a member of a corp's contacts.
type User struct {
	UserID      string
	Name        string
	Departments []int64 // empty means [1], the root department, as every WeCom member has one
	Status      int     // 1 active, 2 disabled, 4 not activated, 5 left; 0 means 1
	Hidden      bool    // outside the app's visible range: user/get answers 60011, tag/get leaves them out
	// Mobile and Email are what wx.qy.getMobile and wx.qy.getEmail reveal ([Simulator.UserData]);
	// user/get never answers them, as WeCom stopped doing for new self-built apps on 2022-06-20.
	Mobile, Email string
}

// Department is a department (部门) of a corp's contacts, as department/simplelist shows it.
type Department struct {
	ID       int64
	ParentID int64  // 0 means 1, the root, for every department but the root, whose ParentID is 0
	Name     string // the root's defaults to the corp's name, as WeCom names it after the company
	Order    int    // the order among its siblings, larger first as in WeCom; 0 by default
}

// Tag is a tag (标签) of a corp's contacts: users and departments (with their sub-departments,
// as the gateway reads partylist) that it marks.
type Tag struct {
	ID          int64
	Name        string
	UserIDs     []string // members of the corp
	Departments []int64
}

// Fault makes matching WeCom calls misbehave before normal processing. When several fields are
// set, Delay comes first, then Status, Garbage or Errcode (in that order of precedence); a
// fault with only Delay delays the normal answer.
type Fault struct {
	Endpoint string        // "gettoken", "jscode2session", "user/get", "department/simplelist", "tag/get", or "" / "*" for all
	Errcode  int           // answer this errcode (e.g. -1, 45009, 40001) with HTTP 200 JSON
	Status   int           // answer this HTTP status (e.g. 500, 502) with a short body
	Garbage  bool          // answer 200 with a non-JSON body
	Delay    time.Duration // sleep before answering (honours request context cancellation)
	Count    int           // how many matching calls it affects; 0 = until cleared
}

// Simulator is a WeCom server with in-memory state. All methods are safe for concurrent use.
type Simulator struct {
	tokenTTL time.Duration
	codeTTL  time.Duration
	devPath  string
	// devAllowRemote turns off the loopback checks of the development interface.
	devAllowRemote bool
	miniAppID      string

	mu        sync.Mutex
	corps     []*corp // in configuration order: the first is the default of the dev interface
	tokens    map[string]*token
	codes     map[string]*code
	faults    []*Fault
	counts    map[string]int
	lastSweep time.Time
	// callbackLog keeps the callbacks sent (callback.go), oldest first.
	callbackLog    []CallbackResult
	callbackClient *http.Client
	lim            limiter // emulated frequency limits and latency (limits.go)
}

type corp struct {
	name, id, secret string
	users            map[string]User
	depts            map[int64]Department // always holds the root
	tags             map[int64]Tag
	current          *token // what gettoken hands out while it is valid
	// sessionKeys holds the session_key of each user's latest jscode2session, by userid: only
	// that one decrypts what wx.qy.getMobile returns, so UserData encrypts with it.
	sessionKeys map[string]string
	callback    *callbackTarget // nil without a callback configured
}

type token struct {
	value   string
	corp    *corp
	expires time.Time
	revoked int // errcode chosen by ExpireTokens; 0 while the token is not revoked
}

type code struct {
	corp    *corp
	userID  string
	expires time.Time
}

// Dead tokens are remembered this long past their expiry so that their use answers 42001 or
// the chosen errcode rather than 40014; after that they are forgotten, as WeCom does too.
const tokenRetention = time.Hour

// New builds a Simulator from cfg, applying defaults. It does not validate cfg (the Caddy
// module does, and so does [Config.Validate]): with duplicate corp_ids or names, the first corp
// wins every lookup; of duplicate departments or tags the last wins; a department whose parent
// does not exist or that is its own ancestor hangs under the root; a tag's unknown users are
// dropped.
func New(cfg Config) *Simulator {
	s := &Simulator{
		tokenTTL:       cfg.TokenTTL,
		codeTTL:        cfg.CodeTTL,
		devPath:        normalizeDevPath(cfg.DevPath),
		devAllowRemote: cfg.DevAllowRemote,
		miniAppID:      cfg.MiniProgramAppID,
		tokens:         make(map[string]*token),
		codes:          make(map[string]*code),
		counts:         make(map[string]int),
		lastSweep:      time.Now(),
		callbackClient: &http.Client{
			Timeout: callbackTimeout,
			// WeCom does not follow redirects of a callback URL either.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		lim: newLimiter(),
	}
	// Invalid entries are dropped here as New validates nothing; the Caddy
	// module checks them first.
	_ = s.SetLimits(cfg.Limits...)
	_ = s.SetLatency(cfg.Latency...)
	if s.tokenTTL <= 0 {
		s.tokenTTL = DefaultTokenTTL
	}
	if s.codeTTL <= 0 {
		s.codeTTL = DefaultCodeTTL
	}
	if s.miniAppID == "" {
		s.miniAppID = DefaultMiniProgramAppID
	}
	for _, c := range cfg.Corps {
		s.corps = append(s.corps, newCorp(c))
	}
	return s
}

func normalizeDevPath(p string) string {
	p = strings.TrimRight(p, "/")
	if p == "" {
		return DefaultDevPath
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return p
}

func normalizeUser(u User) User {
	if u.Status == 0 {
		u.Status = StatusActive
	}
	if len(u.Departments) == 0 {
		u.Departments = []int64{1}
	} else {
		u.Departments = append([]int64(nil), u.Departments...)
	}
	return u
}

func validStatus(st int) bool {
	switch st {
	case 0, StatusActive, StatusDisabled, StatusNotActivated, StatusLeft:
		return true
	}
	return false
}

// findCorpLocked looks a corp up by corp_id, then by name; "" means the first corp.
func (s *Simulator) findCorpLocked(key string) *corp {
	if key == "" {
		if len(s.corps) == 0 {
			return nil
		}
		return s.corps[0]
	}
	for _, c := range s.corps {
		if c.id == key {
			return c
		}
	}
	for _, c := range s.corps {
		if c.name == key {
			return c
		}
	}
	return nil
}

// MintCode does what wx.qy.login does inside WeCom: it yields a one-use code, valid CodeTTL,
// for a member of corp (name or corp_id; "" = the first corp).
func (s *Simulator) MintCode(corpKey, userID string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.findCorpLocked(corpKey)
	if c == nil {
		return "", fmt.Errorf("%w %q", ErrUnknownCorp, corpKey)
	}
	if _, ok := c.users[userID]; !ok {
		return "", fmt.Errorf("%w %q in corp %q", ErrUnknownUser, userID, c.name)
	}
	now := time.Now()
	s.sweepLocked(now)
	value := randomHex(16)
	s.codes[value] = &code{corp: c, userID: userID, expires: now.Add(s.codeTTL)}
	return value, nil
}

// ExpireTokens ends the current access token of corp (name or corp_id; "" = all corps): its next
// use answers errcode (42001 expired, 40014 invalidated; 0 means 42001), and the next gettoken
// issues a new token. An unknown corp changes nothing.
func (s *Simulator) ExpireTokens(corpKey string, errcode int) {
	if errcode == 0 {
		errcode = 42001
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.corps {
		if corpKey != "" && c.id != corpKey && c.name != corpKey {
			continue
		}
		if c.current != nil {
			c.current.revoked = errcode
			c.current = nil
		}
	}
}

// InjectFault adds f after the faults already active; a call is affected by the first active
// fault that matches its endpoint. Endpoint may also be given as a path ("/cgi-bin/user/get").
func (s *Simulator) InjectFault(f Fault) {
	f.Endpoint = normalizeEndpoint(f.Endpoint)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

func normalizeEndpoint(e string) string {
	e = strings.TrimPrefix(strings.TrimSpace(e), "/")
	e = strings.TrimPrefix(e, "cgi-bin/")
	e = strings.TrimPrefix(e, "miniprogram/")
	if e == "*" {
		return ""
	}
	return e
}

// ClearFaults removes every fault.
func (s *Simulator) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// takeFaultLocked returns the fault that applies to this call of endpoint, using up one of its
// Count.
func (s *Simulator) takeFaultLocked(endpoint string) (Fault, bool) {
	for i, f := range s.faults {
		if f.Endpoint != "" && f.Endpoint != endpoint {
			continue
		}
		taken := *f
		if f.Count > 0 {
			f.Count--
			if f.Count == 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return taken, true
	}
	return Fault{}, false
}

// SetUser adds u to corp (name or corp_id; "" = the first corp) or replaces the member with the
// same userid. A department it names that does not exist is created, unnamed, under the root.
func (s *Simulator) SetUser(corpKey string, u User) error {
	if u.UserID == "" {
		return errors.New("userid is empty")
	}
	if !validStatus(u.Status) {
		return fmt.Errorf("status %d is not one of 1, 2, 4, 5", u.Status)
	}
	if err := checkDepartmentIDs(u.Departments); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.findCorpLocked(corpKey)
	if c == nil {
		return fmt.Errorf("%w %q", ErrUnknownCorp, corpKey)
	}
	u = normalizeUser(u)
	c.ensureDepartmentsLocked(u.Departments)
	c.users[u.UserID] = u
	return nil
}

// Counts returns how many calls each WeCom endpoint received, faulted ones included.
func (s *Simulator) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(endpoints))
	for _, e := range endpoints {
		out[e] = s.counts[e]
	}
	return out
}

// ResetCounts sets every count to zero.
func (s *Simulator) ResetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.counts)
}

// sweepLocked forgets expired codes and long-dead tokens, at most once a minute, so that a
// benchmark minting codes it never exchanges does not grow the simulator without bound.
func (s *Simulator) sweepLocked(now time.Time) {
	if now.Sub(s.lastSweep) < time.Minute {
		return
	}
	s.lastSweep = now
	for k, c := range s.codes {
		if !now.Before(c.expires) {
			delete(s.codes, k)
		}
	}
	for k, t := range s.tokens {
		if now.After(t.expires.Add(tokenRetention)) {
			delete(s.tokens, k)
		}
	}
}

// opaqueUserID is what jscode2session answers for a user of another corp than the token's: the
// same for the same (token corp, user corp, userid), and useless for user/get.
func opaqueUserID(tokenCorp, userCorp, userID string) string {
	h := sha256.Sum256([]byte(tokenCorp + "\x00" + userCorp + "\x00" + userID))
	return "wo" + hex.EncodeToString(h[:15])
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it panics instead) since Go 1.24
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }

// randomToken looks like a WeCom access_token: long and URL-safe.
func randomToken() string { return base64.RawURLEncoding.EncodeToString(randomBytes(72)) }

// randomSessionKey looks like a WeCom session_key: 16 bytes in standard base64.
func randomSessionKey() string { return base64.StdEncoding.EncodeToString(randomBytes(16)) }
