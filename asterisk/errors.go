package asterisk

import (
	"context"
	"errors"
	"fmt"
)

// ErrInvalidValue is returned, wrapped, when a value would have to be written
// into an AMI message but contains CR or LF (or is too long). Nothing is sent.
// The API layer answers it with E_INVALID_ARGUMENT.
var ErrInvalidValue = errors.New("asterisk: invalid value")

// ErrClosed is returned by a Client (or Manager) after Close.
var ErrClosed = errors.New("asterisk: client closed")

// Error is Asterisk answering an action with "Response: Error". Message is
// Asterisk's own text ("Authentication failed", "No such channel", or for a
// failed CLI command its output), fit for the API's description field.
type Error struct {
	Action  string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("asterisk: %s: %s", e.Action, e.Message)
}

// NetError means Asterisk could not be used: the connection could not be
// opened, was lost, or an answer did not come in time (Timeout). Err is the
// cause; errors.Is(err, context.DeadlineExceeded) holds for timeouts.
type NetError struct {
	Address string
	Action  string // the action that failed, or "" for connecting
	Timeout bool
	Err     error
}

func (e *NetError) Error() string {
	what := "connect"
	if e.Action != "" {
		what = e.Action
	}
	if e.Timeout {
		return fmt.Sprintf("asterisk %s: timeout (%s): %v", e.Address, what, e.Err)
	}
	return fmt.Sprintf("asterisk %s unreachable (%s): %v", e.Address, what, e.Err)
}

func (e *NetError) Unwrap() error { return e.Err }

func netError(addr, action string, err error) error {
	var ne *NetError
	if errors.As(err, &ne) || errors.Is(err, ErrClosed) {
		return err
	}
	var te interface{ Timeout() bool }
	timeout := errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &te) && te.Timeout())
	return &NetError{Address: addr, Action: action, Timeout: timeout, Err: err}
}

// Originate reason codes, as in the Reason header of OriginateResponse.
const (
	ReasonFailure    = 0 // no such channel, and other failures
	ReasonHungUp     = 1 // hung up before answer
	ReasonNoAnswer   = 3 // rang, no answer
	ReasonAnswered   = 4
	ReasonBusy       = 5
	ReasonCongestion = 8
)

// ReasonText is the text for an Originate reason code.
func ReasonText(reason int) string {
	switch reason {
	case ReasonFailure:
		return "failure"
	case ReasonHungUp:
		return "hung up"
	case ReasonNoAnswer:
		return "no answer"
	case ReasonAnswered:
		return "answered"
	case ReasonBusy:
		return "busy"
	case ReasonCongestion:
		return "congestion"
	}
	return fmt.Sprintf("reason %d", reason)
}

// OriginateError is an Originate that Asterisk queued but that did not end in
// an answered call. Its text is the reason alone ("busy"), which the API puts
// in the description of E_INITIATE_ASTERISK_CALL_FAIL.
type OriginateError struct {
	Reason int
}

func (e *OriginateError) Error() string { return ReasonText(e.Reason) }
