package wecomsim

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Departments and tags. The simulated app's visible range is the whole corp (the root
// department, WeCom's default, /document/path/90583) minus the members marked Hidden, so
// department/simplelist shows every department and tag/get every member but the hidden ones.
//
// A department that a member or a tag names but that nobody declared exists, unnamed, right under
// the root: configurations written before departments could be declared name departments
// freely, and WeCom itself never has a member in a department that does not exist. Only a
// parent must exist already, because placing a department under one that does not exist is a
// mistake rather than a shorthand.

func newCorp(c Corp) *corp {
	cs := &corp{
		name: c.Name, id: c.CorpID, secret: c.Secret,
		users: make(map[string]User),
		depts: map[int64]Department{RootDepartment: {ID: RootDepartment}},
		tags:  make(map[int64]Tag),

		sessionKeys: make(map[string]string),
		callback:    newCallbackTarget(c.CorpID, c.Callback),
	}
	for _, d := range c.Departments {
		if d.ID >= 1 {
			cs.depts[d.ID] = normalizeDepartment(d)
		}
	}
	if root := cs.depts[RootDepartment]; root.Name == "" {
		root.Name = c.Name // WeCom's root department bears the company's name
		cs.depts[RootDepartment] = root
	}
	for _, u := range c.Users {
		u = normalizeUser(u)
		cs.ensureDepartmentsLocked(u.Departments)
		cs.users[u.UserID] = u
	}
	for _, t := range c.Tags {
		if t.ID < 1 {
			continue
		}
		t = normalizeTag(t)
		t.UserIDs = slices.DeleteFunc(t.UserIDs, func(id string) bool { _, ok := cs.users[id]; return !ok })
		cs.ensureDepartmentsLocked(t.Departments)
		cs.tags[t.ID] = t
	}
	cs.repairTreeLocked()
	return cs
}

func normalizeDepartment(d Department) Department {
	switch {
	case d.ID == RootDepartment:
		d.ParentID = 0
	case d.ParentID == 0:
		d.ParentID = RootDepartment
	}
	return d
}

// normalizeTag copies the lists (the caller keeps its slices) without duplicates, as WeCom
// keeps a member once however often it is added.
func normalizeTag(t Tag) Tag {
	t.UserIDs = dedupe(t.UserIDs)
	t.Departments = dedupe(t.Departments)
	return t
}

