package main

import (
	"context"
	"errors"
)

func runAuth(ctx context.Context, args []string) error {
	return errors.New("not available yet: this command arrives with the authorization work")
}
