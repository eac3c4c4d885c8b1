package main

import (
	"context"
	"errors"
)

func runManager(ctx context.Context, args []string) error {
	return errors.New("not available yet: this command arrives with the operator work")
}
