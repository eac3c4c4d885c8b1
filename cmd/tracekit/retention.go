package main

import (
	"flag"
	"fmt"
	"time"
)

// retentionFlag registers --retention with default def. env, when not empty, is the variable def
// came from, named in errors when the flag was not given. The returned function validates the value
// after parsing: empty keeps data forever (0), otherwise a Go duration of at least an hour, the
// least the TraceKitTenant resource allows.
func retentionFlag(fs *flag.FlagSet, def, env, usage string) func() (time.Duration, error) {
	value := fs.String("retention", def, usage)
	return func() (time.Duration, error) {
		given := false
		fs.Visit(func(f *flag.Flag) { given = given || f.Name == "retention" })
		name := "--retention"
		if env != "" && !given {
			name = "$" + env
		}
		if *value == "" {
			return 0, nil
		}
		d, err := time.ParseDuration(*value)
		if err != nil {
			return 0, fmt.Errorf("%s %q: not a duration; use hours like 720h (30 days)", name, *value)
		}
		if d < time.Hour {
			return 0, fmt.Errorf("%s %q: shorter than the minimum of 1h; use hours like 720h (30 days), or leave it empty to keep data forever", name, *value)
		}
		return d, nil
	}
}
