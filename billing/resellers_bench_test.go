package billing

import (
	"fmt"
	"testing"
)

// BenchmarkCallCycleReseller is BenchmarkCallCycle for users of a two-level reseller
// chain: the cost of charging and reserving at every level.
func BenchmarkCallCycleReseller(b *testing.B) {
	e, s := benchEnv(b)
	resellerChain(b, e, s, "100000000", "10000000")
	const users = 64
	for i := 0; i < users; i++ {
		resellerUser(b, e, s, fmt.Sprintf("u%d", i), fmt.Sprintf("%05d", 30000+i), "1000")
	}
	runCalls(b, e, users, "74951234567", "65", true)
}

// BenchmarkCallCyclePeriods is BenchmarkCallCycle with the direction priced by period
// (weekday peak and weekend, in Moscow time): the cost of per-segment pricing.
func BenchmarkCallCyclePeriods(b *testing.B) {
	e, s := benchEnv(b)
	rates := fmt.Sprint(s.base.ID)
	e.ok(e.do(e.web, "addRatePeriod", admin("rates", rates, "name", "peak", "days", "mon-fri", "start", "08:00",
		"end", "20:00", "timezone", "Europe/Moscow")))
	e.ok(e.do(e.web, "addRatePeriod", admin("rates", rates, "name", "weekend", "days", "sat,sun")))
	e.ok(e.do(e.web, "updateDirectionPeriod", admin("rates", rates, "direction", "1", "period", "peak", "cost", "0.2")))
	e.ok(e.do(e.web, "updateDirectionPeriod", admin("rates", rates, "direction", "1", "period", "weekend", "cost", "0.05")))
	const users = 64
	for i := 0; i < users; i++ {
		callUser(b, e, s, fmt.Sprintf("u%d", i), fmt.Sprintf("%05d", 30000+i), "1000000")
	}
	runCalls(b, e, users, "74951234567", "65", true)
}
