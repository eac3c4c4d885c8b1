package genai

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadPriceTable_ReplacesTheBuiltInTable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prices.json")
	if err := os.WriteFile(path, []byte(`{"taken": "2026-12-01", "source": "test",
		"models": {"GPT-5": {"provider": "openai", "input": 1.25, "output": 10, "cached_input": 0.125, "taken": "2026-11-30"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	table, err := LoadPriceTable(path)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := table.Lookup("gpt-5-2026-08-07")
	if !ok || p.Input != 1.25 || p.Taken != "2026-11-30" {
		t.Fatalf("Lookup(gpt-5-2026-08-07) = %+v, %v", p, ok)
	}
	if _, ok := table.Lookup("gpt-4o"); ok {
		t.Error("gpt-4o is priced although the loaded table does not list it: the file must replace the built-in table")
	}
}

func TestParsePriceTable_RefusesBadTablesSayingWhy(t *testing.T) {
	cases := map[string]struct{ json, want string }{
		"no date":        {`{"models": {"m": {"input": 1, "output": 1}}}`, `"taken" must be the date`},
		"bad date":       {`{"taken": "Dec 1", "models": {"m": {"input": 1}}}`, "YYYY-MM-DD"},
		"no models":      {`{"taken": "2026-12-01", "models": {}}`, `"models" is empty`},
		"negative":       {`{"taken": "2026-12-01", "models": {"m": {"input": -1}}}`, `model "m": prices must not be negative`},
		"unknown field":  {`{"taken": "2026-12-01", "models": {"m": {"inputs": 1}}}`, `unknown field "inputs"`},
		"per-model date": {`{"taken": "2026-12-01", "models": {"m": {"input": 1, "taken": "yesterday"}}}`, `model "m": "taken" must be YYYY-MM-DD`},
		"not JSON":       {`models: {}`, "want {\"taken\""},
	}
	for name, tc := range cases {
		_, err := ParsePriceTable([]byte(tc.json))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", name, err, tc.want)
		}
	}
}

func TestBuiltinTableIsValidAndDated(t *testing.T) {
	if Builtin.Taken == "" || len(Builtin.Models) == 0 {
		t.Fatalf("built-in table: taken %q, %d models", Builtin.Taken, len(Builtin.Models))
	}
}
