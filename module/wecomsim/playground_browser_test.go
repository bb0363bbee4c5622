//go:build unix

package wecomsim_test

import (
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wecomgate/wecomgate/module/internal/testcaddy"

	_ "github.com/wecomgate/wecomgate/module"
)

// playgroundCaddyfile is Caddyfile.example's three sites on testcaddy's sockets (%[5]s is its
// default_bind): the gateway, the simulator with the playground and the gateway proxied under
// /gateway, and the echo backend. recheck is short so that a status change shows within the
// test.
const playgroundCaddyfile = `{
	%[5]s
	admin off
	persist_config off
	storage file_system {
		root %[4]s
	}
}

http://127.0.0.1:%[1]d {
	wecom_auth {
		api_base http://127.0.0.1:%[2]d
		corp acme {
			corp_id ww00000000000acme
			secret acme-secret-0123456789
		}
		corp partner {
			corp_id ww0000000partner
			secret partner-secret-0123456789
			allow_departments 7
		}
		recheck 1s
		review {
			user reviewer $2a$10$gj7argJclI6sBw5KGGCtXud16zwhsehRL7iZ3X6KTa2uIFjkZh.hy
			allow /api/public/*
		}
	}
	reverse_proxy 127.0.0.1:%[3]d
}

http://127.0.0.1:%[2]d {
	handle_path /gateway/* {
		reverse_proxy 127.0.0.1:%[1]d
	}
	wecom_simulator {
		dev_path /sim
		playground /gateway
		miniprogram_appid wx00000000000demo
		corp acme {
			corp_id ww00000000000acme
			secret acme-secret-0123456789
			department 2 销售部
			department 3 华北 {
				parent 2
			}
			department 4 华北东 {
				parent 3
			}
			department 5 研发部
			user zhangsan 张三 {
				department 1 2
				mobile 13800000000
			}
			user lisi 李四 {
				department 2
				status 2
			}
			user wangwu 王五 {
				department 3
				hidden
			}
			user sunba 孙八 {
				department 4
			}
			user zhouji 周九 {
				department 5
			}
			tag 1 管理层 {
				users zhangsan
				departments 5
			}
		}
		corp partner {
			corp_id ww0000000partner
			secret partner-secret-0123456789
			department 7 项目组
			department 8 财务部
			user zhaoliu 赵六 {
				department 7
			}
			user qianqi 钱七 {
				department 8
			}
		}
	}
}

http://127.0.0.1:%[3]d {
	header Content-Type application/json
	respond <<JSON
		{
			"backend": "demo echo",
			"method": "{method}",
			"uri": "{uri}",
			"x-wecom-userid": "{header.X-WeCom-UserId}",
			"x-wecom-corpid": "{header.X-WeCom-CorpId}",
			"x-wecom-corp": "{header.X-WeCom-Corp}",
			"x-wecom-name": "{header.X-WeCom-Name}",
			"x-wecom-department": "{header.X-WeCom-Department}",
			"x-wecom-review": "{header.X-WeCom-Review}",
			"authorization": "{header.Authorization}",
			"cookie": "{header.Cookie}"
		}
		JSON 200
}
`

// stepResult is what the page's exchange log shows for one user action.
type stepResult struct {
	Outcome  string // "ok" or "error"
	Text     string // the step card's text
	Statuses []int  // HTTP statuses of its exchanges, in order
}

// playground drives the page in the browser.
type playground struct {
	t *testing.T
	b *browser
}

// step clicks the element and waits for the step it starts to finish.
func (p playground) step(selector string) stepResult {
	p.t.Helper()
	var seq int
	p.b.MustEval("app.seq", &seq)
	p.click(selector)
	return p.waitStep(seq+1, selector)
}

func (p playground) waitStep(seq int, what string) stepResult {
	p.t.Helper()
	sel := fmt.Sprintf(`.step[data-seq="%d"]`, seq)
	p.b.WaitFor(what+" to finish", fmt.Sprintf(`document.querySelector('%s[data-done]')`, sel), 30*time.Second)
	var r stepResult
	p.b.MustEval(fmt.Sprintf(`(() => {
		const s = document.querySelector('%s');
		return { Outcome: s.dataset.outcome, Text: s.innerText,
			Statuses: [...s.querySelectorAll('.exchange')].map((e) => Number(e.dataset.status)) };
	})()`, sel), &r)
	return r
}

