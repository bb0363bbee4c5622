package wecomsim

import (
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/wecomgate/wecomgate/module/internal/wxcrypt"
)

const (
	testCBToken = "simCallbackToken0123"
	testCBKey   = "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM"
)

// receiver is a gateway's callback endpoint as the test sees it: it opens
// what arrives with WeCom's crypto and keeps the decrypted events.
type receiver struct {
	mu     sync.Mutex
	events []contactChange
	answer string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cr, _ := wxcrypt.New(testCBToken, testCBKey, "wwacme")
	q := r.URL.Query()
	if r.Method == http.MethodGet {
		msg, err := cr.Open(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), q.Get("echostr"))
		if err != nil {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		_, _ = w.Write(msg)
		return
	}
	b, _ := io.ReadAll(r.Body)
	var env envelope
	if xml.Unmarshal(b, &env) != nil || env.ToUserName != "wwacme" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	msg, err := cr.Open(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), env.Encrypt)
	if err != nil {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	var ev contactChange
	_ = xml.Unmarshal(msg, &ev)
	rc.mu.Lock()
	rc.events = append(rc.events, ev)
	answer := rc.answer
	rc.mu.Unlock()
	if answer == "" {
		answer = "success"
	}
	_, _ = io.WriteString(w, answer)
}

func (rc *receiver) last(t *testing.T) contactChange {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.events) == 0 {
		t.Fatal("no callback arrived")
	}
	return rc.events[len(rc.events)-1]
}

func callbackSim(t *testing.T) (*Simulator, *receiver) {
	t.Helper()
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	s := New(Config{Corps: []Corp{{
		Name: "acme", CorpID: "wwacme", Secret: "s",
		Users:    []User{{UserID: "zhangsan", Name: "张三", Departments: []int64{2}}},
		Tags:     []Tag{{ID: 1, UserIDs: []string{"zhangsan"}}},
		Callback: &Callback{URL: srv.URL + "/wecom/callback/acme", Token: testCBToken, AESKey: testCBKey},
	}, {Name: "quiet", CorpID: "wwquiet", Secret: "q"}}})
	return s, rc
}

// Each change through the development interface is sent as WeCom's
// change_contact event, encrypted, before the change is answered.
func TestCallbacksForContactChanges(t *testing.T) {
	s, rc := callbackSim(t)
	steps := []struct {
		method, path, body string
		want               contactChange
	}{
		{http.MethodPut, "/sim/users", `{"userid":"zhangsan","status":2}`, contactChange{ChangeType: "update_user", UserID: "zhangsan", Status: 2, Department: "2"}},
		{http.MethodPut, "/sim/users", `{"userid":"lisi"}`, contactChange{ChangeType: "create_user", UserID: "lisi", Status: 1, Department: "1"}},
		{http.MethodPut, "/sim/users", `{"userid":"lisi","new_userid":"lisi2"}`, contactChange{ChangeType: "update_user", UserID: "lisi", NewUserID: "lisi2", Status: 1, Department: "1"}},
		{http.MethodDelete, "/sim/users", `{"userid":"lisi2"}`, contactChange{ChangeType: "delete_user", UserID: "lisi2", Status: 1, Department: "1"}},
		{http.MethodPut, "/sim/departments", `{"id":5}`, contactChange{ChangeType: "create_party", ID: 5}},
		{http.MethodPut, "/sim/departments", `{"id":5,"parent":2}`, contactChange{ChangeType: "update_party", ID: 5}},
		{http.MethodDelete, "/sim/departments", `{"id":5}`, contactChange{ChangeType: "delete_party", ID: 5}},
		{http.MethodPut, "/sim/tags", `{"id":1,"users":[]}`, contactChange{ChangeType: "update_tag", TagID: 1}},
		{http.MethodDelete, "/sim/tags", `{"id":1}`, contactChange{ChangeType: "update_tag", TagID: 1}},
	}
	for _, st := range steps {
		if code, _, body := dev(t, s, st.method, st.path, st.body); code >= 300 {
			t.Fatalf("%s %s: %d %s", st.method, st.path, code, body)
		}
		got := rc.last(t)
		if got.MsgType != "event" || got.Event != "change_contact" || got.ToUserName != "wwacme" || got.FromUserName != "sys" || got.CreateTime == 0 {
			t.Errorf("%s %s: envelope %+v", st.method, st.path, got)
		}
		got.XMLName, got.ToUserName, got.FromUserName, got.CreateTime, got.MsgType, got.Event = xml.Name{}, "", "", 0, "", ""
		if got != st.want {
			t.Errorf("%s %s %s: event %+v; want %+v", st.method, st.path, st.body, got, st.want)
		}
	}
	cbs := s.Callbacks()
	if len(cbs) != len(steps) || !cbs[0].OK || cbs[0].Event != "update_tag" || cbs[len(cbs)-1].Event != "update_user" {
		t.Fatalf("callback log: %+v", cbs)
	}
	// A corp without a callback sends nothing; its changes still work.
	if code, _, _ := dev(t, s, http.MethodPut, "/sim/users", `{"corp":"quiet","userid":"x"}`); code != 200 {
		t.Fatal(code)
	}
	if len(s.Callbacks()) != len(steps) {
		t.Error("a corp without callback sent one")
	}

	// A gateway that answers something else than "success" is logged as not OK.
	rc.mu.Lock()
	rc.answer = "nope"
	rc.mu.Unlock()
	dev(t, s, http.MethodPut, "/sim/users", `{"userid":"zhangsan","status":1}`)
	if cb := s.Callbacks()[0]; cb.OK || cb.Answer != "nope" || cb.Status != 200 {
		t.Errorf("a wrong answer: %+v", cb)
	}
}

func TestCallbackVerificationAndLog(t *testing.T) {
	s, _ := callbackSim(t)
	code, m, body := dev(t, s, http.MethodPost, "/sim/callback/verify", `{"corp":"acme"}`)
	if code != 200 || m["ok"] != true || m["event"] != "verify" {
		t.Fatalf("verify: %d %s", code, body)
	}
	if code, _, _ := dev(t, s, http.MethodPost, "/sim/callback/verify", `{"corp":"quiet"}`); code != http.StatusConflict {
		t.Errorf("verify without callback: %d", code)
	}
	if code, _, _ := dev(t, s, http.MethodPost, "/sim/callback/verify", `{"corp":"nosuch"}`); code != http.StatusNotFound {
		t.Errorf("verify of an unknown corp: %d", code)
	}
	_, _, state := dev(t, s, http.MethodGet, "/sim/state", "")
	if strings.Contains(state, testCBToken) || strings.Contains(state, testCBKey) || !strings.Contains(state, `"callback":"http://`) ||
		!strings.Contains(state, `"callbacks":[{`) {
		t.Errorf("state: %s", state)
	}
	if code, _, body := dev(t, s, http.MethodGet, "/sim/callbacks", ""); code != 200 || !strings.Contains(body, `"event":"verify"`) {
		t.Errorf("callbacks: %d %s", code, body)
	}
}

func TestCallbackConfigErrors(t *testing.T) {
	for _, cb := range []*Callback{
		{URL: "ftp://x/y", Token: "t", AESKey: testCBKey},
		{URL: "http://x/y?a=b", Token: "t", AESKey: testCBKey},
		{URL: "http://x/y", AESKey: testCBKey},
		{URL: "http://x/y", Token: "t", AESKey: testCBKey[:42]},
	} {
		cfg := Config{Corps: []Corp{{Name: "a", CorpID: "wa", Secret: "s", Callback: cb}}}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "callback") {
			t.Errorf("%+v: %v", cb, err)
		}
	}
}