func dedupe[T comparable](in []T) []T {
	out := make([]T, 0, len(in))
	seen := make(map[T]bool, len(in))
	for _, v := range in {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

func checkDepartmentIDs(ids []int64) error {
	for _, id := range ids {
		if id < 1 {
			return fmt.Errorf("%d is not a department id (ids start at 1, the root)", id)
		}
	}
	return nil
}

// ensureDepartmentsLocked creates the departments of ids that do not exist, under the root.
func (c *corp) ensureDepartmentsLocked(ids []int64) {
	for _, id := range ids {
		if _, ok := c.depts[id]; !ok && id >= 1 {
			c.depts[id] = Department{ID: id, ParentID: RootDepartment}
		}
	}
}

// repairTreeLocked hangs under the root every department whose parent does not exist or that
// is its own ancestor, so that an unvalidated Config cannot make a walk of the tree loop.
func (c *corp) repairTreeLocked() {
	for _, id := range slices.Sorted(maps.Keys(c.depts)) {
		seen := make(map[int64]bool)
		for cur := id; cur != RootDepartment; {
			seen[cur] = true
			d := c.depts[cur]
			if _, ok := c.depts[d.ParentID]; !ok || seen[d.ParentID] {
				d.ParentID = RootDepartment
				c.depts[cur] = d
				break
			}
			cur = d.ParentID
		}
	}
}

// childrenLocked maps each department to its sub-departments in WeCom's order among siblings:
// larger order first, then by id so that answers do not depend on map order.
func (c *corp) childrenLocked() map[int64][]int64 {
	kids := make(map[int64][]int64)
	for id, d := range c.depts {
		if id != RootDepartment {
			kids[d.ParentID] = append(kids[d.ParentID], id)
		}
	}
	for _, k := range kids {
		slices.SortFunc(k, func(a, b int64) int {
			if oa, ob := c.depts[a].Order, c.depts[b].Order; oa != ob {
				return cmp.Compare(ob, oa)
			}
			return cmp.Compare(a, b)
		})
	}
	return kids
}

// subtreeLocked returns department id and all of its sub-departments, recursively, each before
// its own sub-departments.
func (c *corp) subtreeLocked(id int64) []Department {
	kids := c.childrenLocked()
	var out []Department
	for stack := []int64{id}; len(stack) > 0; {
		cur := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		out = append(out, c.depts[cur])
		k := kids[cur]
		for i := len(k) - 1; i >= 0; i-- {
			stack = append(stack, k[i])
		}
	}
	return out
}

// withinLocked reports whether department id is ancestor or one of its sub-departments.
func (c *corp) withinLocked(id, ancestor int64) bool {
	for range len(c.depts) + 1 { // the tree has no cycle; the bound only guards that belief
		if id == ancestor {
			return true
		}
		d, ok := c.depts[id]
		if !ok || id == RootDepartment {
			return false
		}
		id = d.ParentID
	}
	return false
}

// setDepartmentLocked creates department d or moves and renames it. Its parent must exist and
// must not be d itself or below it.
func (c *corp) setDepartmentLocked(d Department) error {
	if d.ID < 1 {
		return fmt.Errorf("%d is not a department id (ids start at 1, the root)", d.ID)
	}
	if d.Order < 0 {
		return fmt.Errorf("department %d: order %d is negative", d.ID, d.Order)
	}
	if d.ID == RootDepartment {
		if d.ParentID != 0 {
			return errors.New("department 1 is the root: it has no parent and cannot move")
		}
		if d.Name == "" {
			d.Name = c.name
		}
		c.depts[d.ID] = d
		return nil
	}
	d = normalizeDepartment(d)
	if _, ok := c.depts[d.ParentID]; !ok {
		return fmt.Errorf("%w %d: department %d cannot move under it", ErrUnknownDepartment, d.ParentID, d.ID)
	}
	if c.withinLocked(d.ParentID, d.ID) {
		return fmt.Errorf("%w: department %d cannot move under %d, which is itself or one of its sub-departments", ErrDepartmentCycle, d.ID, d.ParentID)
	}
	c.depts[d.ID] = d
	return nil
}

// deleteDepartmentLocked deletes an empty department, as WeCom's department/delete does only for
// a department without sub-departments or members; tags that listed it no longer do.
func (c *corp) deleteDepartmentLocked(id int64) error {
	if _, ok := c.depts[id]; !ok {
		return fmt.Errorf("%w %d in corp %q", ErrUnknownDepartment, id, c.name)
	}
	if id == RootDepartment {
		return errors.New("department 1 is the root: it cannot be deleted")
	}
	if kids := c.childrenLocked()[id]; len(kids) > 0 {
		return fmt.Errorf("%w: department %d has sub-departments (%s); move or delete them first", ErrDepartmentNotEmpty, id, joinInts(kids))
	}
	var members []string
	for _, u := range c.users {
		if slices.Contains(u.Departments, id) {
			members = append(members, u.UserID)
		}
	}
	if len(members) > 0 {
		slices.Sort(members)
		return fmt.Errorf("%w: department %d has members (%s); move them first", ErrDepartmentNotEmpty, id, strings.Join(members, ", "))
	}
	delete(c.depts, id)
	for tid, t := range c.tags {
		if slices.Contains(t.Departments, id) {
			t.Departments = slices.DeleteFunc(slices.Clone(t.Departments), func(d int64) bool { return d == id })
			c.tags[tid] = t
		}
	}
	return nil
}

// setTagLocked creates or replaces tag t. Its users must be members of the corp; departments
// that do not exist are created under the root, as for members.
func (c *corp) setTagLocked(t Tag) error {
	if t.ID < 1 {
		return fmt.Errorf("%d is not a tag id (ids start at 1)", t.ID)
	}
	if err := checkDepartmentIDs(t.Departments); err != nil {
		return fmt.Errorf("tag %d: departments: %w", t.ID, err)
	}
	for _, u := range t.UserIDs {
		if _, ok := c.users[u]; !ok {
			return fmt.Errorf("%w %q in corp %q: tag %d cannot list it", ErrUnknownUser, u, c.name, t.ID)
		}
	}
	t = normalizeTag(t)
	c.ensureDepartmentsLocked(t.Departments)
	c.tags[t.ID] = t
	return nil
}

func joinInts(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(s, ", ")
}

// SetDepartment creates department d in corp (name or corp_id; "" = the first corp), or moves
// and renames it: ParentID 0 means the root. The parent must exist ([ErrUnknownDepartment]) and
// must not be d or one of its sub-departments ([ErrDepartmentCycle]). The root (1) may be
// renamed but not moved.
func (s *Simulator) SetDepartment(corpKey string, d Department) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.findCorpLocked(corpKey)
	if c == nil {
		return fmt.Errorf("%w %q", ErrUnknownCorp, corpKey)
	}
	return c.setDepartmentLocked(d)
}

// DeleteDepartment deletes a department of corp that has neither sub-departments nor members
// ([ErrDepartmentNotEmpty] otherwise) and takes it off the tags that list it.
func (s *Simulator) DeleteDepartment(corpKey string, id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.findCorpLocked(corpKey)
	if c == nil {
		return fmt.Errorf("%w %q", ErrUnknownCorp, corpKey)
	}
	return c.deleteDepartmentLocked(id)
}

// SetTag creates tag t in corp or replaces the tag with the same id. Its users must be members
// of the corp ([ErrUnknownUser]).
func (s *Simulator) SetTag(corpKey string, t Tag) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.findCorpLocked(corpKey)
	if c == nil {
		return fmt.Errorf("%w %q", ErrUnknownCorp, corpKey)
	}
	return c.setTagLocked(t)
}

