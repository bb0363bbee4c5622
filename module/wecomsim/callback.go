package wecomsim

// Callbacks: a corp configured with a gateway's callback URL, token and EncodingAESKey gets
// WeCom's contact-change events (通讯录回调通知, change_contact: /document/path/90970 members,
// 90971 departments, 90972 tags) when its contacts change through the development interface,
// encrypted and signed as WeCom does (加解密方案说明, /document/path/90968), and a URL
// verification on request (回调配置, /document/path/90930). Every callback sent and its answer
// is kept for GET <dev_path>/callbacks and the playground.

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wecomgate/wecomgate/module/internal/wxcrypt"
)

// Callback is where a corp's callbacks go: the receive-message URL of the app (a gateway's
// <endpoints>/callback/<corp name>), with the Token and EncodingAESKey set there.
type Callback struct {
	URL    string
	Token  string
	AESKey string // 43 characters, as WeCom's console shows it
}

// ErrNoCallback: the corp has no callback configured.
var ErrNoCallback = errors.New("no callback configured for this corp")

// CallbackResult is one callback the simulator sent and what came back.
type CallbackResult struct {
	At     time.Time `json:"at"`
	Corp   string    `json:"corp"`
	Event  string    `json:"event"` // "verify" or the change type, e.g. "update_user"
	Target string    `json:"target,omitempty"`
	URL    string    `json:"url"` // without the query
	Status int       `json:"status"`
	Answer string    `json:"answer"` // the answer's body, shortened
	Error  string    `json:"error,omitempty"`
	// OK: the gateway answered 200 with "success" (an event) or the echostr (a verification).
	OK bool `json:"ok"`
}

// maxCallbackLog bounds the callbacks kept.
const maxCallbackLog = 50

// callbackTimeout is WeCom's patience: it resends what is not answered within 5 s.
const callbackTimeout = 5 * time.Second

type callbackTarget struct {
	url     string
	crypter *wxcrypt.Crypter
}

func newCallbackTarget(corpID string, cb *Callback) *callbackTarget {
	if cb == nil || cb.URL == "" {
		return nil
	}
	cr, err := wxcrypt.New(cb.Token, cb.AESKey, corpID)
	if err != nil {
		return nil // Validate reports it; New repairs by leaving callbacks off
	}
	return &callbackTarget{url: cb.URL, crypter: cr}
}

func checkCallback(cb *Callback) error {
	if cb == nil {
		return nil
	}
	u, err := url.Parse(cb.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("callback: %q is not an http(s) URL", cb.URL)
	}
	if u.RawQuery != "" {
		return fmt.Errorf("callback: the URL %q must have no query (WeCom adds msg_signature, timestamp and nonce)", cb.URL)
	}
	if cb.Token == "" {
		return errors.New("callback: token is required")
	}
	if _, err := wxcrypt.ParseKey(cb.AESKey); err != nil {
		return fmt.Errorf("callback: aes_key: %v", err)
	}
	return nil
}

// contactChange is one change_contact event, in the XML WeCom sends to a self-built app.
type contactChange struct {
	XMLName      xml.Name `xml:"xml"`
	ToUserName   string   `xml:"ToUserName"`
	FromUserName string   `xml:"FromUserName"`
	CreateTime   int64    `xml:"CreateTime"`
	MsgType      string   `xml:"MsgType"`
	Event        string   `xml:"Event"`
	ChangeType   string   `xml:"ChangeType"`
	UserID       string   `xml:"UserID,omitempty"`
	NewUserID    string   `xml:"NewUserID,omitempty"`
	Department   string   `xml:"Department,omitempty"`
	Status       int      `xml:"Status,omitempty"`
	ID           int64    `xml:"Id,omitempty"`
	TagID        int64    `xml:"TagId,omitempty"`
}

func userChange(changeType string, u User) *contactChange {
	return &contactChange{ChangeType: changeType, UserID: u.UserID, Department: joinInts(u.Departments), Status: u.Status}
}

func (ev *contactChange) target() string {
	switch {
	case ev.NewUserID != "":
		return ev.UserID + " → " + ev.NewUserID
	case ev.UserID != "":
		return ev.UserID
	case ev.ID != 0:
		return "department " + strconv.FormatInt(ev.ID, 10)
	case ev.TagID != 0:
		return "tag " + strconv.FormatInt(ev.TagID, 10)
	}
	return ""
}

