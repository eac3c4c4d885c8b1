package main

import (
	"flag"
	"os"

	"github.com/tracekit/tracekit/server/genai"
)

// pricesFlag registers --prices; the returned func loads the file, or gives nil for the built-in table.
func pricesFlag(fs *flag.FlagSet) func() (*genai.PriceTable, error) {
	path := fs.String("prices", os.Getenv("TRACEKIT_PRICES"), "JSON file of LLM prices replacing the built-in table (format: docs/llm-prices.md) ($TRACEKIT_PRICES)")
	return func() (*genai.PriceTable, error) {
		if *path == "" {
			return nil, nil
		}
		t, err := genai.LoadPriceTable(*path)
		if err != nil {
			return nil, err
		}
		return &t, nil
	}
}
