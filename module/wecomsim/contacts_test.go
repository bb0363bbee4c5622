package wecomsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// treeConfig gives acme a department tree:
//
//	1 acme ── 2 销售部 (order 10) ── 5 华南 (order 20)
//	        │                    └─ 3 华北 ── 4 华北东
//	        ├─ 6 研发部 (order 5)
//	        └─ 9 (named only by zhaoliu: under the root)
func treeConfig() Config {
	return Config{Corps: []Corp{
		{Name: "acme", CorpID: acmeID, Secret: acmeSecret,
			Departments: []Department{
				{ID: 4, ParentID: 3, Name: "华北东"}, // before its parent: order does not matter
				{ID: 2, Name: "销售部", Order: 10},
				{ID: 3, ParentID: 2, Name: "华北"},
				{ID: 5, ParentID: 2, Name: "华南", Order: 20},
				{ID: 6, ParentID: 1, Name: "研发部", Order: 5},
			},
			Users: []User{
				{UserID: "zhangsan", Name: "张三", Departments: []int64{4}},
				{UserID: "lisi", Name: "李四", Departments: []int64{2}},
				{UserID: "hidden", Name: "隐", Departments: []int64{3}, Hidden: true},
				{UserID: "wangwu", Name: "王五"},
				{UserID: "zhaoliu", Name: "赵六", Departments: []int64{9}},
			},
			Tags: []Tag{
				{ID: 1, Name: "管理层", UserIDs: []string{"zhangsan", "hidden", "lisi", "zhangsan"}, Departments: []int64{3}},
				{ID: 2, Name: "空"},
			},
		},
		{Name: "beta", CorpID: betaID, Secret: betaSecret,
			Users: []User{{UserID: "qianqi", Name: "钱七"}},
			Tags:  []Tag{{ID: 7, Name: "beta", UserIDs: []string{"qianqi"}}},
		},
	}}
}

func simplelist(t *testing.T, s *Simulator, token string, id ...string) answer {
	t.Helper()
	params := []string{"access_token", token}
	if len(id) > 0 {
		params = append(params, "id", id[0])
	}
	return call(t, s, pathDepartmentList, params...)
}

func tagGet(t *testing.T, s *Simulator, token, tagID string) answer {
	t.Helper()
	return call(t, s, pathTagGet, "access_token", token, "tagid", tagID)
}

// tree renders a simplelist answer as "id<parentid" items, in the answer's order.
func tree(t *testing.T, a answer) string {
	t.Helper()
	var v struct {
		DepartmentID []struct {
			ID       int64 `json:"id"`
			ParentID int64 `json:"parentid"`
			Order    int   `json:"order"`
		} `json:"department_id"`
	}
	if err := json.Unmarshal([]byte(a.body), &v); err != nil || v.DepartmentID == nil {
		t.Fatalf("simplelist answer without department_id: %s", a.body)
	}
	var parts []string
	for _, d := range v.DepartmentID {
		parts = append(parts, fmt.Sprintf("%d<%d", d.ID, d.ParentID))
	}
	return strings.Join(parts, " ")
}

func TestDepartmentSimplelist(t *testing.T) {
	s := New(treeConfig())
	tok := getToken(t, s, acmeID, acmeSecret)

	a := simplelist(t, s, tok)
	wantErrcode(t, "the whole tree", a, 0)
	if a.str("errmsg") != "ok" {
		t.Errorf("errmsg %q, want ok", a.str("errmsg"))
	}
	// Each department before its sub-departments; siblings by order, larger first, then id.
	if got, want := tree(t, a), "1<0 2<1 5<2 3<2 4<3 6<1 9<1"; got != want {
		t.Errorf("whole tree %s, want %s", got, want)
	}
	if !strings.Contains(a.body, `{"id":2,"parentid":1,"order":10}`) {
		t.Errorf("WeCom's shape {id, parentid, order} missing: %s", a.body)
	}
	if got := tree(t, simplelist(t, s, tok, "1")); got != "1<0 2<1 5<2 3<2 4<3 6<1 9<1" {
		t.Errorf("id=1 is the whole tree too, got %s", got)
	}

	for id, want := range map[string]string{"2": "2<1 5<2 3<2 4<3", "3": "3<2 4<3", "4": "4<3", "9": "9<1"} {
		a := simplelist(t, s, tok, id)
		wantErrcode(t, "simplelist of "+id, a, 0)
		if got := tree(t, a); got != want {
			t.Errorf("simplelist id=%s: %s, want %s", id, got, want)
		}
	}

	for _, id := range []string{"8", "0", "-2", "two", "99999999999999999999"} {
		a := simplelist(t, s, tok, id)
		wantErrcode(t, "simplelist of "+id, a, 60123)
		if !strings.HasPrefix(a.str("errmsg"), "invalid party id") || strings.Contains(a.body, "department_id") {
			t.Errorf("simplelist id=%s: %s", id, a.body)
		}
	}

	// Each corp has its own tree: beta's token sees only beta's root.
	btok := getToken(t, s, betaID, betaSecret)
	if got := tree(t, simplelist(t, s, btok)); got != "1<0" {
		t.Errorf("beta's tree %s, want its root alone", got)
	}
	wantErrcode(t, "acme's department with beta's token", simplelist(t, s, btok, "2"), 60123)
}

