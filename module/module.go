// Package module registers every Caddy module of wecomgate. Import it for
// its side effects, as Caddy's own modules/standard is imported:
//
//	import _ "github.com/wecomgate/wecomgate/module"
package module

import (
	_ "github.com/wecomgate/wecomgate/module/wecomauth"
	_ "github.com/wecomgate/wecomgate/module/wecomcheck"
	_ "github.com/wecomgate/wecomgate/module/wecomsim"
)