func (p playground) click(selector string) {
	p.t.Helper()
	p.b.MustEval(fmt.Sprintf(`(() => {
		const e = document.querySelector(%q);
		if (!e) throw new Error("no element " + %q);
		e.scrollIntoView({ block: "center" });
		e.click();
	})()`, selector, selector), nil)
}

func (p playground) pick(user string) {
	p.t.Helper()
	p.click(fmt.Sprintf(`tr[data-user=%q] input[type=radio]`, user))
	var who string
	p.b.MustEval(`document.querySelector("#who").textContent`, &who)
	if !strings.Contains(who, user[strings.Index(user, "/")+1:]) {
		p.t.Fatalf("picked %s, the page shows %q", user, who)
	}
}

// setStatus changes a user's status with the select in the contacts table.
func (p playground) setStatus(user string, status int) stepResult {
	p.t.Helper()
	return p.choose(fmt.Sprintf(`tr[data-user=%q] select.status`, user), fmt.Sprint(status))
}

// choose picks value in a select, as a person would, and waits for the step it starts.
func (p playground) choose(selector, value string) stepResult {
	p.t.Helper()
	var seq int
	p.b.MustEval("app.seq", &seq)
	p.b.MustEval(fmt.Sprintf(`(() => {
		const s = document.querySelector(%q);
		if (!s) throw new Error("no element " + %q);
		if (![...s.options].some((o) => o.value === %q)) throw new Error(%q + " has no option " + %q);
		s.value = %q;
		s.dispatchEvent(new Event("change", { bubbles: true }));
	})()`, selector, selector, value, selector, value, value), nil)
	return p.waitStep(seq+1, "choosing "+value+" in "+selector)
}

// type sets the text of an input, as a person would.
func (p playground) typeIn(selector, text string) {
	p.t.Helper()
	p.b.MustEval(fmt.Sprintf(`(() => {
		const e = document.querySelector(%q);
		if (!e) throw new Error("no element " + %q);
		e.value = %q;
		e.dispatchEvent(new Event("input", { bubbles: true }));
	})()`, selector, selector, text), nil)
}

// wantText checks that the text of the elements selector matches contains each of want, or
// lacks it for a want starting with "!".
func (p playground) wantText(what, selector string, want ...string) {
	p.t.Helper()
	var got string
	p.b.MustEval(fmt.Sprintf(`[...document.querySelectorAll(%q)].map((e) => e.innerText).join("\n")`, selector), &got)
	for _, w := range want {
		if lacks, ok := strings.CutPrefix(w, "!"); ok {
			if strings.Contains(got, lacks) {
				p.t.Errorf("%s (%s) shows %q: %q", what, selector, lacks, got)
			}
		} else if !strings.Contains(got, w) {
			p.t.Errorf("%s (%s) does not show %q: %q", what, selector, w, got)
		}
	}
}

func (p playground) text(selector string) string {
	p.t.Helper()
	var s string
	p.b.MustEval(fmt.Sprintf(`(document.querySelector(%q) || {}).innerText || ""`, selector), &s)
	return s
}

func (p playground) received(header string) string {
	p.t.Helper()
	return p.text(fmt.Sprintf(`#received [data-header=%q]`, header))
}

func wantStep(t *testing.T, what string, got stepResult, outcome string, statuses []int, texts ...string) {
	t.Helper()
	if got.Outcome != outcome || (statuses != nil && fmt.Sprint(got.Statuses) != fmt.Sprint(statuses)) {
		t.Fatalf("%s: outcome %q with statuses %v, want %q with %v; the page shows:\n%s", what, got.Outcome, got.Statuses, outcome, statuses, got.Text)
	}
	for _, s := range texts {
		if !strings.Contains(got.Text, s) {
			t.Fatalf("%s: the page does not show %q; it shows:\n%s", what, s, got.Text)
		}
	}
}

