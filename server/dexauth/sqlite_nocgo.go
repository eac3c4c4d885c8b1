//go:build !cgo

package dexauth

import (
	"errors"
	"log/slog"

	"github.com/dexidp/dex/storage"
)

// Dex's SQLite storage is written against a cgo driver.
func openSQLite(string, *slog.Logger) (storage.Storage, error) {
	return nil, errors.New("Dex's SQLite storage needs a build with cgo; use memory or postgres storage")
}
