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

// playgroundPage is the page rendered for one configuration.
type playgroundPage struct {
	path string // where it is served: <dev_path>/playground
	body []byte
	csp  string
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
	connect := "'self'"
	if u, err := url.Parse(gateway); err == nil && u.Host != "" {
		connect += " " + u.Scheme + "://" + u.Host
	}
	return &playgroundPage{
		path: devPath + "/playground",
		body: buf.Bytes(),
		csp: "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; " +
			"connect-src " + connect + "; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	}, nil
}

// serves reports whether the request is for the page.
func (p *playgroundPage) serves(path string) bool {
	return p != nil && (path == p.path || path == p.path+"/")
}

func (p *playgroundPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeDevError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; use GET")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", p.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(p.body))
}