func TestTagGet(t *testing.T) {
	s := New(treeConfig())
	tok := getToken(t, s, acmeID, acmeSecret)

	a := tagGet(t, s, tok, "1")
	wantErrcode(t, "tag/get 1", a, 0)
	// The hidden member is outside the app's visible range and left out; duplicates are once.
	want := `{"errcode":0,"errmsg":"ok","tagname":"管理层","userlist":[{"userid":"zhangsan","name":"张三"},{"userid":"lisi","name":"李四"}],"partylist":[3]}`
	if strings.TrimSpace(a.body) != want {
		t.Errorf("tag/get 1:\n got %s\nwant %s", a.body, want)
	}
	a = tagGet(t, s, tok, "2")
	if strings.TrimSpace(a.body) != `{"errcode":0,"errmsg":"ok","tagname":"空","userlist":[],"partylist":[]}` {
		t.Errorf("an empty tag answers empty lists, not null: %s", a.body)
	}

	for _, id := range []string{"3", "0", "one", "7"} { // 7 is beta's
		a := tagGet(t, s, tok, id)
		wantErrcode(t, "tag/get "+id, a, 40068)
		if !strings.HasPrefix(a.str("errmsg"), "invalid tagid") || strings.Contains(a.body, "userlist") {
			t.Errorf("tag/get %s: %s", id, a.body)
		}
	}
	wantErrcode(t, "tag/get without tagid", call(t, s, pathTagGet, "access_token", tok), 41017)

	// A member who leaves the visible range leaves the tag's userlist; one who comes back returns.
	if err := s.SetUser("acme", User{UserID: "lisi", Name: "李四", Departments: []int64{2}, Hidden: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUser("acme", User{UserID: "hidden", Name: "隐", Departments: []int64{3}}); err != nil {
		t.Fatal(err)
	}
	if a := tagGet(t, s, tok, "1"); !strings.Contains(a.body, `"userlist":[{"userid":"zhangsan","name":"张三"},{"userid":"hidden","name":"隐"}]`) {
		t.Errorf("after hiding lisi and showing hidden: %s", a.body)
	}
}

// TestContactsTokens: the new calls check the access_token as the others do, per corp.
func TestContactsTokens(t *testing.T) {
	s := New(treeConfig())
	for _, path := range []string{pathDepartmentList, pathTagGet} {
		wantErrcode(t, path+" without a token", call(t, s, path, "tagid", "1"), 40014)
		wantErrcode(t, path+" with an unknown token", call(t, s, path, "access_token", "nope", "tagid", "1"), 40014)
	}
	tok := getToken(t, s, acmeID, acmeSecret)
	s.ExpireTokens("acme", 42001)
	wantErrcode(t, "simplelist with an expired token", simplelist(t, s, tok), 42001)
	wantErrcode(t, "tag/get with an expired token", tagGet(t, s, tok, "1"), 42001)

	tok = getToken(t, s, acmeID, acmeSecret)
	s.ExpireTokens("acme", 40014)
	wantErrcode(t, "simplelist with an invalidated token", simplelist(t, s, tok), 40014)
	wantErrcode(t, "tag/get with an invalidated token", tagGet(t, s, tok, "1"), 40014)

	tok = getToken(t, s, acmeID, acmeSecret)
	wantErrcode(t, "simplelist with a new token", simplelist(t, s, tok), 0)
	wantErrcode(t, "tag/get with a new token", tagGet(t, s, tok, "1"), 0)
	// A token answers for its own corp: acme's tag 1 is not beta's.
	btok := getToken(t, s, betaID, betaSecret)
	wantErrcode(t, "acme's tag with beta's token", tagGet(t, s, btok, "1"), 40068)
	if a := tagGet(t, s, btok, "7"); !strings.Contains(a.body, `"qianqi"`) {
		t.Errorf("beta's tag 7: %s", a.body)
	}
}

func TestContactsFaultsAndCounts(t *testing.T) {
	s := New(treeConfig())
	tok := getToken(t, s, acmeID, acmeSecret)
	s.InjectFault(Fault{Endpoint: "department/simplelist", Errcode: 45009, Count: 1})
	s.InjectFault(Fault{Endpoint: "/cgi-bin/tag/get", Status: http.StatusBadGateway, Count: 1})
	s.InjectFault(Fault{Endpoint: "tag/get", Garbage: true, Count: 1})

	wantErrcode(t, "user/get is not affected", userGet(t, s, tok, "zhangsan"), 0)
	wantErrcode(t, "faulted simplelist", simplelist(t, s, tok), 45009)
	wantErrcode(t, "simplelist after the fault", simplelist(t, s, tok, "2"), 0)
	if a := tagGet(t, s, tok, "1"); a.status != http.StatusBadGateway {
		t.Errorf("faulted tag/get: HTTP %d %s, want 502", a.status, a.body)
	}
	if a := tagGet(t, s, tok, "1"); a.status != http.StatusOK || a.m != nil {
		t.Errorf("garbage tag/get: HTTP %d %s, want 200 and no JSON", a.status, a.body)
	}
	wantErrcode(t, "tag/get after the faults", tagGet(t, s, tok, "1"), 0)

	s.InjectFault(Fault{Endpoint: "*", Errcode: -1, Count: 2})
	wantErrcode(t, "simplelist under a fault on every endpoint", simplelist(t, s, tok), -1)
	wantErrcode(t, "tag/get under a fault on every endpoint", tagGet(t, s, tok, "1"), -1)

	if c := s.Counts(); c["department/simplelist"] != 3 || c["tag/get"] != 4 || c["user/get"] != 1 {
		t.Errorf("counts %v, want simplelist 3, tag/get 4, user/get 1", c)
	}

	// The dev interface takes the new endpoint names.
	st, _, body := dev(t, s, "POST", "/sim/faults", `{"endpoint":"department/simplelist","errcode":-1,"count":1}`)
	wantStatus(t, "a simplelist fault by the dev interface", st, 204, body)
	st, _, body = dev(t, s, "POST", "/sim/faults", `{"endpoint":"tag/get","delay":"1ms","count":1}`)
	wantStatus(t, "a tag/get fault by the dev interface", st, 204, body)
	wantErrcode(t, "simplelist faulted by the dev interface", simplelist(t, s, tok), -1)
	wantErrcode(t, "tag/get delayed by the dev interface", tagGet(t, s, tok, "1"), 0)
	st, _, body = dev(t, s, "POST", "/sim/faults", `{"endpoint":"tag/list","errcode":-1}`)
	if st != 400 || !strings.Contains(body, "department/simplelist") || !strings.Contains(body, "tag/get") {
		t.Errorf("an unknown endpoint: HTTP %d %s, want 400 listing the endpoints", st, body)
	}
}

func TestImplicitDepartments(t *testing.T) {
	s := New(testConfig()) // zhangsan is in 2 and 3, which nobody declared
	tok := getToken(t, s, acmeID, acmeSecret)
	if got := tree(t, simplelist(t, s, tok)); got != "1<0 2<1 3<1" {
		t.Errorf("undeclared departments: %s, want them under the root", got)
	}
	// A member moved to a department that does not exist creates it, by the Go API and by the
	// dev interface alike; so does a tag.
	if err := s.SetUser("acme", User{UserID: "lisi", Departments: []int64{20}}); err != nil {
		t.Fatal(err)
	}
	st, _, body := dev(t, s, "PUT", "/sim/users", `{"corp":"acme","userid":"wangwu","department":[21]}`)
	wantStatus(t, "move wangwu to a new department", st, 200, body)
	if err := s.SetTag("acme", Tag{ID: 5, Departments: []int64{22}}); err != nil {
		t.Fatal(err)
	}
	if got := tree(t, simplelist(t, s, tok)); got != "1<0 2<1 3<1 20<1 21<1 22<1" {
		t.Errorf("after naming 20, 21 and 22: %s", got)
	}
	if err := s.SetUser("acme", User{UserID: "lisi", Departments: []int64{0}}); err == nil {
		t.Error("SetUser took department 0")
	}
	st, _, body = dev(t, s, "PUT", "/sim/users", `{"corp":"acme","userid":"wangwu","department":[-1]}`)
	wantStatus(t, "a department id below 1", st, 400, body)
}

func TestNewRepairsTree(t *testing.T) {
	// New does not validate: a cycle and an unknown parent end up under the root rather than
	// making a walk of the tree loop.
	cfg := Config{Corps: []Corp{{Name: "a", CorpID: "wwa", Secret: "s", Departments: []Department{
		{ID: 2, ParentID: 3}, {ID: 3, ParentID: 2}, {ID: 4, ParentID: 40}, {ID: 5, ParentID: 5}, {ID: 0}, {ID: 1, ParentID: 2},
	}, Tags: []Tag{{ID: 1, UserIDs: []string{"nobody"}}}}}}
	if err := cfg.Validate(); err == nil {
		t.Error("Validate accepts a cycle")
	}
	s := New(cfg)
	tok := getToken(t, s, "wwa", "s")
	if got := tree(t, simplelist(t, s, tok)); got != "1<0 3<1 2<3 4<1 5<1" {
		t.Errorf("repaired tree %s", got)
	}
	if a := tagGet(t, s, tok, "1"); !strings.Contains(a.body, `"userlist":[]`) {
		t.Errorf("a tag's unknown user is dropped: %s", a.body)
	}
	if a := simplelist(t, s, tok, "1"); !strings.Contains(a.body, `"errcode":0`) {
		t.Errorf("root: %s", a.body)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := treeConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	if err := testConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Corp)
		want   string
	}{
		{"unknown parent", func(c *Corp) { c.Departments[0].ParentID = 8 }, "department 4: parent 8 is not declared"},
		{"parent only a member's department", func(c *Corp) { c.Departments[0].ParentID = 9 }, "parent 9 is not declared"},
		{"own parent", func(c *Corp) { c.Departments[0].ParentID = 4 }, "department 4: parent 4: a department cannot be its own parent"},
		{"cycle", func(c *Corp) { c.Departments[1].ParentID = 4 }, "parent cycle 4 → 3 → 2 → 4"},
		{"duplicate department", func(c *Corp) { c.Departments[1].ID = 4 }, "department 4 is declared twice"},
		{"bad department id", func(c *Corp) { c.Departments[1].ID = 0 }, "department 0: not a department id"},
		{"root with a parent", func(c *Corp) { c.Departments = append(c.Departments, Department{ID: 1, ParentID: 2}) }, "department 1 is the root"},
		{"negative order", func(c *Corp) { c.Departments[1].Order = -1 }, "order -1"},
		{"duplicate tag", func(c *Corp) { c.Tags[1].ID = 1 }, "tag 1 is declared twice"},
		{"bad tag id", func(c *Corp) { c.Tags[1].ID = 0 }, "tag 0: not a tag id"},
		{"tag of a stranger", func(c *Corp) { c.Tags[0].UserIDs = []string{"nobody"} }, `tag 1: users: "nobody" is not a user`},
		{"tag department 0", func(c *Corp) { c.Tags[0].Departments = []int64{0} }, "tag 1: departments: 0 is not a department id"},
		{"user department 0", func(c *Corp) { c.Users[0].Departments = []int64{0} }, "user zhangsan: department: 0 is not"},
		{"duplicate user", func(c *Corp) { c.Users[1].UserID = "zhangsan" }, "user zhangsan is configured twice"},
		{"bad status", func(c *Corp) { c.Users[1].Status = 3 }, "status 3"},
	} {
		cfg := treeConfig()
		tc.mutate(&cfg.Corps[0])
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "corp acme: ") {
			t.Errorf("%s: error %v, want one naming corp acme and containing %q", tc.name, err, tc.want)
		}
	}
	// The root may be declared, to name it.
	cfg := treeConfig()
	cfg.Corps[0].Departments = append(cfg.Corps[0].Departments, Department{ID: 1, Name: "ACME 公司"})
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
}

