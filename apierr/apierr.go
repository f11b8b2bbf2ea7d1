// Package apierr holds the API's own error codes (the reference's E_* list) and the one
// map from code to HTTP status (DECISIONS §2).
package apierr

import (
	"errors"
	"fmt"
	"net/http"
)

// Codes from the reference's error list, plus E_UNAUTHORIZED and E_FORBIDDEN for the
// gate's 401 and 403 answers.
const (
	IncorrectAPIVersion  = "E_INCORRECT_API_VERSION"
	UnknownMethod        = "E_UNKNOWN_METHOD"
	UndefinedInstruction = "E_UNDEFINED_INSTRUCTION"
	InsufficientAccess   = "E_INSUFFICIENT_ACCESS"
	MissingArgument      = "E_MISSING_ARGUMENT"
	InvalidArgument      = "E_INVALID_ARGUMENT"
	LuaException         = "E_LUA_EXCEPTION"
	AuthFailed           = "E_AUTH_FAILED"
	EndlessLoop          = "E_HAS_NO_ONE_TOLD_YOU_SHE_IS_NOT_BREATHING"
	Unauthorized         = "E_UNAUTHORIZED"
	Forbidden            = "E_FORBIDDEN"
	UserLocked           = "E_USER_LOCKED"
	SQLError             = "E_SQL_ERROR"
	NotExist             = "E_NOT_EXIST"
	DoesNotBelongToYou   = "E_DOES_NOT_BELONG_TO_YOU"
	DataAbort            = "E_DATA_ABORT"
	AsteriskQueryError   = "E_ASTERISK_QUERY_ERROR"
	SIPServerNotExist    = "E_SIP_SERVER_NOT_EXIST"
	WrongExtension       = "E_WRONG_EXTENSION"
	TransactionsLimited  = "E_TRANSACTIONS_LIMITED"
	TransactionsLocked   = "E_TRANSACTIONS_LOCKED"
	AccountHasUsers      = "E_ACCOUNT_HAS_USERS"
	CantCreateAccount    = "E_CANT_CREATE_ASTERISK_ACCOUNT"
	CarrierError         = "E_CARRIER_ERROR"
	DIDOrderFail         = "E_DID_ORDER_FAIL"
	InitiateCallFail     = "E_INITIATE_ASTERISK_CALL_FAIL"
	InsufficientMoney    = "E_INSUFFICIENT_MONEY"
	InvalidSMSFrom       = "E_INVALID_SMS_FROM"
	InvalidSMSTo         = "E_INVALID_SMS_TO"
	CodeHasNoBalance     = "E_CODE_HAS_NO_BALANCE"
	InviteLimitReached   = "E_INVITE_LIMIT_REACHED"
	MaximumPayment       = "E_MAXIMUM_PAYMENT"
	MinimalPayment       = "E_MINIMAL_PAYMENT"
	MinimalStartPayment  = "E_MINIMAL_START_PAYMENT"
	TargetWhitelisted    = "E_TARGET_WHITELISTED"
	TransactionFailed    = "E_TRANSACTION_FAILED"
	TTSError             = "E_TTS_ERROR"
	Unroutable           = "E_UNROUTABLE"
	CantCreateExtension  = "E_CANT_CREATE_ASTERISK_EXTENSION"
	CantDeleteExtension  = "E_CANT_DELETE_EXTENSION"
	AlreadyOnThisTariff  = "E_ALREADY_ON_THIS_TARIFF"
	ContactReseller      = "E_CONTACT_RESELLER"
)

// Error is an API error: a code from the list above and a description for people.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Code + ": " + e.Message
}

// New returns an *Error with a formatted description.
func New(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Code returns the API code of err: its own when it is an *Error, else E_SQL_ERROR
// (an unexpected failure, logged in full but never shown to the client).
func Code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return SQLError
}

// Status is the HTTP status of an answer carrying code.
func Status(code string) int {
	switch code {
	case IncorrectAPIVersion, UnknownMethod, MissingArgument, InvalidArgument:
		return http.StatusBadRequest
	case Unauthorized:
		return http.StatusUnauthorized
	case Forbidden:
		return http.StatusForbidden
	}
	return http.StatusOK
}
