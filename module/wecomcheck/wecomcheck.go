// Package wecomcheck is the `caddy wecom-check` command (SPEC §6a): before
// go-live, it asks WeCom, for every corp of every wecom_auth in a config,
// whether the app's credentials and the server's IP work, and says in one
// line per corp what to fix.
//
// Per corp it asks for an access token (gettoken: wrong secret 40001,
// wrong corp id 40013) and then about a userid that does not exist
// (user/get: the trusted-IP rule, 60020, applies to such calls; the
// expected answer is 60111). It prints no secret and no token.
package wecomcheck

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/wecomgate/wecomgate/module/internal/wecom"
	"github.com/wecomgate/wecomgate/module/wecomauth"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "wecom-check",
		Usage: "--config <path> [--adapter <name>]",
		Short: "Checks every wecom_auth corp of a config against WeCom",
		Long: `
Loads the config (adapting it, e.g. a Caddyfile), finds every wecom_auth
handler, and for each of its corps asks WeCom (at the handler's api_base)
for an access token and about a userid that does not exist. Prints one
line per corp:

    ok
    wrong secret (40001)
    wrong corp id (40013)
    server IP not trusted (60020): WeCom saw <ip>; add it to the app's 企业可信IP
    WeCom unreachable: <reason>

and exits with status 1 if any corp fails. Secrets written as {env.X} or
{file.X} are read as Caddy would; no secret or token is printed. Run it
on the server (or through its egress proxy, HTTPS_PROXY): WeCom judges
the IP it sees.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().StringP("config", "c", "", "Configuration file (required)")
			cmd.Flags().StringP("adapter", "a", "", "Name of config adapter to apply")
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
				return run(fl.String("config"), fl.String("adapter"), os.Stdout)
			})
		},
	})
}

// checkTimeout bounds the two WeCom calls of one corp, retries included.
const checkTimeout = 20 * time.Second

// run loads the config and checks it, writing the lines to out.
func run(configFile, adapter string, out io.Writer) (int, error) {
	if configFile == "" {
		return caddy.ExitCodeFailedStartup, errors.New("--config is required")
	}
	cfg, _, _, err := caddycmd.LoadConfig(configFile, adapter)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	handlers, err := Handlers(cfg)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	if len(handlers) == 0 {
		return caddy.ExitCodeFailedStartup, errors.New("no wecom_auth handler in the config")
	}
	failed := 0
	seen := map[string]bool{}
	repl := caddy.NewReplacer()
	for _, h := range handlers {
		base := strings.TrimRight(h.APIBase, "/")
		if base == "" {
			base = wecom.DefaultBaseURL
		}
		client := wecom.New(wecom.Options{BaseURL: base, Attempts: 2})
		for _, c := range h.Corps {
			corp := wecom.Corp{ID: strings.TrimSpace(c.CorpID), Secret: repl.ReplaceKnown(c.Secret, "")}
			key := base + "\x00" + c.Name + "\x00" + corp.ID + "\x00" + c.Secret
			if seen[key] {
				continue // the same corp in two handlers (say, two sites)
			}
			seen[key] = true
			ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
			line, ok := Check(ctx, client, corp)
			cancel()
			if !ok {
				failed++
			}
			fmt.Fprintf(out, "corp %s (%s) at %s: %s\n", c.Name, corp.ID, base, line)
		}
	}
	if failed > 0 {
		return 1, fmt.Errorf("%d of the config's corps failed the check", failed)
	}
	return caddy.ExitCodeSuccess, nil
}

// Check asks WeCom about one corp and returns the line to print and
// whether the corp passed.
func Check(ctx context.Context, client *wecom.Client, corp wecom.Corp) (string, bool) {
	if corp.Secret == "" {
		return "secret is empty after replacing placeholders (is the environment variable set?)", false
	}
	if _, err := client.Token(ctx, corp); err != nil {
		return describe(err), false
	}
	_, err := client.GetUser(ctx, corp, noSuchUser())
	if err == nil || wecom.KindOf(err) == wecom.KindUserNotAllowed {
		return "ok", true // 60111 (or 60011): WeCom answered about the user
	}
	return describe(err), false
}

// noSuchUser is a userid no corp has.
func noSuchUser() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "wecomcheck-" + hex.EncodeToString(b)
}

// describe says what a failed call means for the operator.
func describe(err error) string {
	var e *wecom.Error
	if !errors.As(err, &e) {
		return "WeCom unreachable: " + err.Error()
	}
	switch {
	case e.Errcode == 40001:
		return "wrong secret (40001)"
	case e.Errcode == 40013:
		return "wrong corp id (40013)"
	case e.Errcode == 60020:
		ip := wecom.UntrustedIP(e.Errmsg)
		if ip == "" {
			ip = "an IP it did not name"
		}
		return "server IP not trusted (60020): WeCom saw " + ip + "; add it to the app's 企业可信IP"
	case e.Errcode != 0:
		return fmt.Sprintf("WeCom refused (%d): %s", e.Errcode, e.Errmsg)
	}
	return "WeCom unreachable: " + reason(e)
}

// reason is the cause of a failure that was not an errcode answer.
func reason(e *wecom.Error) string {
	switch {
	case e.HTTPStatus != 0:
		return fmt.Sprintf("HTTP %d", e.HTTPStatus)
	case e.Err != nil:
		return e.Err.Error()
	}
	return e.Error()
}

// Handlers returns every wecom_auth handler of a JSON config, as
// configured (not provisioned): in the http app's servers' routes, their
// subroutes, and anywhere else a handler object may sit (named routes,
// handle_response), found by walking the JSON.
func Handlers(cfg []byte) ([]*wecomauth.Handler, error) {
	var root struct {
		Apps map[string]json.RawMessage `json:"apps"`
	}
	if err := json.Unmarshal(cfg, &root); err != nil {
		return nil, fmt.Errorf("reading the config: %w", err)
	}
	raw, ok := root.Apps["http"]
	if !ok {
		return nil, nil
	}
	var tree any
	if err := json.Unmarshal(raw, &tree); err != nil {
		return nil, fmt.Errorf("reading the http app: %w", err)
	}
	var found []*wecomauth.Handler
	var walkErr error
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if v["handler"] == "wecom_auth" {
				b, _ := json.Marshal(v)
				h := new(wecomauth.Handler)
				if err := json.Unmarshal(b, h); err != nil && walkErr == nil {
					walkErr = fmt.Errorf("reading a wecom_auth handler: %w", err)
				}
				found = append(found, h)
				return
			}
			for _, k := range sortedKeys(v) {
				walk(v[k])
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(tree)
	return found, walkErr
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