func TestSetDepartment(t *testing.T) {
	s := New(treeConfig())
	tok := getToken(t, s, acmeID, acmeSecret)

	// Move 华北 (with 华北东 below it) from 销售部 to 研发部.
	if err := s.SetDepartment("acme", Department{ID: 3, ParentID: 6, Name: "华北"}); err != nil {
		t.Fatal(err)
	}
	if got := tree(t, simplelist(t, s, tok, "6")); got != "6<1 3<6 4<3" {
		t.Errorf("研发部 after the move: %s", got)
	}
	if got := tree(t, simplelist(t, s, tok, "2")); got != "2<1 5<2" {
		t.Errorf("销售部 after the move: %s", got)
	}
	// A new department, ParentID 0 meaning the root.
	if err := s.SetDepartment(acmeID, Department{ID: 10, Name: "财务部"}); err != nil {
		t.Fatal(err)
	}
	if got := tree(t, simplelist(t, s, tok, "10")); got != "10<1" {
		t.Errorf("a new department: %s", got)
	}

	for _, tc := range []struct {
		d    Department
		want error
	}{
		{Department{ID: 6, ParentID: 4}, ErrDepartmentCycle}, // 4 is below 6 now
		{Department{ID: 3, ParentID: 3}, ErrDepartmentCycle},
		{Department{ID: 3, ParentID: 77}, ErrUnknownDepartment},
		{Department{ID: 1, ParentID: 2}, nil},
		{Department{ID: 0}, nil},
		{Department{ID: 11, Order: -1}, nil},
	} {
		err := s.SetDepartment("acme", tc.d)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("SetDepartment(%+v): %v, want an error (%v)", tc.d, err, tc.want)
		}
	}
	if err := s.SetDepartment("nosuch", Department{ID: 12}); !errors.Is(err, ErrUnknownCorp) {
		t.Errorf("unknown corp: %v", err)
	}
	if got := tree(t, simplelist(t, s, tok)); got != "1<0 2<1 5<2 6<1 3<6 4<3 9<1 10<1" {
		t.Errorf("the refused changes changed the tree: %s", got)
	}
	// The root may be renamed.
	if err := s.SetDepartment("acme", Department{ID: 1, Name: "ACME 公司"}); err != nil {
		t.Error(err)
	}
}

