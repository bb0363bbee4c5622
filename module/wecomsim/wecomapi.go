package wecomsim

import (
	"context"
	"encoding/json"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Paths of the WeCom calls, relative to https://qyapi.weixin.qq.com.
const (
	pathGetToken       = "/cgi-bin/gettoken"
	pathJSCode2Session = "/cgi-bin/miniprogram/jscode2session"
	pathUserGet        = "/cgi-bin/user/get"
	pathDepartmentList = "/cgi-bin/department/simplelist"
	pathTagGet         = "/cgi-bin/tag/get"
)

// endpointOf maps a request path to the WeCom endpoint it calls, or "".
func endpointOf(path string) string {
	switch path {
	case pathGetToken:
		return EndpointGetToken
	case pathJSCode2Session:
		return EndpointJSCode2Session
	case pathUserGet:
		return EndpointUserGet
	case pathDepartmentList:
		return EndpointDepartmentList
	case pathTagGet:
		return EndpointTagGet
	}
	return ""
}

// handles reports whether ServeHTTP answers path itself (a WeCom call or the dev interface),
// so that the Caddy module can pass every other request on.
func (s *Simulator) handles(path string) bool {
	return endpointOf(path) != "" || s.isDevPath(path)
}

func (s *Simulator) isDevPath(path string) bool {
	return path == s.devPath || strings.HasPrefix(path, s.devPath+"/")
}

// ServeHTTP answers the WeCom calls and the development interface; any other path is a 404.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	endpoint := endpointOf(r.URL.Path)
	if endpoint == "" {
		if s.isDevPath(r.URL.Path) {
			if s.admitDev(w, r) {
				s.serveDev(w, r)
			}
			return
		}
		writeDevError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.URL.Path)
		return
	}

	s.mu.Lock()
	s.counts[endpoint]++
	fault, faulted := s.takeFaultLocked(endpoint)
	delay := s.latencyLocked(endpoint)
	s.mu.Unlock()
	if delay > 0 && !sleep(r.Context(), delay) {
		return
	}
	if faulted && !s.applyFault(w, r, fault) {
		return
	}
	if s.overLimit(endpoint, r) {
		writeWeCom(w, r, wxErr(45009))
		return
	}

	q := r.URL.Query()
	var answer any
	switch endpoint {
	case EndpointGetToken:
		answer = s.getToken(q)
	case EndpointJSCode2Session:
		answer = s.jscode2session(q)
	case EndpointUserGet:
		answer = s.userGet(q)
	case EndpointDepartmentList:
		answer = s.departmentList(q)
	case EndpointTagGet:
		answer = s.tagGet(q)
	}
	writeWeCom(w, r, answer)
}