// envelope is the POST body WeCom sends: the ciphertext and, in the clear, receiver and agent.
type envelope struct {
	XMLName    xml.Name `xml:"xml"`
	ToUserName string   `xml:"ToUserName"`
	AgentID    string   `xml:"AgentID"`
	Encrypt    string   `xml:"Encrypt"`
}

// notify sends ev to the corp's callback URL, if it has one, and keeps the result. It runs
// without s.mu: the gateway, answering, may call this simulator.
func (s *Simulator) notify(c *corp, ev *contactChange) {
	if c.callback == nil || ev == nil {
		return
	}
	now := time.Now()
	ev.ToUserName, ev.FromUserName, ev.CreateTime = c.id, "sys", now.Unix()
	ev.MsgType, ev.Event = "event", "change_contact"
	res := CallbackResult{At: now, Corp: c.name, Event: ev.ChangeType, Target: ev.target(), URL: c.callback.url}
	msg, err := xml.Marshal(ev)
	if err == nil {
		err = s.postEvent(c, msg, &res)
	}
	if err != nil {
		res.Error = err.Error()
	}
	s.logCallback(res)
}

func (s *Simulator) postEvent(c *corp, msg []byte, res *CallbackResult) error {
	ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), randomDigits(10)
	ct, sig, err := c.callback.crypter.Seal(msg, ts, nonce)
	if err != nil {
		return err
	}
	body, err := xml.Marshal(envelope{ToUserName: c.id, AgentID: "1000002", Encrypt: ct})
	if err != nil {
		return err
	}
	q := url.Values{"msg_signature": {sig}, "timestamp": {ts}, "nonce": {nonce}}
	status, answer, err := s.sendCallback(http.MethodPost, c.callback.url+"?"+q.Encode(), body)
	res.Status, res.Answer = status, answer
	res.OK = err == nil && status == http.StatusOK && answer == "success"
	return err
}

// VerifyCallback does what WeCom's console does when the URL is saved: a GET with an
// encrypted echostr, which the gateway must answer decrypted.
func (s *Simulator) VerifyCallback(corpKey string) (CallbackResult, error) {
	s.mu.Lock()
	c := s.findCorpLocked(corpKey)
	s.mu.Unlock()
	switch {
	case c == nil:
		return CallbackResult{}, fmt.Errorf("%w %q", ErrUnknownCorp, corpKey)
	case c.callback == nil:
		return CallbackResult{}, fmt.Errorf("%w %q", ErrNoCallback, c.name)
	}
	res := CallbackResult{At: time.Now(), Corp: c.name, Event: "verify", URL: c.callback.url}
	echo := randomDigits(19) // WeCom's echostr decrypts to a number such as 1288432023552776189
	ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), randomDigits(10)
	ct, sig, err := c.callback.crypter.Seal([]byte(echo), ts, nonce)
	if err == nil {
		q := url.Values{"msg_signature": {sig}, "timestamp": {ts}, "nonce": {nonce}, "echostr": {ct}}
		res.Status, res.Answer, err = s.sendCallback(http.MethodGet, c.callback.url+"?"+q.Encode(), nil)
		res.OK = err == nil && res.Status == http.StatusOK && res.Answer == echo
	}
	if err != nil {
		res.Error = err.Error()
	}
	s.logCallback(res)
	return res, nil
}

func (s *Simulator) sendCallback(method, target string, body []byte) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callbackTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return 0, "", errors.New("cannot build the callback request")
	}
	if body != nil {
		req.Header.Set("Content-Type", "text/xml")
	}
	req.Header.Set("User-Agent", "wecomgate-simulator (as WeCom's callback)")
	resp, err := s.callbackClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text would repeat the URL with the signature
		}
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return resp.StatusCode, strings.ToValidUTF8(string(b), "?"), nil
}

func (s *Simulator) logCallback(res CallbackResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.callbackLog = append(s.callbackLog, res)
	if n := len(s.callbackLog); n > maxCallbackLog {
		s.callbackLog = append([]CallbackResult(nil), s.callbackLog[n-maxCallbackLog:]...)
	}
}

// Callbacks returns the callbacks sent, newest first.
func (s *Simulator) Callbacks() []CallbackResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]CallbackResult, len(s.callbackLog))
	for i, r := range s.callbackLog {
		out[len(out)-1-i] = r
	}
	return out
}

func randomDigits(n int) string {
	b := randomBytes(n)
	for i := range b {
		b[i] = '0' + b[i]%10
	}
	if b[0] == '0' {
		b[0] = '1'
	}
	return string(b)
}
