package wecomauth

import (
	"net/http"
	"testing"
)

func TestStripClientHeadersAnyCase(t *testing.T) {
	h := http.Header{
		"X-Wecom-Userid": {"boss"},
		"x-wecom-corp":   {"partner"}, // not canonical: set by hand, not by the parser
		"X-WECOM-REVIEW": {"1"},
		"X-Wecom-Code":   {"c0de"},
		"X-Wecom-":       {"empty suffix"},
		"X-Wecomx":       {"keep: not the prefix"},
		"X-Other":        {"keep"},
	}
	in := stripClientHeaders(h)
	if in.code != "c0de" || in.corp != "partner" {
		t.Errorf("inline login = %+v", in)
	}
	for name := range h {
		if name != "X-Wecomx" && name != "X-Other" {
			t.Errorf("%s survived", name)
		}
	}
	if len(h) != 2 {
		t.Errorf("left %v", h)
	}
}

func TestStripClientHeadersIgnoresDuplicateCodes(t *testing.T) {
	h := http.Header{"X-Wecom-Code": {"a", "b"}}
	if in := stripClientHeaders(h); in.code != "" {
		t.Errorf("two codes taken as %q", in.code)
	}
	if len(h) != 0 {
		t.Error("duplicate code header survived")
	}
}

func TestRemoveTokenKeepsOtherCookies(t *testing.T) {
	h := &Handler{CookieName: "wecom_session"}
	cases := []struct {
		in   []string
		want []string
	}{
		{[]string{"a=1; wecom_session=T; b=2"}, []string{"a=1; b=2"}},
		{[]string{"wecom_session=T"}, nil},
		{[]string{"a=1", "wecom_session=T"}, []string{"a=1"}},
		{[]string{"wecom_sessionx=1; a=2"}, []string{"wecom_sessionx=1; a=2"}},
		{[]string{"a=1;b=2"}, []string{"a=1;b=2"}}, // untouched without our cookie
	}
	for _, tc := range cases {
		r, _ := http.NewRequest("GET", "/", nil)
		r.Header["Cookie"] = tc.in
		r.Header.Set("Authorization", "Bearer T")
		h.removeToken(r)
		got := r.Header.Values("Cookie")
		if len(got) != len(tc.want) || (len(got) == 1 && got[0] != tc.want[0]) {
			t.Errorf("Cookie %q → %q, want %q", tc.in, got, tc.want)
		}
		if r.Header.Get("Authorization") != "" {
			t.Error("Bearer token kept")
		}
	}
}

func TestRemoveTokenKeepsOtherAuthorization(t *testing.T) {
	h := &Handler{CookieName: "wecom_session"}
	r, _ := http.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Basic dXNlcjpwYXNz")
	h.removeToken(r)
	if r.Header.Get("Authorization") != "Basic dXNlcjpwYXNz" {
		t.Error("a Basic Authorization for the backend was removed")
	}
}

func TestSessionCookie(t *testing.T) {
	cases := []struct {
		lines   []string
		token   string
		present bool
		denied  bool
	}{
		{nil, "", false, false},
		{[]string{"a=1; b=2"}, "", false, false},
		{[]string{"a=1; wecom_session=T; b=2"}, "T", true, false},
		{[]string{"wecom_session=\"T\""}, "T", true, false},
		{[]string{"a=1", "wecom_session=T"}, "T", true, false},
		{[]string{"wecom_session=T; wecom_session=U"}, "", false, true},
		{[]string{"wecom_session=T", "wecom_session=T"}, "", false, true},
		{[]string{"wecom_sessionx=T;;  ; =x"}, "", false, false},
	}
	for _, tc := range cases {
		tok, present, d := sessionCookie(tc.lines, "wecom_session")
		if tok != tc.token || present != tc.present || (d != nil) != tc.denied {
			t.Errorf("%q → %q %v %v", tc.lines, tok, present, d)
		}
	}
}

func TestStripUnderscoreSpellingsAndConnectionTokens(t *testing.T) {
	h := http.Header{
		"X-Wecom_userid": {"boss"},
		"X_wecom_corpid": {"wwx"},
		"X-Wecom-Ok":     {"gone too"},
		"X-Wecomx":       {"keep"},
		"Connection":     {"keep-alive, X-WeCom-Review", "x-wecom_assertion,Upgrade"},
	}
	stripClientHeaders(h)
	for _, name := range []string{"X-Wecom_userid", "X_wecom_corpid", "X-Wecom-Ok"} {
		if _, ok := h[name]; ok {
			t.Errorf("%s survived", name)
		}
	}
	if h.Get("X-Wecomx") != "keep" {
		t.Error("X-Wecomx removed")
	}
	if got := h["Connection"]; len(got) != 1 || got[0] != "keep-alive, Upgrade" {
		t.Errorf("Connection = %q", got)
	}
	h = http.Header{"Connection": {"X-WeCom-Review"}}
	stripClientHeaders(h)
	if _, ok := h["Connection"]; ok {
		t.Errorf("Connection naming only X-WeCom headers kept: %q", h["Connection"])
	}
	h = http.Header{"Connection": {"keep-alive"}}
	stripClientHeaders(h)
	if h.Get("Connection") != "keep-alive" {
		t.Error("a plain Connection header changed")
	}
}
