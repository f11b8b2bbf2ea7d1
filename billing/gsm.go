package billing

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/lua"
)

// gsmMethods declares the methods whose handlers are in this file: the reference's "GSM".
func (s *Service) gsmMethods() []Method {
	return []Method{
		method("gsmRequest", 0, s.gsmRequest, "provider:string!", "action:string=Default").
			Doc("pass a request to a GSM provider", "what the provider answers"),
	}
}

// Carriers (SMS gateways, HLR services, GSM providers) are Lua named handlers:
// narayana.handler("sms", name, fn) and narayana.handler("gsm", name, fn). The billing
// never talks to a carrier by itself; without scripts, or without a handler of the name
// asked for, every carrier operation answers E_CARRIER_ERROR.

// handlerName is what a handler may be called (narayana.handler's rule); anything else
// cannot be registered, so it is refused before the runtime is asked.
var handlerName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// carrierCodes are the codes a carrier's script may answer with through narayana.fail;
// any other failure of the script is E_CARRIER_ERROR (the channel returned an error).
var carrierCodes = map[string]bool{
	apierr.CarrierError: true, apierr.InvalidSMSTo: true, apierr.InvalidSMSFrom: true,
}

// carrier runs the handler kind/name with in. keepCodes lets the script's own codes
// through (gsmRequest: "depends on provider"); otherwise they become E_CARRIER_ERROR
// unless listed in carrierCodes.
func (s *Service) carrier(ctx context.Context, kind, name string, in map[string]any, keepCodes bool) (any, error) {
	rt := s.ext.scripts
	if rt == nil || !handlerName.MatchString(name) {
		return nil, apierr.New(apierr.CarrierError, "no %s handler %q", kind, name)
	}
	v, err := rt.CallHandler(ctx, kind, name, in)
	if err == nil {
		return v, nil
	}
	if errors.Is(err, lua.ErrNotRegistered) {
		return nil, apierr.New(apierr.CarrierError, "no %s handler %q", kind, name)
	}
	var ae *apierr.Error
	if !errors.As(s.scriptError(kind+" handler "+name, err), &ae) {
		return nil, apierr.New(apierr.CarrierError, "%s handler %s failed", kind, name)
	}
	if !keepCodes && !carrierCodes[ae.Code] {
		ae = &apierr.Error{Code: apierr.CarrierError, Message: ae.Message}
	}
	return nil, ae
}

// carrierID is the message id a carrier's handler answered: a string or number, or a
// table with an id field. false is a refusal (E_CARRIER_ERROR); nil or true accept the
// message without an id.
func carrierID(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case bool:
		if !x {
			return "", apierr.New(apierr.CarrierError, "the carrier refused the message")
		}
		return "", nil
	case string:
		return x, nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case map[string]any:
		if id, ok := x["id"]; ok {
			return carrierID(id)
		}
		return "", nil
	}
	return fmt.Sprint(v), nil
}

// rawParams are the request's parameters as the client sent them (declared or not), less
// the credentials: a carrier's or provider's handler reads its own fields from them.
func (r *Request) rawParams() map[string]any {
	out := make(map[string]any, len(r.args))
	for k, v := range r.args {
		switch k {
		case "login", "password", "username":
			continue
		}
		out[k] = v
	}
	return out
}

// gsmRequest(0) passes a request to the GSM provider's handler (narayana.handler("gsm",
// provider, fn)) and answers what the handler returns. The handler gets action (default
// "Default"), params (every parameter of the request but the credentials), the caller's
// address and key name, and the user when the call has one; its own error codes reach
// the client.
func (s *Service) gsmRequest(r *Request) (any, error) {
	in := map[string]any{"action": r.Str("action"), "params": r.rawParams(), "remote": r.Remote.String()}
	if r.Caller.Key != nil {
		in["key"] = r.Caller.Key.Name
	}
	if r.Caller.User != nil {
		u, err := r.User()
		if err != nil {
			return nil, err
		}
		in["user"] = scriptUser(u)
	}
	v, err := s.carrier(r.ctx, "gsm", r.Str("provider"), in, true)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return true, nil
	}
	return v, nil
}
