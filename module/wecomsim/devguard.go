package wecomsim

import (
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// The development interface and the playground mint login codes for any user, so a simulator
// left on by mistake must not be an open door. By default they answer only requests that come
// from this machine (a loopback client) and name this machine (a loopback Host): the second
// check defeats DNS rebinding, where a web page the developer visits makes their own browser,
// a loopback client, send requests for an attacker's name that resolves to 127.0.0.1. The WeCom
// calls stay open to everyone, as the gateway calling them may be elsewhere.
//
// Writes also need a JSON content type: a cross-site HTML form cannot send one, and fetch from
// another origin cannot without a CORS preflight, which the development interface never grants.

// devAllowRemoteHint tells a refused caller how to let remote callers in, and what it costs.
const devAllowRemoteHint = "; to allow it, set dev_allow_remote in the wecom_simulator block " +
	"(then anyone who reaches this server can sign in as any user)"

// admitDev answers 403 and returns false unless the request may use the development
// interface or the playground.
func (s *Simulator) admitDev(w http.ResponseWriter, r *http.Request) bool {
	if s.devAllowRemote {
		return true
	}
	if ip, ok := clientAddr(r); !ok || !ip.IsLoopback() {
		from := "an unknown address"
		if ok {
			from = ip.String()
		}
		writeDevError(w, http.StatusForbidden, "forbidden",
			"the development interface answers only loopback clients (this machine), not "+from+devAllowRemoteHint)
		return false
	}
	if !loopbackHost(r.Host) {
		writeDevError(w, http.StatusForbidden, "forbidden",
			"the development interface answers only at a loopback Host (localhost, 127.0.0.1 or [::1]), "+
				"against DNS rebinding; open it as http://127.0.0.1:<port>"+devAllowRemoteHint)
		return false
	}
	return true
}

// clientAddr is the client's address as Caddy determined it (the real client behind a trusted
// proxy), or the connection's peer outside Caddy. IPv4-mapped IPv6 addresses are unmapped so
// that ::ffff:127.0.0.1 counts as loopback.
func clientAddr(r *http.Request) (netip.Addr, bool) {
	host, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	if host == "" {
		var err error
		if host, _, err = net.SplitHostPort(r.RemoteAddr); err != nil {
			return netip.Addr{}, false // a Unix socket peer ("@") among others: not known to be local
		}
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

// loopbackHost reports whether a Host header names this machine: localhost or a loopback
// address, with or without a port.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1] // [::1] without a port
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// admitWrite answers 415 or 400 and returns false unless a write is sent as JSON.
func admitWrite(w http.ResponseWriter, r *http.Request) bool {
	if !isJSON(r.Header.Get("Content-Type")) {
		writeDevError(w, http.StatusUnsupportedMediaType, "unsupported_media_type",
			r.Method+" needs Content-Type: application/json (with a JSON body, or none)")
		return false
	}
	if r.URL.RawQuery != "" {
		// Refused rather than ignored: a caller still sending fields the old way, as query
		// parameters, must not have its request silently do something else.
		writeDevError(w, http.StatusBadRequest, "invalid_request",
			"query parameters are not read on "+r.Method+": send the fields as a JSON body")
		return false
	}
	return true
}

// isWrite reports whether a method may change state. Everything but the safe methods counts,
// so that a method no endpoint knows is refused the same way.
func isWrite(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// isJSON reports whether a Content-Type header is application/json, parameters allowed.
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}