// applyFault acts out f and reports whether normal processing should follow (a delay-only fault).
func (s *Simulator) applyFault(w http.ResponseWriter, r *http.Request, f Fault) bool {
	if f.Delay > 0 && !sleep(r.Context(), f.Delay) {
		return false // the caller has gone: nobody reads an answer
	}
	switch {
	case f.Status != 0:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(f.Status)
		fmt.Fprintf(w, "<html><body><h1>%d %s</h1></body></html>\n", f.Status, http.StatusText(f.Status))
	case f.Garbage:
		// What a captive portal or a misconfigured proxy answers: 200, but not WeCom's JSON.
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html><head><title>Portal</title></head><body>Please log in to the network.</body></html>\n"))
	case f.Errcode != 0:
		writeWeCom(w, r, wxErr(f.Errcode))
	default:
		return true
	}
	return false
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// wxError is the errcode/errmsg pair every WeCom answer starts with. The errmsg is filled in
// when writing, because WeCom's hint names the caller's IP.
type wxError struct {
	Errcode int    `json:"errcode"`
	Errmsg  string `json:"errmsg"`
}

func wxErr(errcode int) *wxError { return &wxError{Errcode: errcode} }

func (e *wxError) wx() *wxError { return e }

type wxAnswer interface{ wx() *wxError }

type tokenAnswer struct {
	wxError
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}

type sessionAnswer struct {
	wxError
	CorpID     string `json:"corpid"`
	UserID     string `json:"userid"`
	SessionKey string `json:"session_key"`
	DeviceID   string `json:"deviceid"`
}

type userAnswer struct {
	wxError
	UserID         string  `json:"userid"`
	Name           string  `json:"name"`
	Department     []int64 `json:"department"`
	MainDepartment int64   `json:"main_department"`
	Status         int     `json:"status"`
	Position       string  `json:"position"`
	IsLeaderInDept []int   `json:"is_leader_in_dept"`
	Order          []int   `json:"order"`
	Alias          string  `json:"alias"`
}

// departmentListAnswer is department/simplelist's answer (/document/path/95406): ids only, as
// department/list, which has the names, is closed to apps created since 2022-06-20.
type departmentListAnswer struct {
	wxError
	DepartmentID []departmentID `json:"department_id"`
}

type departmentID struct {
	ID       int64 `json:"id"`
	ParentID int64 `json:"parentid"`
	Order    int   `json:"order"`
}

// tagAnswer is tag/get's answer (/document/path/90349).
type tagAnswer struct {
	wxError
	TagName   string    `json:"tagname"`
	UserList  []tagUser `json:"userlist"`
	PartyList []int64   `json:"partylist"`
}

type tagUser struct {
	UserID string `json:"userid"`
	Name   string `json:"name"`
}

// errmsgs are WeCom's texts for the errcodes the simulator answers.
var errmsgs = map[int]string{
	-1:    "system busy",
	0:     "ok",
	40001: "invalid credential",
	40013: "invalid corpid",
	40014: "invalid access_token",
	40029: "invalid code",
	40068: "invalid tagid",
	41001: "access_token missing",
	41002: "corpid missing",
	41004: "corpsecret missing",
	41008: "missing code",
	41009: "missing userid",
	41017: "missing tagid",
	42001: "access_token expired",
	42009: "suitetoken expired",
	45009: "api freq out of limit",
	45033: "api concurrent out of limit",
	48002: "api forbidden",
	60011: "no privilege to access/modify contact/party/agent",
	60020: "not allow to access from your ip",
	60111: "userid not found",
	60123: "invalid party id",
}

// writeWeCom writes answer as WeCom does: HTTP 200 whatever the errcode, and on errors an errmsg
// with a hint, the caller's IP and a link to the error code query tool.
func writeWeCom(w http.ResponseWriter, r *http.Request, answer any) {
	if a, ok := answer.(wxAnswer); ok {
		e := a.wx()
		if e.Errmsg == "" {
			e.Errmsg = errmsgs[e.Errcode]
			if e.Errmsg == "" {
				e.Errmsg = "error"
			}
		}
		if e.Errcode != 0 {
			e.Errmsg = fmt.Sprintf("%s, hint: [%d_%06d], from ip: %s, more info at https://open.work.weixin.qq.com/devtool/query?e=%d",
				e.Errmsg, time.Now().Unix(), mathrand.IntN(1_000_000), clientIP(r), e.Errcode)
		}
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(answer)
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Simulator) getToken(q url.Values) wxAnswer {
	corpID, secret := q.Get("corpid"), q.Get("corpsecret")
	switch {
	case corpID == "":
		return wxErr(41002)
	case secret == "":
		return wxErr(41004)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var c *corp
	for _, cand := range s.corps {
		if cand.id == corpID {
			c = cand
			break
		}
	}
	if c == nil {
		return wxErr(40013)
	}
	if secret != c.secret {
		return wxErr(40001)
	}
	now := time.Now()
	if c.current == nil || !now.Before(c.current.expires) {
		s.sweepLocked(now)
		c.current = &token{value: randomToken(), corp: c, expires: now.Add(s.tokenTTL)}
		s.tokens[c.current.value] = c.current
	}
	return &tokenAnswer{
		AccessToken: c.current.value,
		// Rounded up: a token that is still valid never claims to have 0 seconds left.
		ExpiresIn: int((c.current.expires.Sub(now) + time.Second - 1) / time.Second),
	}
}

// withToken answers a call that needs a valid access_token: under the
// simulator's lock, answer runs with the live token, and an unknown,
// revoked or expired one gets its errcode instead.
func (s *Simulator) withToken(q url.Values, answer func(t *token, now time.Time) wxAnswer) wxAnswer {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	t, errcode := s.tokenLocked(q.Get("access_token"), now)
	if errcode != 0 {
		return wxErr(errcode)
	}
	return answer(t, now)
}

// tokenLocked resolves an access_token to its live token or to the errcode its use answers.
func (s *Simulator) tokenLocked(value string, now time.Time) (*token, int) {
	t := s.tokens[value]
	switch {
	case t == nil:
		return nil, 40014 // missing and unknown alike; WeCom may say 41001 for a missing one
	case t.revoked != 0:
		return nil, t.revoked
	case !now.Before(t.expires):
		return nil, 42001
	}
	return t, 0
}

func (s *Simulator) jscode2session(q url.Values) wxAnswer {
	return s.withToken(q, func(t *token, now time.Time) wxAnswer {
		jsCode := q.Get("js_code")
		if jsCode == "" {
			return wxErr(41008)
		}
		c := s.codes[jsCode]
		if c == nil || !now.Before(c.expires) {
			return wxErr(40029)
		}
		delete(s.codes, jsCode) // spent, whoever asked: WeCom does the same for a foreign corp's token
		userID := c.userID
		if c.corp != t.corp {
			userID = opaqueUserID(t.corp.id, c.corp.id, c.userID)
		}
		// Kept under the code's corp and real userid whichever token asked, as WeCom ties the
		// session_key to the login; a new login replaces it, so only the latest one decrypts.
		key := randomSessionKey()
		c.corp.sessionKeys[c.userID] = key
		return &sessionAnswer{CorpID: c.corp.id, UserID: userID, SessionKey: key}
	})
}

func (s *Simulator) userGet(q url.Values) wxAnswer {
	return s.withToken(q, func(t *token, _ time.Time) wxAnswer {
		userID := q.Get("userid")
		if userID == "" {
			return wxErr(41009)
		}
		u, ok := t.corp.users[userID]
		if !ok {
			return wxErr(60111)
		}
		if u.Hidden {
			return wxErr(60011)
		}
		return &userAnswer{
			UserID:         u.UserID,
			Name:           u.Name,
			Department:     append([]int64(nil), u.Departments...),
			MainDepartment: u.Departments[0],
			Status:         u.Status,
			IsLeaderInDept: make([]int, len(u.Departments)),
			Order:          make([]int, len(u.Departments)),
		}
	})
}

// departmentList answers department/simplelist (/document/path/95406): the department id and
// all of its sub-departments, recursively, or without id the whole tree. The app sees every
// department (its visible range is the root), so the only refusal is an id that names none.
func (s *Simulator) departmentList(q url.Values) wxAnswer {
	return s.withToken(q, func(t *token, _ time.Time) wxAnswer {
		id := RootDepartment
		if v := q.Get("id"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return wxErr(60123)
			}
			id = n
		}
		if _, ok := t.corp.depts[id]; !ok {
			return wxErr(60123)
		}
		tree := t.corp.subtreeLocked(id)
		out := &departmentListAnswer{DepartmentID: make([]departmentID, len(tree))}
		for i, d := range tree {
			out.DepartmentID[i] = departmentID{ID: d.ID, ParentID: d.ParentID, Order: d.Order}
		}
		return out
	})
}

// tagGet answers tag/get (/document/path/90349): the tag's name, its members within the app's
// visible range (hidden members are not) and its departments as listed, without their
// sub-departments, which the caller expands with department/simplelist.
func (s *Simulator) tagGet(q url.Values) wxAnswer {
	return s.withToken(q, func(t *token, _ time.Time) wxAnswer {
		v := q.Get("tagid")
		if v == "" {
			return wxErr(41017)
		}
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return wxErr(40068)
		}
		tag, ok := t.corp.tags[id]
		if !ok {
			return wxErr(40068)
		}
		out := &tagAnswer{TagName: tag.Name, UserList: []tagUser{}, PartyList: append([]int64{}, tag.Departments...)}
		for _, uid := range tag.UserIDs {
			if u, ok := t.corp.users[uid]; ok && !u.Hidden {
				out.UserList = append(out.UserList, tagUser{UserID: u.UserID, Name: u.Name})
			}
		}
		return out
	})
}
