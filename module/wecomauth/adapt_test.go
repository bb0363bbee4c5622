package wecomauth_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

var update = flag.Bool("update", false, "rewrite the expected JSON of testdata/adapt/*.caddyfiletest")

// Golden adapt tests keep the Caddyfile surface honest: each
// testdata/adapt/*.caddyfiletest holds a Caddyfile, a line of dashes, and
// the JSON it must adapt to. Run with -update to accept new output.
func TestCaddyfileAdapt(t *testing.T) {
	files, _ := filepath.Glob("testdata/adapt/*.caddyfiletest")
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, want, ok := strings.Cut(string(raw), "\n----------\n")
			if !ok {
				t.Fatal("no ---------- separator")
			}
			out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), nil)
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			got := indentJSON(t, out)
			if *update {
				if err := os.WriteFile(file, []byte(input+"\n----------\n"+got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != indentJSON(t, []byte(want)) {
				t.Errorf("adapted JSON differs (run with -update to accept):\n%s", got)
			}
		})
	}
}

func indentJSON(t *testing.T, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(b), "", "\t"); err != nil {
		t.Fatalf("bad JSON: %v\n%s", err, b)
	}
	return buf.String() + "\n"
}
