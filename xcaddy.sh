#!/usr/bin/env bash
# Builds bin/caddy with xcaddy from this checkout: Caddy's standard modules
# plus wecomgate. Extra arguments go to `xcaddy build`, e.g.
#
#	./xcaddy.sh --with github.com/pberkel/caddy-storage-redis@v1.8.1
#
# CADDY_VERSION picks Caddy's version (default: the one go.mod requires).
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v go >/dev/null 2>&1; then
	echo "xcaddy.sh: Go is not installed or not on PATH; get Go 1.26 or newer from https://go.dev/dl/" >&2
	exit 1
fi

module=github.com/wecomgate/wecomgate
version=${CADDY_VERSION:-$(go list -m -f '{{.Version}}' github.com/caddyserver/caddy/v2)}
xcaddy=${XCADDY:-github.com/caddyserver/xcaddy/cmd/xcaddy@v0.4.5}

# --replace points the module at this checkout, so local changes are what
# gets built. Go still asks whether github.com/wecomgate/wecomgate/module is
# a module of its own; marking the path private with its VCS switched off
# makes that a quick "no" instead of a proxy or git round trip (a proxy that
# answers 403 rather than 404 would otherwise fail the build).
export GOPRIVATE="github.com/wecomgate${GOPRIVATE:+,$GOPRIVATE}"
export GOVCS="github.com/wecomgate:off${GOVCS:+,$GOVCS}"

mkdir -p bin
exec go run "$xcaddy" build "$version" \
	--with "$module/module" \
	--replace "$module=$PWD" \
	--output bin/caddy \
	"$@"
