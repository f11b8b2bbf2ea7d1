package lua

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

// The examples folder loads as a real scripts folder and each example does its job.
func examplesRuntime(t *testing.T) *Runtime {
	t.Helper()
	rt, err := New(Options{Dir: "examples", Logger: quietLogger(), PollInterval: -1, Timeout: time.Second})
	if err != nil {
		t.Fatalf("loading examples: %v", err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

func TestExampleMethods(t *testing.T) {
	rt := examplesRuntime(t)
	var names []string
	for _, m := range rt.Methods() {
		names = append(names, m.Name)
	}
	if !reflect.DeepEqual(names, []string{"hello", "quote"}) {
		t.Fatalf("methods = %v", names)
	}
	hello := rt.Methods()[0]
	if hello.Level != 0 || len(hello.Args) != 2 || !hello.Args[0].Required || hello.Args[1].Default != "1" || hello.Args[1].Type != "num" {
		t.Errorf("hello spec = %+v", hello)
	}
	ctx := context.Background()
	v, err := rt.CallMethod(ctx, "hello", Request{Args: map[string]any{"who": "ann", "n": int64(2)}})
	if err != nil || v != "hi ann, hi ann" {
		t.Errorf("hello = %v, %v", v, err)
	}
	_, err = rt.CallMethod(ctx, "hello", Request{Args: map[string]any{"who": "ann", "n": int64(11)}})
	if Code(err) != "E_INVALID_ARGUMENT" {
		t.Errorf("hello n=11: %v", err)
	}
	v, err = rt.CallMethod(ctx, "quote", Request{
		Args: map[string]any{"minutes": int64(3), "rate": "0.05"},
		User: map[string]any{"username": "ann"},
	})
	want := map[string]any{"login": "ann", "cost": int64(150000), "display": "0.15"}
	if err != nil || !reflect.DeepEqual(v, want) {
		t.Errorf("quote = %v, %v", v, err)
	}
}

func TestExamplePrepareHook(t *testing.T) {
	rt := examplesRuntime(t)
	ctx := context.Background()
	cases := []struct {
		dest    string
		premium bool
		want    PrepareHookResult
	}{
		{"112", false, PrepareHookResult{Destination: "4930112"}},
		{"1000", false, PrepareHookResult{Destination: "4930123456"}},
		{"+49 900 123456", false, PrepareHookResult{Decline: "E_UNROUTABLE"}},
		{"0049900123456", true, PrepareHookResult{Destination: "49900123456"}},
		{"4930555", false, PrepareHookResult{}},
		{"+49-30-555", false, PrepareHookResult{Destination: "4930555"}},
	}
	for _, c := range cases {
		got, ok, err := rt.CallPrepareHook(ctx, map[string]any{
			"destination": c.dest, "callerid": "100", "prior": 1,
			"user": map[string]any{"username": "ann", "allow_premium": c.premium},
		})
		if !ok || err != nil || got != c.want {
			t.Errorf("%q: %+v %v %v, want %+v", c.dest, got, ok, err, c.want)
		}
	}
	if ok, err := rt.CallFinishHook(ctx, map[string]any{"destination": "4930", "seconds": 4000}); !ok || err != nil {
		t.Errorf("callFinish: %v %v", ok, err)
	}
}

func TestExamplePaymentHandler(t *testing.T) {
	rt := examplesRuntime(t)
	ctx := context.Background()
	if got := rt.Handlers("payment"); !reflect.DeepEqual(got, []string{"voucher"}) {
		t.Fatalf("payment handlers = %v", got)
	}
	v, err := rt.CallHandler(ctx, "payment", "voucher", map[string]any{"code": "welcome5", "user": map[string]any{"id": 1}})
	want := map[string]any{"credit": int64(5_000_000), "text": "voucher welcome5: +5.00"}
	if err != nil || !reflect.DeepEqual(v, want) {
		t.Errorf("voucher = %v, %v", v, err)
	}
	_, err = rt.CallHandler(ctx, "payment", "voucher", map[string]any{"code": "NOPE"})
	if Code(err) != "E_NOT_EXIST" || !errors.Is(err, ErrScript) {
		t.Errorf("unknown voucher: %v", err)
	}
	_, err = rt.CallHandler(ctx, "payment", "voucher", map[string]any{"code": "WELCOME5", "minimum": "10"})
	if Code(err) != "E_INSUFFICIENT_MONEY" {
		t.Errorf("below minimum: %v", err)
	}
}
