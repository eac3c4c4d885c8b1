//go:build cgo

package dexauth

import (
	"log/slog"

	"github.com/dexidp/dex/storage"
	dexsql "github.com/dexidp/dex/storage/sql"
)

func openSQLite(path string, logger *slog.Logger) (storage.Storage, error) {
	return (&dexsql.SQLite3{File: path}).Open(logger)
}
