package wecomsim_test

import (
	"os"
	"testing"

	"github.com/wecomgate/wecomgate/module/internal/testcaddy"
)

// TestMain keeps the real Caddy of some tests away from the real home's config and data.
func TestMain(m *testing.M) {
	os.Exit(testcaddy.Run(m))
}
