package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/tracekit/tracekit/internal/tenantconfig"
	"github.com/tracekit/tracekit/server/store"
)

// attributeIndexFlags registers the attribute index flags; the returned function reads them into
// the store's configuration: the default keys plus the additional ones.
func attributeIndexFlags(fs *flag.FlagSet) func() (store.AttributeIndex, error) {
	keys := fs.String("index-attributes", os.Getenv(tenantconfig.EnvIndexedAttributes),
		"comma-separated attribute keys indexed besides the defaults (docs/data-model.md), e.g. app.order_id ($"+tenantconfig.EnvIndexedAttributes+")")
	perDay := fs.String("attribute-values-per-day", os.Getenv(tenantconfig.EnvAttributeValuesPerDay),
		"distinct values per indexed key and day of data before the key's further values are found by reading spans; empty: "+
			strconv.Itoa(store.DefaultAttributeValuesPerDay)+" ($"+tenantconfig.EnvAttributeValuesPerDay+")")
	return func() (store.AttributeIndex, error) {
		ix := store.AttributeIndex{Keys: append([]string(nil), store.DefaultIndexedAttributes...)}
		for k := range strings.SplitSeq(*keys, ",") {
			if k = strings.TrimSpace(k); k != "" {
				ix.Keys = append(ix.Keys, k)
			}
		}
		if *perDay != "" {
			n, err := strconv.Atoi(*perDay)
			if err != nil || n < 1 {
				return ix, fmt.Errorf("--attribute-values-per-day %q: want a whole number of values, e.g. 100000", *perDay)
			}
			ix.MaxValuesPerDay = n
		}
		return ix, ix.Validate()
	}
}