// DeleteTag deletes a tag of corp.
func (s *Simulator) DeleteTag(corpKey string, id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.findCorpLocked(corpKey)
	if c == nil {
		return fmt.Errorf("%w %q", ErrUnknownCorp, corpKey)
	}
	if _, ok := c.tags[id]; !ok {
		return fmt.Errorf("%w %d in corp %q", ErrUnknownTag, id, c.name)
	}
	delete(c.tags, id)
	return nil
}

// Validate reports what [New] would otherwise repair or ignore in the corps' contacts: users
// without userid or configured twice, unknown statuses, ids that are no ids, departments
// declared twice, a parent that is not declared (a department that is merely named by a member
// exists under the root; declaring it is how to place it elsewhere), parent cycles, tags
// declared twice or listing someone who is not a member. It checks neither corp names nor
// secrets, which the Caddy module does.
func (cfg Config) Validate() error {
	for i, c := range cfg.Corps {
		label := c.Name
		if label == "" {
			label = fmt.Sprintf("#%d", i+1)
		}
		users := make(map[string]bool, len(c.Users))
		for _, u := range c.Users {
			switch {
			case u.UserID == "":
				return fmt.Errorf("corp %s: user without userid", label)
			case users[u.UserID]:
				return fmt.Errorf("corp %s: user %s is configured twice", label, u.UserID)
			case !validStatus(u.Status):
				return fmt.Errorf("corp %s: user %s: status %d is not one of 1, 2, 4, 5", label, u.UserID, u.Status)
			}
			if err := checkDepartmentIDs(u.Departments); err != nil {
				return fmt.Errorf("corp %s: user %s: department: %w", label, u.UserID, err)
			}
			users[u.UserID] = true
		}
		if err := checkContacts(c.Departments, c.Tags, func(id string) bool { return users[id] }); err != nil {
			return fmt.Errorf("corp %s: %w", label, err)
		}
		if err := checkCallback(c.Callback); err != nil {
			return fmt.Errorf("corp %s: %w", label, err)
		}
	}
	return nil
}