// startPlayground starts Caddy with playgroundCaddyfile and returns the Chromium to drive and
// the simulator's site; it skips the test without Chromium or with -short.
func startPlayground(t *testing.T) (chromium, site string) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping the browser test in -short mode")
	}
	chromium = findChromium()
	if chromium == "" {
		t.Skip("skipping the browser test: no Chromium found (set WECOM_CHROMIUM, or install it: apt-get install -y chromium)")
	}
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	addrs := testcaddy.Listen(t, 3)
	testcaddy.Start(t, fmt.Sprintf(playgroundCaddyfile, addrs[0].Port(), addrs[1].Port(), addrs[2].Port(), t.TempDir(), testcaddy.DefaultBind))
	return chromium, addrs[1].URL()
}

// newPlayground launches Chromium at the given viewport and fails the test on the page's
// problems (uncaught exceptions, CSP reports).
func newPlayground(t *testing.T, chromium string, width, height int) playground {
	t.Helper()
	b := launchBrowser(t, chromium, width, height)
	t.Cleanup(func() {
		if probs := b.Problems(); len(probs) > 0 {
			t.Errorf("the page reported problems:\n%s", strings.Join(probs, "\n"))
		}
		if t.Failed() {
			t.Logf("page console:\n%s", strings.Join(b.Console(), "\n"))
		}
	})
	return playground{t: t, b: b}
}

