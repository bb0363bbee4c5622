package wecom

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
)

// The calls behind allow_departments and allow_tags (SPEC §3a).
const (
	endpointDepartments = "department/simplelist"
	endpointTag         = "tag/get"
)

const (
	// maxDepartments bounds department/simplelist's answer and maxTagUsers
	// and maxTagDepartments tag/get's lists. Real corps are far below (a
	// corp of 100,000 departments would be one of WeCom's largest); the
	// bounds keep an answer from a broken or hostile API base from costing
	// the gateway unbounded memory in the decode and in every cache of it.
	maxDepartments    = 100_000
	maxTagUsers       = 100_000
	maxTagDepartments = 100_000
	// maxDirectoryBody replaces maxBody for these two calls: 100,000
	// entries of simplelist are about 5 MB, of tag/get's userlist (with
	// names we drop but must read) up to about 15 MB.
	maxDirectoryBody = 16 << 20
)

// Department is one entry of department/simplelist. ParentID is 0 for the
// root department (id 1).
type Department struct {
	ID, ParentID int64
}

// TagMembers is tag/get's membership of a tag: the users it names and the
// departments it names, whose members (and those of their sub-departments)
// also carry the tag. Either may be empty. Only members within the app's
// visible range are listed (/document/path/90349).
type TagMembers struct {
	UserIDs     []string
	Departments []int64
}

// DepartmentTree returns department id and all its sub-departments at any
// depth, as far as the app may see them (department/simplelist,
// /document/path/95406), in WeCom's order; id itself is always included.
//
// A department that does not exist or that the app may not see fails with
// KindNotFound: WeCom answered, and nobody is in it. A successful answer
// that does not include id, or has more than 100,000 entries or an id
// below 1, fails with KindDefinitive. An id below 1 (WeCom's root
// department is 1) is refused with KindDefinitive without asking WeCom:
// simplelist without a usable id answers the whole visible tree, which is
// not what the caller asked.
func (c *Client) DepartmentTree(ctx context.Context, corp Corp, id int64) ([]Department, error) {
	if err := checkCorp(endpointDepartments, corp); err != nil {
		return nil, err
	}
	if id < 1 {
		return nil, invalidArg(endpointDepartments, corp.ID, KindDefinitive, "department id %d is not a WeCom department id (1 or more)", id)
	}
	var out []Department
	err := c.withToken(ctx, endpointDepartments, corp, func(tok string) error {
		a, err := call[departmentAnswer](ctx, c, &request{
			endpoint: endpointDepartments,
			path:     "/cgi-bin/department/simplelist",
			corpID:   corp.ID,
			query:    url.Values{"access_token": {tok}, "id": {strconv.FormatInt(id, 10)}},
			secrets:  []string{tok, corp.Secret},
			maxBody:  maxDirectoryBody,
			accept:   func(a answer) error { return a.(*departmentAnswer).includes(id) },
		})
		if err == nil {
			out = make([]Department, len(a.Departments.items))
			for i, d := range a.Departments.items {
				out[i] = Department(d)
			}
		}
		return err
	})
	return out, err
}

// Tag returns the members of tag tagID (tag/get, /document/path/90349): the
// userids it lists, without their names, and the departments it lists.
//
// A tag that does not exist or that the app may not see fails with
// KindNotFound. The Errcode says which (40068 or 60011); the latter is worth
// telling an operator: the 60011 help of /document/path/90313 says an app's
// token reaches only tags its own API created, so a tag made in the admin
// console may admit nobody however it is filled. A successful answer without
// tagname, with a userid that is not ValidUserID, a department id below 1,
// or more than 100,000 users or departments fails with KindDefinitive. A
// negative tagID is refused with KindDefinitive without asking WeCom.
func (c *Client) Tag(ctx context.Context, corp Corp, tagID int64) (TagMembers, error) {
	if err := checkCorp(endpointTag, corp); err != nil {
		return TagMembers{}, err
	}
	if tagID < 0 {
		return TagMembers{}, invalidArg(endpointTag, corp.ID, KindDefinitive, "tag id %d is not a WeCom tag id (0 or more)", tagID)
	}
	var m TagMembers
	err := c.withToken(ctx, endpointTag, corp, func(tok string) error {
		a, err := call[tagAnswer](ctx, c, &request{
			endpoint: endpointTag,
			path:     "/cgi-bin/tag/get",
			corpID:   corp.ID,
			query:    url.Values{"access_token": {tok}, "tagid": {strconv.FormatInt(tagID, 10)}},
			secrets:  []string{tok, corp.Secret},
			maxBody:  maxDirectoryBody,
		})
		if err == nil {
			m = TagMembers{UserIDs: make([]string, len(a.Users.items)), Departments: a.Departments.items}
			for i, u := range a.Users.items {
				m.UserIDs[i] = u.UserID
			}
		}
		return err
	})
	return m, err
}

