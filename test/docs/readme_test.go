// Package docs checks that the README describes the tree as it is.
package docs

import (
	"maps"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// groups are directories that only group packages: a row naming one of them covers nothing.
var groups = []string{"server", "internal", "test", "sdk"}

// layoutRows returns the paths named in the first column of the README's layout table.
func layoutRows(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "\n## Layout\n")
	if !ok {
		t.Fatal("README.md has no ## Layout section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	var rows []string
	for line := range strings.Lines(table) {
		if first, _, ok := strings.Cut(strings.TrimPrefix(line, "|"), "|"); ok && strings.HasPrefix(line, "|") {
			for _, m := range regexp.MustCompile("`([^`]+)/`").FindAllStringSubmatch(first, -1) {
				rows = append(rows, m[1])
			}
		}
	}
	if len(rows) == 0 {
		t.Fatal("the layout table names no paths")
	}
	return rows
}

// TestREADMELayout_HasARowForEveryPackageAndNoStaleOne: a package directory is covered by a row
// naming it or one of its parents, other than a bare grouping directory (server/, internal/, test/,
// sdk/); every row names a directory that exists.
func TestREADMELayout_HasARowForEveryPackageAndNoStaleOne(t *testing.T) {
	rows := layoutRows(t)
	out, err := exec.Command("git", "-C", "../..", "ls-files", "--cached", "--others", "--exclude-standard", "*.go").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	dirs := map[string]bool{}
	for f := range strings.Lines(string(out)) {
		dirs[path.Dir(strings.TrimSpace(f))] = true
	}
	for _, dir := range slices.Sorted(maps.Keys(dirs)) {
		covered := false
		for d := dir; d != "." && !covered; d = path.Dir(d) {
			covered = slices.Contains(rows, d) && !slices.Contains(groups, d)
		}
		if !covered {
			t.Errorf("README.md's layout table has no row for %s/: add one for it (or for a parent other than server/, internal/, test/, sdk/)", dir)
		}
	}
	for _, r := range rows {
		if info, err := os.Stat("../../" + r); err != nil || !info.IsDir() {
			t.Errorf("README.md's layout table names %s/, which is not a directory: remove or fix the row", r)
		}
	}
}
