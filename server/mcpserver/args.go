package mcpserver

import (
	"errors"
	"fmt"
)

// argError is a mistake in a tool's arguments. Its message says what to change; the SDK turns it
// into an isError result the assistant can act on.
type argError struct{ msg string }

func (e *argError) Error() string { return e.msg }

func badArg(format string, args ...any) error { return &argError{fmt.Sprintf(format, args...)} }

// errInternal hides a storage failure's detail from the assistant (it is logged) but says what to do.
var errInternal = errors.New("the observability database did not answer; try again in a moment")
