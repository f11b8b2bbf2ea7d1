package lua

import (
	"context"
	"errors"
	"regexp"
)

// API codes this package produces. Script-raised errors carry their own code.
const (
	CodeLuaException  = "E_LUA_EXCEPTION"
	CodeDepth         = "E_HAS_NO_ONE_TOLD_YOU_SHE_IS_NOT_BREATHING"
	CodeUnknownMethod = "E_UNKNOWN_METHOD"
	CodeNotExist      = "E_NOT_EXIST"
	CodeTTS           = "E_TTS_ERROR"
)

// Error kinds. Test them with errors.Is; every error this package returns is an *Error
// wrapping one of them, and Code gives its API code.
var (
	// ErrLuaException: the script failed (runtime error, error("text"), bad return value,
	// time or memory limit). API code E_LUA_EXCEPTION.
	ErrLuaException = errors.New("lua exception")
	// ErrTimeout: the call ran past its time limit. Also matches ErrLuaException.
	ErrTimeout = errors.New("lua time limit exceeded")
	// ErrMemory: the call went over its memory limit. Also matches ErrLuaException.
	ErrMemory = errors.New("lua memory limit exceeded")
	// ErrDepth: narayana.call nested deeper than Options.MaxDepth.
	// API code E_HAS_NO_ONE_TOLD_YOU_SHE_IS_NOT_BREATHING.
	ErrDepth = errors.New("lua call depth exceeded")
	// ErrScript: the script raised an API error with its own code
	// (error{code="E_…"} or narayana.fail).
	ErrScript = errors.New("lua script error")
	// ErrNotRegistered: no script registered that method, hook or handler (or no scripts
	// are configured). Code E_UNKNOWN_METHOD for methods, E_NOT_EXIST otherwise.
	ErrNotRegistered = errors.New("lua: not registered")
	// ErrTTS: speech synthesis failed or no engine is installed. API code E_TTS_ERROR.
	ErrTTS = errors.New("tts error")
)

// Error is the error type of this package: an API code, a human message and a kind.
type Error struct {
	Code    string // API code, e.g. E_LUA_EXCEPTION or a script's own E_…
	Message string // human text; for script failures it starts with file:line
	Kind    error  // one of the Err* kinds above
	Cause   error  // underlying error, if any
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Code + ": " + e.Message
}

// Unwrap lets errors.Is match the kind, ErrLuaException for time and memory limits,
// and the cause.
func (e *Error) Unwrap() []error {
	errs := make([]error, 0, 3)
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Kind == ErrTimeout || e.Kind == ErrMemory {
		errs = append(errs, ErrLuaException)
	}
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	return errs
}

// NewError makes an API error with a code, e.g. for the narayana.call callback to pass
// the code of a failed API method back to the script.
func NewError(code, message string) *Error {
	return &Error{Code: code, Message: message, Kind: ErrScript}
}

func luaErr(kind error, msg string) *Error {
	code := CodeLuaException
	if kind == ErrDepth {
		code = CodeDepth
	}
	return &Error{Code: code, Message: msg, Kind: kind}
}

// Code gives the API code of err: the code an *Error carries, the code of any error in
// the chain that has an APICode() string method, E_LUA_EXCEPTION for anything else,
// and "" for nil.
func Code(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Code != "" {
		return e.Code
	}
	var c interface{ APICode() string }
	if errors.As(err, &c) && c.APICode() != "" {
		return c.APICode()
	}
	switch {
	case errors.Is(err, ErrDepth):
		return CodeDepth
	case errors.Is(err, ErrTTS):
		return CodeTTS
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return CodeLuaException
	}
	return CodeLuaException
}

var codeRE = regexp.MustCompile(`^E_[A-Z0-9_]{1,80}$`)

// validCode reports whether s looks like an API error code (E_ and capitals).
func validCode(s string) bool { return codeRE.MatchString(s) }
