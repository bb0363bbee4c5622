#!/bin/sh
# Strict TypeScript check of wecomgate.d.ts through a typed usage file. TypeScript comes from npm
# into a temporary directory: a dependency of this check only, never of the package.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v npm >/dev/null 2>&1; then
	echo "types-check: npm not on PATH: TypeScript check SKIPPED"
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! npm install --no-save --no-audit --no-fund --silent --prefix "$tmp" typescript@5 >"$tmp/npm.log" 2>&1; then
	cat "$tmp/npm.log"
	echo "types-check: could not install typescript@5 from npm: TypeScript check SKIPPED"
	exit 0
fi
"$tmp/node_modules/.bin/tsc" --version
"$tmp/node_modules/.bin/tsc" --noEmit --strict -p "$here/tsconfig.json"
echo "types-check: tsc --noEmit --strict passed"
