package wecomsim

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The playground is one HTML page (CSS and a little JavaScript inline, no build step) that drives
// the simulator's development interface and a gateway from a browser. It is served under the
// development interface, at <dev_path>/playground, only when the playground option names the
// gateway. The gateway is best reached through the simulator's own site (a reverse_proxy under a
// path such as /gateway) so that the page needs no CORS.

//go:embed playground/index.html
var playgroundHTML string

var playgroundTemplate = template.Must(template.New("playground").Parse(playgroundHTML))

// rootTemplate is the page at / of the simulator's site when the playground is on: a pointer to
// the playground, so that opening the simulator's port in a browser leads somewhere.
var rootTemplate = template.Must(template.New("root").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>wecomgate WeCom simulator (development only)</title>
<style>body { font: 15px/1.5 system-ui, sans-serif; max-width: 40em; margin: 2em auto; padding: 0 1em; color: #1d2330; }</style>
</head>
<body>
<h1>wecomgate's WeCom simulator</h1>
<p><b>Development only.</b> This site plays WeCom for a gateway (under <code>/cgi-bin/</code>) and
has a development interface at <code>{{.DevPath}}</code>.</p>
<p><a id="playground" href="{{.Playground}}">Open the playground</a>: sign in as a simulated user
and watch the gateway work.</p>
</body>
</html>
`))

// playgroundPage is the page rendered for one configuration, with the root page that links to it.
type playgroundPage struct {
	path string // where it is served: <dev_path>/playground
	body []byte
	csp  string
	root []byte // the page at /, or nil when the gateway itself is at / of this site
}

// checkPlayground validates the playground option: a path on the simulator's own origin or an
// absolute http(s) URL of the gateway.
func checkPlayground(gateway string) error {
	if strings.HasPrefix(gateway, "/") {
		if strings.HasPrefix(gateway, "//") {
			return fmt.Errorf("wecom_simulator: playground %q: a path must not start with //", gateway)
		}
		return nil
	}
	u, err := url.Parse(gateway)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("wecom_simulator: playground %q: want the gateway as a path such as /gateway or as an http(s) URL such as http://127.0.0.1:8080", gateway)
	}
	return nil
}

// newPlaygroundPage renders the page for the gateway base (path or URL) and the dev interface.
func newPlaygroundPage(gateway, devPath string) (*playgroundPage, error) {
	gateway = strings.TrimRight(gateway, "/")
	var buf bytes.Buffer
	err := playgroundTemplate.Execute(&buf, struct{ Gateway, DevPath string }{gateway, devPath})
	if err != nil {
		return nil, err
	}
	var root []byte
	if gateway != "" { // a gateway proxied at / would answer / itself
		var rbuf bytes.Buffer
		if err := rootTemplate.Execute(&rbuf, struct{ DevPath, Playground string }{devPath, devPath + "/playground"}); err != nil {
			return nil, err
		}
		root = rbuf.Bytes()
	}
	connect := "'self'"
	if u, err := url.Parse(gateway); err == nil && u.Host != "" {
		connect += " " + u.Scheme + "://" + u.Host
	}
	return &playgroundPage{
		path: devPath + "/playground",
		body: buf.Bytes(),
		csp: "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; " +
			"connect-src " + connect + "; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
		root: root,
	}, nil
}

// serves reports whether the request is for the page or for the root page that links to it.
func (p *playgroundPage) serves(path string) bool {
	return p != nil && (path == p.path || path == p.path+"/" || (path == "/" && p.root != nil))
}

func (p *playgroundPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeDevError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; use GET")
		return
	}
	body, csp := p.body, p.csp
	if r.URL.Path == "/" {
		body, csp = p.root, "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}
