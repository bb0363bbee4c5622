// Command caddy is a Caddy binary with the standard modules plus wecomgate.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/wecomgate/wecomgate/module"
)

func main() {
	caddycmd.Main()
}
