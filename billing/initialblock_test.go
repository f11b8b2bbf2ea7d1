package billing

import (
	"math/big"
	"strconv"
	"strings"
	"testing"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/money"
)

// blockCharge is an independent charge with an initial block: the billed length is the
// smallest first + k·step covering length, priced with rationals and rounded half-up once.
func blockCharge(costPerMin, switchPrice money.Micro, free, first, step, length int) money.Micro {
	if length <= free || length <= 0 {
		return 0
	}
	billed := first
	for billed < length {
		billed += step
	}
	r := new(big.Rat).SetFrac64(int64(costPerMin)*int64(billed), 60)
	r.Add(r, new(big.Rat).SetInt64(int64(switchPrice)))
	r.Add(r, big.NewRat(1, 2))
	return money.Micro(new(big.Int).Quo(r.Num(), r.Denom()).Int64())
}

// TestInitialBlock: a 60/6 bill type through the API, a call granted the longest billed
// length the balance pays, charged the block then steps.
func TestInitialBlock(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		s := seedCalls(t, e)
		e.fails(e.do(e.web, "addBillType", admin("bill_type", "b60", "step", "6", "first_step", "0")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "addBillType", admin("bill_type", "b60", "step", "6", "first_step", "86401")), apierr.InvalidArgument, 400)
		e.ok(e.do(e.web, "addBillType", admin("bill_type", "b60", "step", "6", "first_step", "60")))
		e.ok(e.do(e.web, "addBillType", admin("bill_type", "plain", "step", "10")))
		if bt := e.ok(e.do(e.web, "getBillType", admin("bill_type", "plain"))); field(bt, "first_step") != "10" {
			t.Fatalf("first_step not given follows step: %s", bt.Body)
		}
		e.ok(e.do(e.web, "updateBillType", admin("bill_type", "plain", "step", "30")))
		if bt := e.ok(e.do(e.web, "getBillType", admin("bill_type", "plain"))); field(bt, "first_step") != "30" {
			t.Fatalf("after the step moved: %s", bt.Body)
		}
		e.ok(e.do(e.web, "updateBillType", admin("bill_type", "plain", "first_step", "45")))
		e.ok(e.do(e.web, "updateBillType", admin("bill_type", "plain", "step", "5")))
		if bt := e.ok(e.do(e.web, "getBillType", admin("bill_type", "plain"))); field(bt, "first_step") != "45" || field(bt, "step") != "5" {
			t.Fatalf("a first_step given stays: %s", bt.Body)
		}
		if bts := objs(t, e.ok(e.do(e.web, "getBillTypes", admin()))); len(bts) != 4 || jstr(bts[0]["first_step"]) != "60" || jstr(bts[1]["first_step"]) != "1" {
			t.Fatalf("getBillTypes: %v", bts)
		}
		e.ok(e.do(e.web, "updateRates", admin("id", strconv.FormatInt(s.base.ID, 10), "bill_type", "b60")))

		// 1.55 EUR, Russia at 0.10/min + 0.05 switch: 1.50 buys 900 s, a billed length
		// (60 + 140·6); a 61 s call is billed 66 s.
		callUser(t, e, s, "alice", "10001", "1.55")
		a := e.ast("callPrepare", "10001", "destination", "74950000001", "uniqueid", "b1")
		if !strings.HasPrefix(a, "Allowed 900 ") {
			t.Fatalf("callPrepare: %q", a)
		}
		if _, _, held := balanceOf(t, e.s.DB, "alice"); held != blockCharge(100_000, 50_000, 0, 60, 6, 900) || held != 1_550_000 {
			t.Fatalf("reserved %s", held)
		}
		for _, c := range []struct{ uid, length string }{{"b1", "61"}, {"b2", "1"}, {"b3", "0"}, {"b4", "126.5"}} {
			if c.uid != "b1" {
				e.ast("callPrepare", "10001", "destination", "74950000001", "uniqueid", c.uid)
			}
			before, _, _ := balanceOf(t, e.s.DB, "alice")
			a = e.ast("callFinish", "10001", "destination", "74950000001", "length", c.length, "uniqueid", c.uid)
			if !strings.HasPrefix(a, "Saved ") {
				t.Fatalf("callFinish: %q", a)
			}
			secs, _ := strconv.ParseFloat(c.length, 64)
			want := blockCharge(100_000, 50_000, 0, 60, 6, int(secs+0.999))
			if after, led, _ := balanceOf(t, e.s.DB, "alice"); before-after != want || led != after {
				t.Fatalf("call of %s s charged %s, want %s (ledger %s)", c.length, before-after, want, led)
			}
		}
		// Not even the block: declined.
		callUser(t, e, s, "bob", "10002", "0.14")
		if a := e.ast("callPrepare", "10001", "destination", "74950000001"); !strings.HasPrefix(a, "Allowed ") {
			t.Fatalf("alice: %q", a)
		}
		if a := e.ast("callPrepare", "10002", "destination", "74950000001"); a != "Declined E_INSUFFICIENT_MONEY" {
			t.Fatalf("0.14 cannot buy a 60 s block at 0.10 + 0.05: %q", a)
		}
	})
}
