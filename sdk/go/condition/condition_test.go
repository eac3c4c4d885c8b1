package condition

import (
	"encoding/json"
	"strings"
	"testing"
)

func vars(t *testing.T) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(`{"amount": 1999.5, "currency": "EUR", "retries": 3, "vip": true,
		"user": {"country": "DE", "tags": ["new", "b2b"]}, "items": [{"sku": "A-1", "qty": 2}], "coupon": null}`))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestEval_ComparesPathsAndLiterals(t *testing.T) {
	for expr, want := range map[string]bool{
		"":                                  true,
		"amount > 1000":                     true,
		"amount >= 1999.5 && amount < 2000": true,
		"amount == 1999.5":                  true,
		"retries != 3":                      false,
		"currency == 'EUR'":                 true,
		`user.country == "DE"`:              true,
		`user["country"] < 'FR'`:            true,
		"user.tags[1] == 'b2b'":             true,
		"items[0].sku == 'A-1' && items[0].qty > 1": true,
		"items[5].sku == nil":                       true,
		"missing == nil":                            true,
		"coupon == null":                            true,
		"vip":                                       true,
		"!vip || retries > 5":                       false,
		"!(retries < 3)":                            true,
		"amount < -1":                               false,
		"retries == 3 || amount == 'x'":             true,
		"currency == 3":                             false,
		"user == nil":                               false,
	} {
		e, err := Parse(expr)
		if err != nil {
			t.Errorf("Parse(%q): %v", expr, err)
			continue
		}
		if got, err := e.Eval(vars(t)); err != nil || got != want {
			t.Errorf("%q = %v (%v), want %v", expr, got, err, want)
		}
	}
}

func TestEval_TypeMistakesAreErrorsNotTrue(t *testing.T) {
	for _, expr := range []string{"currency > 3", "amount", "!currency", "amount && vip", "user < 1"} {
		e, err := Parse(expr)
		if err != nil {
			t.Fatalf("Parse(%q): %v", expr, err)
		}
		if got, err := e.Eval(vars(t)); err == nil || got {
			t.Errorf("%q = %v, %v; want false with an error", expr, got, err)
		}
	}
}

func TestParse_SaysWhatIsWrong(t *testing.T) {
	for expr, want := range map[string]string{
		"amount >":                    "expected a variable",
		"amount = 5":                  "unexpected character '='",
		"name == 'bob":                "not closed",
		"(a == 1":                     "expected ')'",
		"a == 1 b":                    "unexpected 'b'",
		"a.":                          "field name after '.'",
		"a[x]":                        "index",
		"a == 1 == 2":                 "unexpected '=='",
		"os.Exit(1)":                  "unexpected '('",
		"1x == 2":                     "not a number",
		strings.Repeat("!", 40) + "a": "nested deeper",
		strings.Repeat("a", 1001):     "keep it under 1000",
	} {
		if _, err := Parse(expr); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%.40q) = %v, want an error with %q", expr, err, want)
		}
	}
}
