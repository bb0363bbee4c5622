package wecomsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// The development interface lives under DevPath. Writes take their fields as a JSON body sent
// with Content-Type: application/json, and no query parameters (see devguard.go for why).

const maxDevBody = 64 << 10

func (s *Simulator) serveDev(w http.ResponseWriter, r *http.Request) {
	if isWrite(r.Method) && !admitWrite(w, r) {
		return
	}
	route := strings.Trim(strings.TrimPrefix(r.URL.Path, s.devPath), "/")
	type handler = func(http.ResponseWriter, *http.Request)
	var methods map[string]handler
	switch route {
	case "code":
		methods = map[string]handler{http.MethodPost: s.devCode}
	case "userdata":
		methods = map[string]handler{http.MethodPost: s.devUserData}
	case "tokens/expire":
		methods = map[string]handler{http.MethodPost: s.devExpireTokens}
	case "faults":
		methods = map[string]handler{http.MethodPost: s.devInjectFault, http.MethodDelete: s.devClearFaults}
	case "users":
		methods = map[string]handler{http.MethodPut: s.devSetUser, http.MethodDelete: s.devDeleteUser}
	case "departments":
		methods = map[string]handler{http.MethodPut: s.devSetDepartment, http.MethodDelete: s.devDeleteByID(s.DeleteDepartment, "delete_party")}
	case "tags":
		methods = map[string]handler{http.MethodPut: s.devSetTag, http.MethodDelete: s.devDeleteByID(s.DeleteTag, "update_tag")}
	case "callbacks":
		methods = map[string]handler{http.MethodGet: s.devCallbacks}
	case "callback/verify":
		methods = map[string]handler{http.MethodPost: s.devVerifyCallback}
	case "counts":
		methods = map[string]handler{http.MethodGet: s.devCounts, http.MethodDelete: s.devResetCounts}
	case "state":
		methods = map[string]handler{http.MethodGet: s.devState}
	case "limits":
		methods = map[string]handler{http.MethodGet: s.devGetLimits, http.MethodPut: s.devSetLimits}
	default:
		writeDevError(w, http.StatusNotFound, "not_found", "no such development endpoint: "+r.URL.Path)
		return
	}
	h, ok := methods[r.Method]
	if !ok {
		allowed := make([]string, 0, len(methods))
		for m := range methods {
			allowed = append(allowed, m)
		}
		slices.Sort(allowed)
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeDevError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; use "+strings.Join(allowed, " or "))
		return
	}
	h(w, r)
}

// corpUser is the body of the dev requests about one member.
type corpUser struct {
	Corp   string `json:"corp"`
	UserID string `json:"userid"`
}

// decodeCorpUser reads a corpUser, whose userid is required; it has
// answered the error when it reports false.
func decodeCorpUser(w http.ResponseWriter, r *http.Request) (corpUser, bool) {
	var in corpUser
	if !decodeBody(w, r, &in) {
		return in, false
	}
	if in.UserID == "" {
		writeDevError(w, http.StatusBadRequest, "invalid_request", "userid is required")
		return in, false
	}
	return in, true
}

func (s *Simulator) devCode(w http.ResponseWriter, r *http.Request) {
	in, ok := decodeCorpUser(w, r)
	if !ok {
		return
	}
	code, err := s.MintCode(in.Corp, in.UserID)
	if err != nil {
		writeLookupError(w, err)
		return
	}
	writeDevJSON(w, http.StatusOK, map[string]any{"code": code, "expires_in": int(s.codeTTL / time.Second)})
}

// devUserData answers what wx.qy.getMobile, getEmail or getEnterpriseUserInfo would give the
// mini program of the user's latest login, for a gateway's POST /wecom/decrypt.
func (s *Simulator) devUserData(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Corp   string `json:"corp"`
		UserID string `json:"userid"`
		Kind   string `json:"kind"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	if in.UserID == "" {
		writeDevError(w, http.StatusBadRequest, "invalid_request", "userid is required")
		return
	}
	data, iv, err := s.UserData(in.Corp, in.UserID, in.Kind)
	if err != nil {
		writeLookupError(w, err)
		return
	}
	writeDevJSON(w, http.StatusOK, map[string]string{"encrypted_data": data, "iv": iv})
}

func (s *Simulator) devExpireTokens(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Corp    string `json:"corp"`
		Errcode int    `json:"errcode"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	if in.Corp != "" && !s.knownCorp(in.Corp) {
		writeDevError(w, http.StatusNotFound, "not_found", fmt.Sprintf("unknown corp %q", in.Corp))
		return
	}
	s.ExpireTokens(in.Corp, in.Errcode)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Simulator) knownCorp(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.findCorpLocked(key) != nil
}

