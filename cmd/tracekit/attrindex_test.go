package main

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestAttributeIndexFlags_AddKeysToTheDefaultsAndRefuseBadLimits(t *testing.T) {
	parse := func(args ...string) (keys []string, perDay int, err error) {
		fs := flag.NewFlagSet("server", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		read := attributeIndexFlags(fs)
		if err := fs.Parse(args); err != nil {
			return nil, 0, err
		}
		ix, err := read()
		return ix.Keys, ix.MaxValuesPerDay, err
	}
	keys, perDay, err := parse("--index-attributes", "app.order_id, k8s.pod.name", "--attribute-values-per-day", "5000")
	if err != nil || !slices.Contains(keys, "user.id") || !slices.Contains(keys, "app.order_id") || !slices.Contains(keys, "k8s.pod.name") || perDay != 5000 {
		t.Errorf("keys %v, per day %d, %v", keys, perDay, err)
	}
	if _, _, err := parse("--attribute-values-per-day", "lots"); err == nil || !strings.Contains(err.Error(), "whole number") {
		t.Errorf("a limit that is not a number: %v", err)
	}
	if _, _, err := parse("--index-attributes", `a"b`); err == nil || !strings.Contains(err.Error(), "without quotes") {
		t.Errorf("a key with a quote: %v", err)
	}
}