type departmentEntry struct {
	ID       int64 `json:"id"`
	ParentID int64 `json:"parentid"`
}

type departmentAnswer struct {
	apiStatus
	Departments departmentList `json:"department_id"`
}

// check holds ids to what WeCom creates (创建部门, /document/path/90205:
// the root is 1, others are above it): an entry with id 0 is a missing
// field, and a negative one is not WeCom's.
func (a *departmentAnswer) check() error {
	if a.Departments.over {
		return errors.New("more than " + strconv.Itoa(maxDepartments) + " departments")
	}
	for i, d := range a.Departments.items {
		if d.ID < 1 || d.ParentID < 0 {
			return errors.New("department_id[" + strconv.Itoa(i) + "]: id " + strconv.FormatInt(d.ID, 10) +
				" parentid " + strconv.FormatInt(d.ParentID, 10) + " (want id ≥ 1, parentid ≥ 0)")
		}
	}
	return nil
}

// includes refuses an answer that leaves out the department asked: WeCom
// lists it with its sub-departments, so an answer without it is about
// something else, and trusting it would refuse that department's own
// members.
func (a *departmentAnswer) includes(id int64) error {
	for _, d := range a.Departments.items {
		if d.ID == id {
			return nil
		}
	}
	return errors.New("department " + strconv.FormatInt(id, 10) + " missing from its own tree")
}

type tagUser struct {
	UserID string `json:"userid"` // "name" is not read: the gateway needs membership only
}

type tagAnswer struct {
	apiStatus
	// TagName is only looked for: every tag has a name, so a success
	// without one is not tag/get's answer.
	TagName     *string       `json:"tagname"`
	Users       tagUserList   `json:"userlist"`
	Departments departmentIDs `json:"partylist"`
}

// check refuses userids WeCom cannot have issued, as for jscode2session:
// the gateway admits the users a tag lists by userid, so an answer naming
// "review:boss" must not pass as a member.
func (a *tagAnswer) check() error {
	switch {
	case a.TagName == nil:
		return errors.New("no tagname")
	case a.Users.over:
		return errors.New("more than " + strconv.Itoa(maxTagUsers) + " users")
	case a.Departments.over:
		return errors.New("more than " + strconv.Itoa(maxTagDepartments) + " departments")
	}
	for i, u := range a.Users.items {
		if err := checkUserID(u.UserID); err != nil {
			return errors.New("userlist[" + strconv.Itoa(i) + "]: " + err.Error())
		}
	}
	for i, id := range a.Departments.items {
		if id < 1 {
			return errors.New("partylist[" + strconv.Itoa(i) + "]: department id " + strconv.FormatInt(id, 10) + " (want ≥ 1)")
		}
	}
	return nil
}

// The lists below decode at most their bound: past it they stop and set
// over, so that an answer of millions of tiny entries ("[{},{},…]" fits
// millions in the body limit) allocates no more than the bound, while the
// rest of the answer (its errcode first) still decodes and check refuses
// it as definitive. Elements of the wrong type fail the decode, like any
// other garbage.

type departmentList boundedList[departmentEntry]
type tagUserList boundedList[tagUser]
type departmentIDs boundedList[int64]

func (l *departmentList) UnmarshalJSON(b []byte) error {
	return (*boundedList[departmentEntry])(l).decode(b, maxDepartments)
}

func (l *tagUserList) UnmarshalJSON(b []byte) error {
	return (*boundedList[tagUser])(l).decode(b, maxTagUsers)
}

func (l *departmentIDs) UnmarshalJSON(b []byte) error {
	return (*boundedList[int64])(l).decode(b, maxTagDepartments)
}

type boundedList[T any] struct {
	items []T
	over  bool // the array had more than the bound
}

func (l *boundedList[T]) decode(b []byte, bound int) error {
	*l = boundedList[T]{}
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil { // null, as if the field were absent
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return errors.New("want an array")
	}
	for dec.More() {
		if len(l.items) == bound {
			l.over = true
			return nil
		}
		var v T
		if err := dec.Decode(&v); err != nil {
			return err
		}
		l.items = append(l.items, v)
	}
	return nil
}
