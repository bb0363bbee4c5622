package wecomauth_test

// The test world, defined once: the corps and users the simulator knows,
// the corps the gateway allows, and the review account. The e2e harness
// (env_test.go) writes them into its Caddyfile, the direct-handler fixture
// (unit_test.go) hands the same values to wecomsim.New and the Handler.

import (
	"fmt"
	"strings"

	"github.com/wecomgate/wecomgate/module/wecomauth"
	"github.com/wecomgate/wecomgate/module/wecomsim"
)

// Secrets of the test world's apps.
const (
	acmeSecret    = "acme-secret-0123456789"
	partnerSecret = "partner-secret-0123456789"
	otherSecret   = "other-secret-0123456789"
)

// testWorld is what the simulator knows: "other" is a corp the gateway
// does not allow. A fresh copy each time, so that no test changes
// another's.
func testWorld() []wecomsim.Corp {
	return []wecomsim.Corp{
		{Name: "acme", CorpID: "wwacme", Secret: acmeSecret, Users: []wecomsim.User{
			{UserID: "zhangsan", Name: "张三", Departments: []int64{1, 2}},
			{UserID: "lisi", Name: "李四", Departments: []int64{2}, Status: wecomsim.StatusDisabled},
			{UserID: "wangwu", Name: "王五", Hidden: true},
			{UserID: "zhouba", Name: "周八", Departments: []int64{4}, Status: wecomsim.StatusNotActivated},
		}},
		{Name: "partner", CorpID: "wwpartner", Secret: partnerSecret, Users: []wecomsim.User{
			{UserID: "zhaoliu", Name: "赵六", Departments: []int64{7}},
			{UserID: "qianqi", Name: "钱七", Departments: []int64{8}},
		}},
		{Name: "other", CorpID: "wwother", Secret: otherSecret, Users: []wecomsim.User{
			{UserID: "sunjiu", Name: "孙九"},
		}},
	}
}

// worldUser is one user of testWorld.
func worldUser(corp, userID string) wecomsim.User {
	for _, c := range testWorld() {
		for _, u := range c.Users {
			if c.Name == corp && u.UserID == userID {
				return u
			}
		}
	}
	panic("no user " + corp + "/" + userID + " in the test world")
}

// gatewayCorps are the corps the gateway allows, in order (acme is the
// default); a fresh copy each time.
func gatewayCorps() []wecomauth.CorpConfig {
	return []wecomauth.CorpConfig{
		{Name: "acme", CorpID: "wwacme", Secret: acmeSecret},
		{Name: "partner", CorpID: "wwpartner", Secret: partnerSecret, AllowDepartments: []int64{7}},
	}
}

// The review account. Its hash has bcrypt's lowest cost: a review login
// is one comparison, which at the usual cost 10 takes about a second under
// -race. TestReviewLoginFailures, which times comparisons, has its own.
const (
	reviewUser     = "reviewer"
	reviewPassword = "review-demo"
	reviewHash     = "$2a$04$LSeszHR6Q/oziLPvmbIS5uyGBlSfn8EKmzcVqQ8DzQ0w2n7hz8Yaq"
)

var reviewAllow = []string{"/api/public/*", "/api/version"}

func reviewConfig() *wecomauth.ReviewConfig {
	return &wecomauth.ReviewConfig{
		Users: []wecomauth.ReviewUser{{Username: reviewUser, PasswordHash: reviewHash}},
		Allow: reviewAllow,
	}
}

// reviewBlock is reviewConfig inside a wecom_auth block.
var reviewBlock = reviewCaddyfile(reviewHash)

func reviewCaddyfile(hash string) string {
	return "review {\n\t\t\tuser " + reviewUser + " " + hash + "\n\t\t\tallow " + strings.Join(reviewAllow, " ") + "\n\t\t}"
}

// reviewLoginBody is the review account's sign-in.
const reviewLoginBody = `{"username":"` + reviewUser + `","password":"` + reviewPassword + `"}`

// simulatorBlock is the wecom_simulator directive for corps, development
// interface at /sim.
func simulatorBlock(corps []wecomsim.Corp) string {
	var b strings.Builder
	b.WriteString("wecom_simulator {\n\t\tdev_path /sim\n")
	for _, c := range corps {
		fmt.Fprintf(&b, "\t\tcorp %s {\n\t\t\tcorp_id %s\n\t\t\tsecret %s\n", c.Name, c.CorpID, c.Secret)
		for _, u := range c.Users {
			var lines []string
			if len(u.Departments) > 0 {
				lines = append(lines, "department "+joinInts(u.Departments))
			}
			if u.Status != 0 {
				lines = append(lines, fmt.Sprint("status ", u.Status))
			}
			if u.Hidden {
				lines = append(lines, "hidden")
			}
			fmt.Fprintf(&b, "\t\t\tuser %s %s", u.UserID, u.Name)
			if len(lines) > 0 {
				b.WriteString(" {\n\t\t\t\t" + strings.Join(lines, "\n\t\t\t\t") + "\n\t\t\t}")
			}
			b.WriteString("\n")
		}
		if cb := c.Callback; cb != nil {
			fmt.Fprintf(&b, "\t\t\tcallback %s {\n\t\t\t\ttoken %s\n\t\t\t\taes_key %s\n\t\t\t}\n", cb.URL, cb.Token, cb.AESKey)
		}
		b.WriteString("\t\t}\n")
	}
	b.WriteString("\t}")
	return b.String()
}

// corpBlocks are the corp subdirectives of wecom_auth for corps.
func corpBlocks(corps []wecomauth.CorpConfig) string {
	var b strings.Builder
	for _, c := range corps {
		fmt.Fprintf(&b, "\t\tcorp %s {\n\t\t\tcorp_id %s\n\t\t\tsecret %s\n", c.Name, c.CorpID, c.Secret)
		if len(c.AllowUsers) > 0 {
			b.WriteString("\t\t\tallow_users " + strings.Join(c.AllowUsers, " ") + "\n")
		}
		if len(c.AllowDepartments) > 0 {
			b.WriteString("\t\t\tallow_departments " + joinInts(c.AllowDepartments) + "\n")
		}
		if len(c.AllowTags) > 0 {
			b.WriteString("\t\t\tallow_tags " + joinInts(c.AllowTags) + "\n")
		}
		if cb := c.Callback; cb != nil {
			fmt.Fprintf(&b, "\t\t\tcallback {\n\t\t\t\ttoken %s\n\t\t\t\taes_key %s\n\t\t\t}\n", cb.Token, cb.AESKey)
		}
		b.WriteString("\t\t}\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func joinInts(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, " ")
}
