// Package directive holds the Caddyfile argument readers the project's
// directives share, so that their error messages name the subdirective
// at fault in one consistent way.
package directive

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// OneArg reads the single argument of the current subdirective. Unlike
// d.ArgErr, the error names the subdirective when the line has too many.
func OneArg(d *caddyfile.Dispenser, dst *string) error {
	name := d.Val()
	if !d.AllArgs(dst) {
		return d.Errf("%s: expected exactly one value", name)
	}
	return nil
}

// Duration reads the single, positive duration argument of the current
// subdirective.
func Duration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	name := d.Val()
	var s string
	if !d.AllArgs(&s) {
		return d.Errf("%s: expected exactly one duration", name)
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("%s: %v", name, err)
	}
	if dur <= 0 {
		return d.Errf("%s: must be positive", name)
	}
	*dst = caddy.Duration(dur)
	return nil
}

// IDs reads the positive integer ids (departments, tags) that follow the
// current subdirective: at least one.
func IDs(d *caddyfile.Dispenser) ([]int64, error) {
	name := d.Val()
	args := d.RemainingArgs()
	if len(args) == 0 {
		return nil, d.Errf("%s: expected at least one id", name)
	}
	ids := make([]int64, 0, len(args))
	for _, s := range args {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil || id < 1 {
			return nil, d.Errf("%s: %q is not an id", name, s)
		}
		ids = append(ids, id)
	}
	return ids, nil
}
