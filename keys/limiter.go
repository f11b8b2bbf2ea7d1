package keys

import (
	"sync"
	"time"
)

// Limiter allows at most Max events per key within Window (a sliding window), for
// anonymous methods that write, such as registerRequest. Its zero value with Max set is
// ready; memory is bounded by starting over past maxLimiterKeys.
type Limiter struct {
	Max    int
	Window time.Duration

	mu     sync.Mutex
	events map[string][]time.Time
}

const maxLimiterKeys = 100_000

// Allow records an event for key and reports whether it is within the limit; an event
// over the limit is not recorded.
func (l *Limiter) Allow(key string, now time.Time) bool {
	if l.Max <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.events == nil || len(l.events) >= maxLimiterKeys {
		l.events = map[string][]time.Time{}
	}
	es := l.events[key]
	i := 0
	for i < len(es) && now.Sub(es[i]) >= l.Window {
		i++
	}
	es = es[i:]
	if len(es) >= l.Max {
		l.events[key] = es
		return false
	}
	l.events[key] = append(es, now)
	return true
}