// faultJSON is a Fault on the wire: the delay is a duration string such as "2s".
type faultJSON struct {
	Endpoint string       `json:"endpoint"`
	Errcode  int          `json:"errcode"`
	Status   int          `json:"status"`
	Garbage  bool         `json:"garbage"`
	Delay    jsonDuration `json:"delay"`
	Count    int          `json:"count"`
}

type jsonDuration time.Duration

func (d jsonDuration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`want a duration string such as "2s"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = jsonDuration(v)
	return nil
}

func (s *Simulator) devInjectFault(w http.ResponseWriter, r *http.Request) {
	var in faultJSON
	if !decodeBody(w, r, &in) {
		return
	}
	f := Fault{
		Endpoint: normalizeEndpoint(in.Endpoint),
		Errcode:  in.Errcode,
		Status:   in.Status,
		Garbage:  in.Garbage,
		Delay:    time.Duration(in.Delay),
		Count:    in.Count,
	}
	if err := checkFault(f); err != nil {
		writeDevError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	s.InjectFault(f)
	w.WriteHeader(http.StatusNoContent)
}

// checkFault rejects faults that would never fire or never do anything, which are typos.
func checkFault(f Fault) error {
	if f.Endpoint != "" && !slices.Contains(endpoints, f.Endpoint) {
		return fmt.Errorf("endpoint %q is not one of %s or \"*\"", f.Endpoint, strings.Join(endpoints, ", "))
	}
	if f.Status != 0 && (f.Status < 100 || f.Status > 599) {
		return fmt.Errorf("status %d is not an HTTP status", f.Status)
	}
	if f.Delay < 0 || f.Count < 0 {
		return errors.New("delay and count must not be negative")
	}
	if f.Errcode == 0 && f.Status == 0 && !f.Garbage && f.Delay == 0 {
		return errors.New("the fault does nothing: set errcode, status, garbage or delay")
	}
	return nil
}

func (s *Simulator) devClearFaults(w http.ResponseWriter, _ *http.Request) {
	s.ClearFaults()
	w.WriteHeader(http.StatusNoContent)
}

// userJSON is a user on the wire. Pointer fields tell a partial update which fields were sent.
type userJSON struct {
	Corp       string   `json:"corp,omitempty"`
	UserID     string   `json:"userid"`
	Name       *string  `json:"name,omitempty"`
	Department *[]int64 `json:"department,omitempty"`
	Status     *int     `json:"status,omitempty"`
	Hidden     *bool    `json:"hidden,omitempty"`
	Mobile     *string  `json:"mobile,omitempty"`
	Email      *string  `json:"email,omitempty"`
	// NewUserID renames the user (a PUT only): WeCom lets a generated userid be changed once,
	// and its callback then carries NewUserID.
	NewUserID *string `json:"new_userid,omitempty"`
}

func (s *Simulator) devSetUser(w http.ResponseWriter, r *http.Request) {
	var in userJSON
	if !decodeBody(w, r, &in) {
		return
	}
	if in.UserID == "" {
		writeDevError(w, http.StatusBadRequest, "invalid_request", "userid is required")
		return
	}
	if in.Status != nil && !validStatus(*in.Status) {
		writeDevError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("status %d is not one of 1, 2, 4, 5", *in.Status))
		return
	}
	if in.Department != nil {
		if err := checkDepartmentIDs(*in.Department); err != nil {
			writeDevError(w, http.StatusBadRequest, "invalid_request", "department: "+err.Error())
			return
		}
	}

	// Read, merge and write under one lock so that concurrent partial updates do not lose fields.
	s.mu.Lock()
	c := s.findCorpLocked(in.Corp)
	if c == nil {
		s.mu.Unlock()
		writeDevError(w, http.StatusNotFound, "not_found", fmt.Sprintf("unknown corp %q", in.Corp))
		return
	}
	u, existed := c.users[in.UserID]
	if !existed {
		u = User{UserID: in.UserID}
	}
	var renamedFrom string
	if in.NewUserID != nil && *in.NewUserID != in.UserID {
		if err := c.renameUserLocked(in.UserID, *in.NewUserID); err != nil {
			s.mu.Unlock()
			writeLookupError(w, err)
			return
		}
		renamedFrom, u.UserID = in.UserID, *in.NewUserID
	}
	if in.Name != nil {
		u.Name = *in.Name
	}
	if in.Department != nil {
		u.Departments = *in.Department
	}
	if in.Status != nil {
		u.Status = *in.Status
	}
	if in.Hidden != nil {
		u.Hidden = *in.Hidden
	}
	if in.Mobile != nil {
		u.Mobile = *in.Mobile
	}
	if in.Email != nil {
		u.Email = *in.Email
	}
	u = normalizeUser(u)
	c.ensureDepartmentsLocked(u.Departments)
	c.users[u.UserID] = u
	corpName := c.name
	s.mu.Unlock()

	ev := userChange("update_user", u)
	switch {
	case renamedFrom != "":
		ev.UserID, ev.NewUserID = renamedFrom, u.UserID
	case !existed:
		ev.ChangeType = "create_user"
	}
	s.notify(c, ev)
	writeDevJSON(w, http.StatusOK, userOut(corpName, u))
}

func userOut(corpName string, u User) userJSON {
	deps := append([]int64(nil), u.Departments...)
	return userJSON{Corp: corpName, UserID: u.UserID, Name: &u.Name, Department: &deps, Status: &u.Status, Hidden: &u.Hidden, Mobile: &u.Mobile, Email: &u.Email}
}

// departmentJSON is a department on the wire. Pointer fields tell a partial update which fields
// were sent.
type departmentJSON struct {
	Corp   string  `json:"corp,omitempty"`
	ID     int64   `json:"id"`
	Parent *int64  `json:"parent,omitempty"`
	Name   *string `json:"name,omitempty"`
	Order  *int    `json:"order,omitempty"`
}

func departmentOut(corpName string, d Department) departmentJSON {
	return departmentJSON{Corp: corpName, ID: d.ID, Parent: &d.ParentID, Name: &d.Name, Order: &d.Order}
}

// devSetDepartment creates a department (under the root unless parent says otherwise) or moves,
// renames or reorders it, changing only the fields sent.
func (s *Simulator) devSetDepartment(w http.ResponseWriter, r *http.Request) {
	var in departmentJSON
	if !decodeBody(w, r, &in) {
		return
	}
	if in.ID == 0 {
		writeDevError(w, http.StatusBadRequest, "invalid_request", "id is required")
		return
	}
	s.updateCorp(w, in.Corp, func(c *corp) (any, *contactChange, error) {
		d, ok := c.depts[in.ID]
		if !ok {
			d = Department{ID: in.ID}
		}
		if in.Parent != nil {
			d.ParentID = *in.Parent
		}
		if in.Name != nil {
			d.Name = *in.Name
		}
		if in.Order != nil {
			d.Order = *in.Order
		}
		ev := &contactChange{ChangeType: "update_party", ID: in.ID}
		if !ok {
			ev.ChangeType = "create_party"
		}
		err := c.setDepartmentLocked(d)
		return departmentOut(c.name, c.depts[in.ID]), ev, err
	})
}

// devDeleteByID answers the DELETE of a department or a tag: del removes
// the id from the corp the body names, and the corp's callback hears of it
// as changeType.
func (s *Simulator) devDeleteByID(del func(corp string, id int64) error, changeType string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Corp string `json:"corp"`
			ID   int64  `json:"id"`
		}
		if !decodeBody(w, r, &in) {
			return
		}
		if in.ID == 0 {
			writeDevError(w, http.StatusBadRequest, "invalid_request", "id is required")
			return
		}
		if err := del(in.Corp, in.ID); err != nil {
			writeLookupError(w, err)
			return
		}
		if c := s.corpOf(in.Corp); c != nil {
			ev := &contactChange{ChangeType: changeType, ID: in.ID}
			if changeType == "update_tag" {
				ev = &contactChange{ChangeType: changeType, TagID: in.ID}
			}
			s.notify(c, ev)
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// updateCorp reads, merges and writes under one lock, as for users, so
// that concurrent partial updates lose nothing; change answers what the
// request gets.
// A change that succeeds is sent to the corp's callback, if any, before the answer: whoever
// changed it may rely on the gateway having been told.
func (s *Simulator) updateCorp(w http.ResponseWriter, corpName string, change func(c *corp) (any, *contactChange, error)) {
	s.mu.Lock()
	c := s.findCorpLocked(corpName)
	if c == nil {
		s.mu.Unlock()
		writeDevError(w, http.StatusNotFound, "not_found", fmt.Sprintf("unknown corp %q", corpName))
		return
	}
	out, ev, err := change(c)
	s.mu.Unlock()
	if err != nil {
		writeLookupError(w, err)
		return
	}
	s.notify(c, ev)
	writeDevJSON(w, http.StatusOK, out)
}

// tagJSON is a tag on the wire. Pointer fields tell a partial update which fields were sent; a
// list sent replaces the tag's list.
type tagJSON struct {
	Corp        string    `json:"corp,omitempty"`
	ID          int64     `json:"id"`
	Name        *string   `json:"name,omitempty"`
	Users       *[]string `json:"users,omitempty"`
	Departments *[]int64  `json:"departments,omitempty"`
}

func tagOut(corpName string, t Tag) tagJSON {
	// Empty lists stay lists in JSON, as tag/get answers them.
	users, deps := append([]string{}, t.UserIDs...), append([]int64{}, t.Departments...)
	return tagJSON{Corp: corpName, ID: t.ID, Name: &t.Name, Users: &users, Departments: &deps}
}

func (s *Simulator) devSetTag(w http.ResponseWriter, r *http.Request) {
	var in tagJSON
	if !decodeBody(w, r, &in) {
		return
	}
	if in.ID == 0 {
		writeDevError(w, http.StatusBadRequest, "invalid_request", "id is required")
		return
	}
	s.updateCorp(w, in.Corp, func(c *corp) (any, *contactChange, error) {
		t, ok := c.tags[in.ID]
		if !ok {
			t = Tag{ID: in.ID}
		}
		if in.Name != nil {
			t.Name = *in.Name
		}
		if in.Users != nil {
			t.UserIDs = *in.Users
		}
		if in.Departments != nil {
			t.Departments = *in.Departments
		}
		err := c.setTagLocked(t)
		return tagOut(c.name, c.tags[in.ID]), &contactChange{ChangeType: "update_tag", TagID: in.ID}, err
	})
}

func (s *Simulator) devCounts(w http.ResponseWriter, _ *http.Request) {
	writeDevJSON(w, http.StatusOK, s.Counts())
}

func (s *Simulator) devResetCounts(w http.ResponseWriter, _ *http.Request) {
	s.ResetCounts()
	w.WriteHeader(http.StatusNoContent)
}

// stateJSON is everything a playground page needs to show, and no secret.
type stateJSON struct {
	DevPath  string `json:"dev_path"`
	TokenTTL string `json:"token_ttl"`
	CodeTTL  string `json:"code_ttl"`
	// MiniProgramAppID is the watermark appid of POST userdata, which the gateway's decrypt
	// must name.
	MiniProgramAppID string         `json:"miniprogram_appid"`
	Corps            []corpState    `json:"corps"`
	Faults           []faultJSON    `json:"faults"`
	Counts           map[string]int `json:"counts"`
	// Callbacks are the callbacks sent, newest first (callback.go).
	Callbacks []CallbackResult `json:"callbacks"`
}

type corpState struct {
	Name   string     `json:"name"`
	CorpID string     `json:"corp_id"`
	Users  []userJSON `json:"users"`
	// Departments come as department/simplelist lists the whole tree: each before its
	// sub-departments, the root first.
	Departments []departmentJSON `json:"departments"`
	Tags        []tagJSON        `json:"tags"`
	// Callback is the URL the corp's contact changes are sent to; absent without one. Its
	// token and key are secrets and never shown.
	Callback string `json:"callback,omitempty"`
}

func (s *Simulator) devState(w http.ResponseWriter, _ *http.Request) {
	out := stateJSON{
		DevPath:          s.devPath,
		TokenTTL:         s.tokenTTL.String(),
		CodeTTL:          s.codeTTL.String(),
		MiniProgramAppID: s.miniAppID,
		Corps:            []corpState{},
		Faults:           []faultJSON{},
		Counts:           s.Counts(),
	}
	s.mu.Lock()
	for _, c := range s.corps {
		cs := corpState{Name: c.name, CorpID: c.id, Users: make([]userJSON, 0, len(c.users))}
		if c.callback != nil {
			cs.Callback = c.callback.url
		}
		for _, u := range c.users {
			u := userOut("", u)
			cs.Users = append(cs.Users, u)
		}
		slices.SortFunc(cs.Users, func(a, b userJSON) int { return strings.Compare(a.UserID, b.UserID) })
		for _, d := range c.subtreeLocked(RootDepartment) {
			cs.Departments = append(cs.Departments, departmentOut("", d))
		}
		cs.Tags = make([]tagJSON, 0, len(c.tags))
		for _, id := range slices.Sorted(maps.Keys(c.tags)) {
			cs.Tags = append(cs.Tags, tagOut("", c.tags[id]))
		}
		out.Corps = append(out.Corps, cs)
	}
	for _, f := range s.faults {
		endpoint := f.Endpoint
		if endpoint == "" {
			endpoint = "*"
		}
		out.Faults = append(out.Faults, faultJSON{
			Endpoint: endpoint, Errcode: f.Errcode, Status: f.Status,
			Garbage: f.Garbage, Delay: jsonDuration(f.Delay), Count: f.Count,
		})
	}
	s.mu.Unlock()
	out.Callbacks = s.Callbacks()
	writeDevJSON(w, http.StatusOK, out)
}

// decodeBody decodes a JSON body, if any, over dst; on failure it answers 400 and returns false.
// Unknown fields are errors, because a misspelt field would otherwise be silently ignored.
func decodeBody(w http.ResponseWriter, r *http.Request, dst any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxDevBody+1))
	if err != nil {
		writeDevError(w, http.StatusBadRequest, "invalid_request", "reading body: "+err.Error())
		return false
	}
	if len(body) > maxDevBody {
		writeDevError(w, http.StatusBadRequest, "invalid_request", "body too large")
		return false
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return true
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		writeDevError(w, http.StatusBadRequest, "invalid_request", "malformed JSON body: "+err.Error())
		return false
	}
	return true
}

func writeLookupError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrUnknownCorp), errors.Is(err, ErrUnknownUser), errors.Is(err, ErrUnknownDepartment), errors.Is(err, ErrUnknownTag):
		writeDevError(w, http.StatusNotFound, "not_found", err.Error())
		return
	case errors.Is(err, ErrDepartmentNotEmpty), errors.Is(err, ErrNoLogin):
		writeDevError(w, http.StatusConflict, "conflict", err.Error())
		return
	}
	writeDevError(w, http.StatusBadRequest, "invalid_request", err.Error())
}

func writeDevJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeDevError(w http.ResponseWriter, status int, code, message string) {
	writeDevJSON(w, status, map[string]string{"error": code, "message": message})
}

// corpOf looks a corp up under the lock.
func (s *Simulator) corpOf(key string) *corp {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.findCorpLocked(key)
}

// devDeleteUser deletes a member, as WeCom's 删除成员: tags no longer list them, and the corp's
// callback hears delete_user.
func (s *Simulator) devDeleteUser(w http.ResponseWriter, r *http.Request) {
	in, ok := decodeCorpUser(w, r)
	if !ok {
		return
	}
	c, u, err := s.deleteUser(in.Corp, in.UserID)
	if err != nil {
		writeLookupError(w, err)
		return
	}
	s.notify(c, userChange("delete_user", u))
	w.WriteHeader(http.StatusNoContent)
}

func (s *Simulator) devCallbacks(w http.ResponseWriter, _ *http.Request) {
	writeDevJSON(w, http.StatusOK, map[string]any{"callbacks": s.Callbacks()})
}

func (s *Simulator) devVerifyCallback(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Corp string `json:"corp"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	res, err := s.VerifyCallback(in.Corp)
	if errors.Is(err, ErrNoCallback) {
		writeDevError(w, http.StatusConflict, "conflict", err.Error())
		return
	}
	if err != nil {
		writeLookupError(w, err)
		return
	}
	writeDevJSON(w, http.StatusOK, res)
}