// TestPlaygroundInBrowser runs the playground page in a real headless Chromium against a real
// Caddy with the gateway, the simulator and the echo backend, and goes through the page's
// steps as a person would.
func TestPlaygroundInBrowser(t *testing.T) {
	chromium, site := startPlayground(t)
	p := newPlayground(t, chromium, 1280, 900)
	b := p.b
	// The page cannot learn the gateway's recheck: it is told, here the Caddyfile's 1s.
	b.Navigate(site + "/sim/playground?recheck=1s")

	// The page lists the simulator's corps and users.
	b.WaitFor("the contacts", `document.querySelectorAll("tr[data-user]").length === 7`, 20*time.Second)
	wantStep(t, "loading the state", p.waitStep(1, "loading the state"), "ok", []int{200}, "GET /sim/state", "2 corps, 7 users")
	contacts := p.text("#contacts")
	for _, s := range []string{"acme", "ww00000000000acme", "partner", "ww0000000partner", "zhangsan", "张三", "lisi", "李四", "zhaoliu", "赵六"} {
		if !strings.Contains(contacts, s) {
			t.Errorf("the contacts do not show %q:\n%s", s, contacts)
		}
	}

	// Each user's departments by their path, and their tags, by userid or through a department.
	p.wantText("sunba's departments", `tr[data-user="acme/sunba"] td.depts .path`, "销售部 / 华北 / 华北东", "#4")
	p.wantText("zhangsan's departments", `tr[data-user="acme/zhangsan"] td.depts .path`, "acme", "销售部")
	p.wantText("zhangsan's tags", `tr[data-user="acme/zhangsan"] td.tags`, "管理层")
	p.wantText("zhouji's tags", `tr[data-user="acme/zhouji"] td.tags`, "管理层 (via 研发部)")
	p.wantText("sunba's tags", `tr[data-user="acme/sunba"] td.tags`, "!管理层")
	p.wantText("zhaoliu's departments", `tr[data-user="partner/zhaoliu"] td.depts .path`, "项目组")
	p.wantText("the department tree", "#org", "销售部", "华北东", "研发部", "项目组", "财务部", "管理层")

	// Edit a tag: its members change in the contacts.
	p.typeIn(`[data-tag="acme/1"] input.tag-users`, "lisi sunba")
	p.typeIn(`[data-tag="acme/1"] input.tag-depts`, "4")
	wantStep(t, "editing tag 1", p.step(`[data-tag="acme/1"] button.tag-save`), "ok", []int{200}, "PUT /sim/tags", "管理层: users lisi, sunba; departments 4")
	p.wantText("zhangsan's tags after the edit", `tr[data-user="acme/zhangsan"] td.tags`, "!管理层")
	p.wantText("sunba's tags after the edit", `tr[data-user="acme/sunba"] td.tags`, "管理层")
	p.wantText("zhouji's tags after the edit", `tr[data-user="acme/zhouji"] td.tags`, "!管理层")
	// Move a department: its members' paths follow.
	wantStep(t, "moving 华北", p.choose(`tr[data-dept="acme/3"] select.parent`, "5"), "ok", []int{200}, "PUT /sim/departments", "华北 is now 研发部 / 华北")
	p.wantText("sunba's departments after the move", `tr[data-user="acme/sunba"] td.depts .path`, "研发部 / 华北 / 华北东")
	// A department cannot move under its own sub-department: the page does not offer it.
	var offers bool
	b.MustEval(`[...document.querySelector('tr[data-dept="acme/3"] select.parent').options].some((o) => o.value === "4")`, &offers)
	if offers {
		t.Error("the page offers to move 华北 under its own sub-department 华北东")
	}

	// Open the mini program as zhangsan: a code from the simulator, a login through the
	// gateway, the session.
	p.pick("acme/zhangsan")
	r := p.step("#open")
	wantStep(t, "zhangsan's login", r, "ok", []int{200, 200, 200}, "POST /sim/code", "POST /gateway/wecom/login", "GET /gateway/wecom/session", "signed in as zhangsan of acme")
	if got := p.text(`#session-info [data-field=userid]`); got != "zhangsan" {
		t.Errorf("session panel shows userid %q, want zhangsan", got)
	}
	var token string
	b.MustEval("app.token", &token)
	var html string
	b.MustEval("document.documentElement.outerHTML", &html)
	if len(token) < 20 || strings.Contains(html, token) || !strings.Contains(html, "…"+token[len(token)-8:]) {
		t.Errorf("the page should show the token only by its tail …%s", token[max(0, len(token)-8):])
	}
	p.wantText("the signed-in user", "#signedin", "signed in as zhangsan @ acme")

	// The backend sees the identity headers, and not the token.
	r = p.step("#backend")
	wantStep(t, "zhangsan's backend call", r, "ok", []int{200}, "GET /gateway/api/orders", `"x-wecom-userid": "zhangsan"`)
	for header, want := range map[string]string{
		"X-WeCom-UserId": "zhangsan", "X-WeCom-Corp": "acme", "X-WeCom-CorpId": "ww00000000000acme",
		"X-WeCom-Department": "1,2", "Authorization": "(absent)",
	} {
		if got := p.received(header); got != want {
			t.Errorf("the backend received %s %q, want %q", header, got, want)
		}
	}
	if got := p.received("X-WeCom-Name"); !strings.Contains(got, "张三") {
		t.Errorf("X-WeCom-Name shows %q, want it decoded to 张三", got)
	}

	// lisi is disabled: the login is refused, and the mini program keeps zhangsan's session.
	p.pick("acme/lisi")
	r = p.step("#open")
	wantStep(t, "lisi's login", r, "error", []int{200, 403}, "user_inactive")
	if got := p.text(`#session-info [data-field=userid]`); got != "zhangsan" {
		t.Errorf("after lisi's refused login the session panel shows %q, want zhangsan", got)
	}

	// wangwu is outside the app's visible range (60011).
	p.pick("acme/wangwu")
	wantStep(t, "wangwu's login", p.step("#open"), "error", []int{200, 403}, "user_not_allowed")

	// zhaoliu is in partner, not the default corp: wrong_corp, then a fresh code naming partner.
	p.pick("partner/zhaoliu")
	r = p.step("#open")
	wantStep(t, "zhaoliu's login", r, "ok", []int{200, 409, 200, 200, 200}, "wrong_corp", "signed in as zhaoliu of partner")
	// The backend panel showed what zhangsan's call received: it starts over for zhaoliu.
	p.wantText("the backend panel after zhaoliu's login", "#received", "nothing yet for zhaoliu", "!zhangsan")
	p.wantText("the signed-in user", "#signedin", "signed in as zhaoliu @ partner")

	// Move zhaoliu out of 项目组, the one department partner admits: the next recheck refuses him.
	wantStep(t, "moving zhaoliu", p.choose(`tr[data-user="partner/zhaoliu"] select.move`, "8"), "ok", []int{200}, "PUT /sim/users", "zhaoliu is now in 财务部")
	p.wantText("zhaoliu's departments after the move", `tr[data-user="partner/zhaoliu"] td.depts .path`, "财务部", "!项目组")
	r = waitDenied(t, p, "zhaoliu's session", "moving him out of department 7")
	wantStep(t, "the denied backend call", r, "error", []int{403}, "user_not_allowed")
	wantStep(t, "moving zhaoliu back", p.choose(`tr[data-user="partner/zhaoliu"] select.move`, "7"), "ok", []int{200}, "zhaoliu is now in 项目组")

	// Disable zhangsan while signed in: the next recheck (1s here) denies the session.
	p.pick("acme/zhangsan")
	wantStep(t, "zhangsan's login", p.step("#open"), "ok", nil, "signed in as zhangsan")
	// Get mobile: the simulator encrypts it for the latest login, and the page posts it to the
	// gateway. This gateway has no decrypt line, so only the simulator's half is checked; what
	// the gateway answers is its own tests' business.
	r = p.step("#mobile")
	if len(r.Statuses) != 2 || r.Statuses[0] != 200 || !strings.Contains(r.Text, "POST /sim/userdata") || !strings.Contains(r.Text, "POST /gateway/wecom/decrypt") {
		t.Fatalf("get mobile: statuses %v, want the simulator's 200 then the gateway's answer; the page shows:\n%s", r.Statuses, r.Text)
	}
	wantStep(t, "disabling zhangsan", p.setStatus("acme/zhangsan", 2), "ok", []int{200}, "PUT /sim/users", "zhangsan is now status 2")
	// The countdown to the next recheck starts with the change, and ends after recheck (1s).
	p.wantText("the recheck countdown", "#recheck", "zhangsan is now status 2", "recheck (1s)")
	b.WaitFor("the recheck countdown to end", `document.querySelector("#recheck").dataset.left === "0"`, 10*time.Second)
	p.wantText("the recheck countdown at its end", "#recheck", "has passed: the next request asks WeCom again")
	r = waitDenied(t, p, "zhangsan's session", "disabling him")
	wantStep(t, "the denied backend call", r, "error", []int{403}, "user_inactive")
	if got := p.text("#received"); !strings.Contains(got, "user_inactive") {
		t.Errorf("the backend panel shows %q, want the user_inactive denial", got)
	}

	// WeCom fails: logins get 503, the session goes on.
	wantStep(t, "re-enabling zhangsan", p.setStatus("acme/zhangsan", 1), "ok", []int{200})
	wantStep(t, "zhangsan's new login", p.step("#open"), "ok", nil, "signed in as zhangsan")
	wantStep(t, "the fault", p.step("#fault-busy"), "ok", []int{204}, "POST /sim/faults")
	if got := p.text("#faults"); !strings.Contains(got, "errcode -1") {
		t.Errorf("the faults show %q, want the errcode -1 fault", got)
	}
	wantStep(t, "the login while WeCom is busy", p.step("#open"), "error", []int{200, 503}, "wecom_unavailable", "keeps the session")
	wantStep(t, "the backend call while WeCom is busy", p.step("#backend"), "ok", []int{200}, `"x-wecom-userid": "zhangsan"`)
	wantStep(t, "clearing faults", p.step("#fault-clear"), "ok", []int{204})

	// Expired access tokens: the gateway fetches a new one and the login goes through.
	wantStep(t, "expiring tokens", p.step("#expire"), "ok", []int{204}, "POST /sim/tokens/expire")
	wantStep(t, "the login after the tokens expired", p.step("#open"), "ok", []int{200, 200, 200}, "signed in as zhangsan")

	// Log out: the token stops working.
	wantStep(t, "logout", p.step("#logout"), "ok", []int{204, 401}, "unauthenticated")
	if got := p.text("#session-info"); got != "none" {
		t.Errorf("after logout the session panel shows %q", got)
	}
	p.wantText("the signed-in user after logout", "#signedin", "signed out")

	// The review login reaches only the public part.
	wantStep(t, "review login", p.step("#review-login"), "ok", []int{200, 200}, "signed in as review:reviewer")
	p.wantText("the signed-in reviewer", "#signedin", "signed in as review:reviewer (review session)")
	wantStep(t, "review public call", p.step("#public"), "ok", []int{200}, "GET /gateway/api/public/hello")
	if got, rv := p.received("X-WeCom-UserId"), p.received("X-WeCom-Review"); got != "review:reviewer" || rv != "1" {
		t.Errorf("review call: the backend received X-WeCom-UserId %q X-WeCom-Review %q", got, rv)
	}
	wantStep(t, "review call outside the allowed paths", p.step("#backend"), "error", []int{403}, "review_forbidden")
}