// checkContacts checks a corp's declared departments and tags; isUser tells its members.
// Departments may be declared in any order: a parent may come after its sub-departments.
func checkContacts(deps []Department, tags []Tag, isUser func(string) bool) error {
	parent := make(map[int64]int64, len(deps))
	for _, d := range deps {
		switch {
		case d.ID < 1:
			return contactsErr("department", d.ID, "department %d: not a department id (ids start at 1, the root)", d.ID)
		case d.ID == RootDepartment && d.ParentID != 0:
			return contactsErr("department", d.ID, "department 1 is the root: it has no parent")
		case d.ParentID < 0:
			return contactsErr("department", d.ID, "department %d: parent %d is not a department id", d.ID, d.ParentID)
		case d.Order < 0:
			return contactsErr("department", d.ID, "department %d: order %d is negative", d.ID, d.Order)
		}
		if _, dup := parent[d.ID]; dup {
			return contactsErr("department", d.ID, "department %d is declared twice", d.ID)
		}
		parent[d.ID] = normalizeDepartment(d).ParentID
	}
	for _, d := range deps {
		p := parent[d.ID]
		if d.ID == RootDepartment || p == RootDepartment {
			continue
		}
		if p == d.ID {
			return contactsErr("department", d.ID, "department %d: parent %d: a department cannot be its own parent", d.ID, p)
		}
		if _, ok := parent[p]; !ok {
			return contactsErr("department", d.ID, "department %d: parent %d is not declared in this corp (declare it with its own department line, or use 1, the root)", d.ID, p)
		}
	}
	for _, d := range deps {
		chain := []int64{d.ID}
		// Every parent is declared by now, so the walk ends at the root unless it meets a cycle;
		// one that does not pass through d is reported from one of its own members.
		for cur := parent[d.ID]; cur != RootDepartment && cur != 0 && len(chain) <= len(parent); cur = parent[cur] {
			chain = append(chain, cur)
			if cur == d.ID {
				s := make([]string, len(chain))
				for i, id := range chain {
					s[i] = strconv.FormatInt(id, 10)
				}
				return contactsErr("department", d.ID, "department %d: parent cycle %s: a department cannot be under its own sub-department", d.ID, strings.Join(s, " → "))
			}
		}
	}
	seen := make(map[int64]bool, len(tags))
	for _, t := range tags {
		switch {
		case t.ID < 1:
			return contactsErr("tag", t.ID, "tag %d: not a tag id (ids start at 1)", t.ID)
		case seen[t.ID]:
			return contactsErr("tag", t.ID, "tag %d is declared twice", t.ID)
		}
		seen[t.ID] = true
		for _, u := range t.UserIDs {
			if !isUser(u) {
				return contactsErr("tag", t.ID, "tag %d: users: %q is not a user of this corp", t.ID, u)
			}
		}
		if err := checkDepartmentIDs(t.Departments); err != nil {
			return contactsErr("tag", t.ID, "tag %d: departments: %v", t.ID, err)
		}
	}
	return nil
}

// contactsError names the department or tag that a check failed on, so that the Caddyfile
// parser can point at its line rather than at the end of the corp.
type contactsError struct {
	kind string // "department" or "tag"
	id   int64
	msg  string
}

func (e *contactsError) Error() string { return e.msg }

func contactsErr(kind string, id int64, format string, args ...any) error {
	return &contactsError{kind: kind, id: id, msg: fmt.Sprintf(format, args...)}
}

// DeleteUser deletes a member of corp (name or corp_id; "" = the first corp), as WeCom's
// 删除成员: tags no longer list them. No callback is sent (the development interface's
// DELETE users sends one).
func (s *Simulator) DeleteUser(corpKey, userID string) error {
	_, _, err := s.deleteUser(corpKey, userID)
	return err
}

// deleteUser is DeleteUser returning the corp and the user as they were.
func (s *Simulator) deleteUser(corpKey, userID string) (*corp, User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.findCorpLocked(corpKey)
	if c == nil {
		return nil, User{}, fmt.Errorf("%w %q", ErrUnknownCorp, corpKey)
	}
	u, ok := c.users[userID]
	if !ok {
		return nil, User{}, fmt.Errorf("%w %q in corp %q", ErrUnknownUser, userID, c.name)
	}
	delete(c.users, userID)
	delete(c.sessionKeys, userID)
	for id, t := range c.tags {
		t.UserIDs = slices.DeleteFunc(slices.Clone(t.UserIDs), func(m string) bool { return m == userID })
		c.tags[id] = t
	}
	return c, u, nil
}

// renameUserLocked gives member from the userid to, as WeCom allows once for a generated
// userid: tags follow.
func (c *corp) renameUserLocked(from, to string) error {
	u, ok := c.users[from]
	if !ok {
		return fmt.Errorf("%w %q in corp %q", ErrUnknownUser, from, c.name)
	}
	if _, taken := c.users[to]; taken || to == "" {
		return fmt.Errorf("new_userid %q is empty or taken", to)
	}
	delete(c.users, from)
	u.UserID = to
	c.users[to] = u
	if k, ok := c.sessionKeys[from]; ok {
		delete(c.sessionKeys, from)
		c.sessionKeys[to] = k
	}
	for id, t := range c.tags {
		t.UserIDs = slices.Clone(t.UserIDs)
		for i, m := range t.UserIDs {
			if m == from {
				t.UserIDs[i] = to
			}
		}
		c.tags[id] = t
	}
	return nil
}