func TestDeleteDepartmentAndTag(t *testing.T) {
	s := New(treeConfig())
	tok := getToken(t, s, acmeID, acmeSecret)
	for id, want := range map[int64]string{3: "sub-departments (4)", 4: "members (zhangsan)", 2: "sub-departments (5, 3)"} {
		err := s.DeleteDepartment("acme", id)
		if !errors.Is(err, ErrDepartmentNotEmpty) || !strings.Contains(err.Error(), want) {
			t.Errorf("delete %d: %v, want ErrDepartmentNotEmpty naming %s", id, err, want)
		}
	}
	if err := s.DeleteDepartment("acme", 1); err == nil || !strings.Contains(err.Error(), "root") {
		t.Errorf("delete the root: %v", err)
	}
	if err := s.DeleteDepartment("acme", 77); !errors.Is(err, ErrUnknownDepartment) {
		t.Errorf("delete an unknown department: %v", err)
	}
	// Empty 华北东, then 华北, which tag 1 lists.
	if err := s.SetUser("acme", User{UserID: "zhangsan", Name: "张三", Departments: []int64{5}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUser("acme", User{UserID: "hidden", Name: "隐", Departments: []int64{5}, Hidden: true}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{4, 3} {
		if err := s.DeleteDepartment("acme", id); err != nil {
			t.Fatalf("delete %d: %v", id, err)
		}
	}
	wantErrcode(t, "simplelist of a deleted department", simplelist(t, s, tok, "3"), 60123)
	if a := tagGet(t, s, tok, "1"); !strings.Contains(a.body, `"partylist":[]`) {
		t.Errorf("the deleted department is still on tag 1: %s", a.body)
	}

	if err := s.DeleteTag("acme", 1); err != nil {
		t.Fatal(err)
	}
	wantErrcode(t, "tag/get of a deleted tag", tagGet(t, s, tok, "1"), 40068)
	if err := s.DeleteTag("acme", 1); !errors.Is(err, ErrUnknownTag) {
		t.Errorf("deleting it again: %v", err)
	}
}

func TestSetTag(t *testing.T) {
	s := New(treeConfig())
	tok := getToken(t, s, acmeID, acmeSecret)
	users := []string{"wangwu"}
	if err := s.SetTag("acme", Tag{ID: 2, Name: "新", UserIDs: users, Departments: []int64{4, 6}}); err != nil {
		t.Fatal(err)
	}
	users[0] = "lisi" // the simulator keeps its own copy
	if a := tagGet(t, s, tok, "2"); !strings.Contains(a.body, `"tagname":"新","userlist":[{"userid":"wangwu","name":"王五"}],"partylist":[4,6]`) {
		t.Errorf("tag 2 after SetTag: %s", a.body)
	}
	if err := s.SetTag("acme", Tag{ID: 2, UserIDs: []string{"nobody"}}); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("a tag of a stranger: %v", err)
	}
	for _, bad := range []Tag{{ID: 0}, {ID: 2, Departments: []int64{0}}} {
		if err := s.SetTag("acme", bad); err == nil {
			t.Errorf("SetTag(%+v) succeeded", bad)
		}
	}
	if a := tagGet(t, s, tok, "2"); !strings.Contains(a.body, `"wangwu"`) {
		t.Errorf("refused changes changed tag 2: %s", a.body)
	}
}

func TestDevDepartments(t *testing.T) {
	s := New(treeConfig())
	tok := getToken(t, s, acmeID, acmeSecret)

	// Move 华北东 from 华北 to 华南: only the parent is sent, the name stays.
	st, m, body := dev(t, s, "PUT", "/sim/departments", `{"corp":"acme","id":4,"parent":5}`)
	wantStatus(t, "move 华北东", st, 200, body)
	if m["corp"] != "acme" || m["id"] != float64(4) || m["parent"] != float64(5) || m["name"] != "华北东" || m["order"] != float64(0) {
		t.Errorf("the moved department: %s", body)
	}
	if got := tree(t, simplelist(t, s, tok, "2")); got != "2<1 5<2 4<5 3<2" {
		t.Errorf("销售部 after the move: %s", got)
	}
	// Rename and reorder only.
	st, _, body = dev(t, s, "PUT", "/sim/departments", `{"corp":"acme","id":3,"name":"华北区","order":30}`)
	wantStatus(t, "rename 华北", st, 200, body)
	if got := tree(t, simplelist(t, s, tok, "2")); got != "2<1 3<2 5<2 4<5" {
		t.Errorf("销售部 after reordering: %s", got)
	}
	// Create, under the root by default and elsewhere by parent.
	st, m, body = dev(t, s, "PUT", "/sim/departments", `{"id":30,"name":"财务部"}`) // the first corp
	wantStatus(t, "create 财务部", st, 200, body)
	if m["parent"] != float64(1) || m["name"] != "财务部" {
		t.Errorf("the new department: %s", body)
	}
	st, _, body = dev(t, s, "PUT", "/sim/departments", `{"corp":"`+acmeID+`","id":31,"parent":30}`)
	wantStatus(t, "create a sub-department", st, 200, body)
	if got := tree(t, simplelist(t, s, tok, "30")); got != "30<1 31<30" {
		t.Errorf("财务部: %s", got)
	}

	for _, tc := range []struct {
		method, body string
		status       int
		errorCode    string
	}{
		{"PUT", `{"corp":"acme","id":2,"parent":4}`, 400, "invalid_request"}, // 4 is below 2: a cycle
		{"PUT", `{"corp":"acme","id":2,"parent":2}`, 400, "invalid_request"},
		{"PUT", `{"corp":"acme","id":1,"parent":2}`, 400, "invalid_request"}, // the root does not move
		{"PUT", `{"corp":"acme","id":2,"parent":77}`, 404, "not_found"},
		{"PUT", `{"corp":"acme","parent":2}`, 400, "invalid_request"},
		{"PUT", `{"corp":"acme","id":-3}`, 400, "invalid_request"},
		{"PUT", `{"corp":"acme","id":2,"order":-1}`, 400, "invalid_request"},
		{"PUT", `{"corp":"acme","id":2,"parent":"1"}`, 400, "invalid_request"},
		{"PUT", `{"corp":"acme","id":2,"parentid":1}`, 400, "invalid_request"},
		{"PUT", `{"corp":"nosuch","id":2}`, 404, "not_found"},
		{"DELETE", `{"corp":"acme","id":2}`, 409, "conflict"},
		{"DELETE", `{"corp":"acme","id":30}`, 409, "conflict"},
		{"DELETE", `{"corp":"acme","id":5}`, 409, "conflict"},
		{"DELETE", `{"corp":"acme","id":1}`, 400, "invalid_request"},
		{"DELETE", `{"corp":"acme","id":77}`, 404, "not_found"},
		{"DELETE", `{"corp":"acme"}`, 400, "invalid_request"},
		{"GET", ``, 405, "method_not_allowed"},
	} {
		st, m, body := dev(t, s, tc.method, "/sim/departments", tc.body)
		if st != tc.status || m["error"] != tc.errorCode {
			t.Errorf("%s %s: HTTP %d %s, want %d %s", tc.method, tc.body, st, body, tc.status, tc.errorCode)
		}
	}
	if st, m, body := dev(t, s, "PUT", "/sim/departments", `{"corp":"acme","id":2,"parent":4}`); st != 400 || !strings.Contains(m["message"].(string), "sub-departments") {
		t.Errorf("the cycle's message: %s", body)
	}
	if got := tree(t, simplelist(t, s, tok)); got != "1<0 2<1 3<2 5<2 4<5 6<1 9<1 30<1 31<30" {
		t.Errorf("the refused changes changed the tree: %s", got)
	}

	st, _, body = dev(t, s, "DELETE", "/sim/departments", `{"corp":"acme","id":31}`)
	wantStatus(t, "delete an empty department", st, 204, body)
	wantErrcode(t, "simplelist of the deleted department", simplelist(t, s, tok, "31"), 60123)
}

func TestDevTags(t *testing.T) {
	s := New(treeConfig())
	tok := getToken(t, s, acmeID, acmeSecret)

	// Only the users are sent: name and departments stay.
	st, m, body := dev(t, s, "PUT", "/sim/tags", `{"corp":"acme","id":1,"users":["wangwu","lisi"]}`)
	wantStatus(t, "set tag 1's users", st, 200, body)
	if m["corp"] != "acme" || m["name"] != "管理层" || fmt.Sprint(m["users"]) != "[wangwu lisi]" || fmt.Sprint(m["departments"]) != "[3]" {
		t.Errorf("tag 1: %s", body)
	}
	if a := tagGet(t, s, tok, "1"); !strings.Contains(a.body, `"userlist":[{"userid":"wangwu","name":"王五"},{"userid":"lisi","name":"李四"}],"partylist":[3]`) {
		t.Errorf("tag/get 1 after the edit: %s", a.body)
	}
	st, _, body = dev(t, s, "PUT", "/sim/tags", `{"corp":"acme","id":1,"departments":[]}`)
	wantStatus(t, "empty tag 1's departments", st, 200, body)
	if a := tagGet(t, s, tok, "1"); !strings.Contains(a.body, `"partylist":[]`) {
		t.Errorf("tag/get 1 without departments: %s", a.body)
	}
	// A new tag.
	st, m, body = dev(t, s, "PUT", "/sim/tags", `{"id":8,"name":"值班","departments":[4,40]}`)
	wantStatus(t, "create tag 8", st, 200, body)
	if fmt.Sprint(m["users"]) != "[]" || fmt.Sprint(m["departments"]) != "[4 40]" {
		t.Errorf("tag 8: %s", body)
	}
	if a := tagGet(t, s, tok, "8"); !strings.Contains(a.body, `"tagname":"值班","userlist":[],"partylist":[4,40]`) {
		t.Errorf("tag/get 8: %s", a.body)
	}
	if got := tree(t, simplelist(t, s, tok, "40")); got != "40<1" {
		t.Errorf("the tag's new department 40: %s", got)
	}

	for _, tc := range []struct {
		method, body string
		status       int
	}{
		{"PUT", `{"corp":"acme","id":1,"users":["nobody"]}`, 404},
		{"PUT", `{"corp":"acme","id":1,"departments":[0]}`, 400},
		{"PUT", `{"corp":"acme","users":["lisi"]}`, 400},
		{"PUT", `{"corp":"acme","id":1,"userlist":["lisi"]}`, 400},
		{"PUT", `{"corp":"nosuch","id":1}`, 404},
		{"DELETE", `{"corp":"acme","id":99}`, 404},
		{"DELETE", `{"corp":"acme"}`, 400},
		{"POST", `{"corp":"acme","id":1}`, 405},
	} {
		if st, _, body := dev(t, s, tc.method, "/sim/tags", tc.body); st != tc.status {
			t.Errorf("%s %s: HTTP %d %s, want %d", tc.method, tc.body, st, body, tc.status)
		}
	}
	if a := tagGet(t, s, tok, "1"); !strings.Contains(a.body, `"wangwu"`) {
		t.Errorf("refused edits changed tag 1: %s", a.body)
	}

	st, _, body = dev(t, s, "DELETE", "/sim/tags", `{"corp":"acme","id":8}`)
	wantStatus(t, "delete tag 8", st, 204, body)
	wantErrcode(t, "tag/get of the deleted tag", tagGet(t, s, tok, "8"), 40068)
}

func TestDevStateContacts(t *testing.T) {
	s := New(treeConfig())
	st, _, body := dev(t, s, "GET", "/sim/state", "")
	wantStatus(t, "state", st, 200, body)
	var state struct {
		Corps []struct {
			Name        string
			Departments []map[string]any
			Tags        []map[string]any
			Users       []map[string]any
		}
	}
	if err := json.Unmarshal([]byte(body), &state); err != nil {
		t.Fatal(err)
	}
	acme := state.Corps[0]
	var got []string
	for _, d := range acme.Departments {
		got = append(got, fmt.Sprintf("%v<%v %v %v", d["id"], d["parent"], d["name"], d["order"]))
	}
	want := []string{"1<0 acme 0", "2<1 销售部 10", "5<2 华南 20", "3<2 华北 0", "4<3 华北东 0", "6<1 研发部 5", "9<1  0"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("state departments\n got %v\nwant %v", got, want)
	}
	var tags []string
	for _, tg := range acme.Tags {
		tags = append(tags, fmt.Sprintf("%v %v %v %v", tg["id"], tg["name"], tg["users"], tg["departments"]))
	}
	// The state shows the tag as configured, hidden member included: it is the simulator's view.
	if fmt.Sprint(tags) != "[1 管理层 [zhangsan hidden lisi] [3] 2 空 [] []]" {
		t.Errorf("state tags %v", tags)
	}
	if beta := state.Corps[1]; len(beta.Departments) != 1 || beta.Departments[0]["name"] != "beta" || len(beta.Tags) != 1 {
		t.Errorf("beta's state: %+v", beta)
	}
	if !strings.Contains(body, `"userid":"zhangsan","name":"张三","department":[4]`) {
		t.Errorf("users keep their departments in the state: %s", body)
	}
	for _, k := range []string{`"corp"`, `"secret"`, acmeSecret} {
		if strings.Contains(body, k) {
			t.Errorf("state contains %s: %s", k, body)
		}
	}
	if !strings.Contains(body, `"department/simplelist":0`) || !strings.Contains(body, `"tag/get":0`) {
		t.Errorf("state counts lack the new endpoints: %s", body)
	}
}

// TestContactsConcurrent is for the race detector: moves, tag edits and reads at once.
func TestContactsConcurrent(t *testing.T) {
	s := New(treeConfig())
	tok := getToken(t, s, acmeID, acmeSecret)
	var wg sync.WaitGroup
	errs := make(chan string, 400)
	for i := range 200 {
		wg.Go(func() {
			switch i % 4 {
			case 0:
				// 3 and 5 swap parents between 2 and 6; never a cycle.
				_ = s.SetDepartment("acme", Department{ID: 3, ParentID: []int64{2, 6}[i%8/4]})
			case 1:
				_ = s.SetTag("acme", Tag{ID: 1, UserIDs: []string{"lisi"}, Departments: []int64{int64(2 + i%5)}})
			case 2:
				if a := simplelist(t, s, tok); a.errcode() != 0 || !strings.Contains(a.body, `"id":4,"parentid":3`) {
					errs <- "simplelist: " + a.body
				}
			case 3:
				if a := tagGet(t, s, tok, "1"); a.errcode() != 0 {
					errs <- "tag/get: " + a.body
				}
				w := httptest.NewRecorder()
				s.ServeHTTP(w, localRequest("GET", "/sim/state", nil))
				if w.Code != http.StatusOK {
					errs <- "state: " + w.Body.String()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