// waitDenied calls the backend until the gateway's next recheck refuses the session.
func waitDenied(t *testing.T, p playground, what, after string) stepResult {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := p.step("#backend")
		if r.Outcome == "error" {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still works 20s after %s:\n%s", what, after, r.Text)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestPlaygroundLayout opens the page by the link on the simulator's root page at a phone's
// width and at a desktop's, signs in and calls the backend, and checks the layout: no
// horizontal scrolling, one column under 700 px and two above, the token shown by its tail,
// JSON never broken inside a word, and a screenshot as wide as the viewport.
//
// Set WECOM_PLAYGROUND_SCREENSHOT to a file name to also save the 1280 px screenshot there
// (docs/playground.png is made so).
func TestPlaygroundLayout(t *testing.T) {
	chromium, site := startPlayground(t)
	for _, size := range []struct{ width, height, columns int }{{390, 844, 1}, {1280, 900, 2}} {
		t.Run(fmt.Sprint(size.width), func(t *testing.T) {
			p := newPlayground(t, chromium, size.width, size.height)
			b := p.b
			b.Navigate(site + "/")
			b.WaitFor("the root page", `document.querySelector("a#playground")`, 10*time.Second)
			p.click("a#playground")
			b.WaitFor("the contacts", `location.pathname === "/sim/playground" && document.querySelectorAll("tr[data-user]").length === 7`, 20*time.Second)
			wantStep(t, "loading the state", p.waitStep(1, "loading the state"), "ok", []int{200})
			p.pick("acme/zhangsan")
			wantStep(t, "zhangsan's login", p.step("#open"), "ok", []int{200, 200, 200}, "signed in as zhangsan")
			wantStep(t, "zhangsan's backend call", p.step("#backend"), "ok", []int{200})
			b.MustEval(`window.scrollTo(0, 0)`, nil)

			var got struct {
				Inner, Scroll, Columns, Card int
				Token, Shown, PreBreak       string
			}
			b.MustEval(`({
				Inner: window.innerWidth,
				Scroll: Math.max(document.documentElement.scrollWidth, document.body.scrollWidth),
				Columns: getComputedStyle(document.querySelector("main")).gridTemplateColumns.split(" ").length,
				Card: Math.round(document.querySelector("#miniprogram").getBoundingClientRect().width),
				Token: app.token,
				Shown: document.querySelector("#session-info dd").innerText,
				PreBreak: getComputedStyle(document.querySelector(".exchange pre")).wordBreak,
			})`, &got)
			if got.Inner != size.width {
				t.Errorf("the viewport is %d px wide, want %d", got.Inner, size.width)
			}
			if got.Scroll > got.Inner {
				t.Errorf("the page is %d px wide in a %d px viewport: it scrolls sideways", got.Scroll, got.Inner)
			}
			if got.Columns != size.columns {
				t.Errorf("at %d px the page has %d columns, want %d", size.width, got.Columns, size.columns)
			}
			if got.Card < 340 {
				t.Errorf("at %d px the mini program card is %d px wide: too narrow to read", size.width, got.Card)
			}
			if len(got.Token) < 20 || got.Shown != "…"+got.Token[len(got.Token)-8:] {
				t.Errorf("the session panel shows the token as %q, want its tail …%s", got.Shown, got.Token[max(0, len(got.Token)-8):])
			}
			if got.PreBreak == "break-all" {
				t.Error("the exchanges' JSON breaks inside words (word-break: break-all)")
			}

			path := filepath.Join(t.TempDir(), fmt.Sprintf("playground-%d.png", size.width))
			b.Screenshot(path)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cfg, err := png.DecodeConfig(f)
			if err != nil {
				t.Fatalf("the screenshot: %v", err)
			}
			if cfg.Width != size.width || cfg.Height != size.height {
				t.Errorf("the screenshot is %dx%d, want %dx%d", cfg.Width, cfg.Height, size.width, size.height)
			}
			if shot := os.Getenv("WECOM_PLAYGROUND_SCREENSHOT"); shot != "" && size.width == 1280 {
				path, _ := filepath.Abs(shot)
				b.Screenshot(path)
				t.Logf("screenshot saved to %s", path)
			}
		})
	}
}
