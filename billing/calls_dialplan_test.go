package billing

import (
	"fmt"
	"math/big"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/narayana/narayanad/money"
)

// The dialplan replay: contrib/asterisk/extensions.conf builds its callPrepare and
// callFinish requests from the PREPARE_URL and FINISH_URL templates. This test reads those
// templates, plays a day of synthetic traffic through the dialplan's logic (failover to
// prior 2 and 3 on CONGESTION/CHANUNAVAIL, the L() limit, the hangup handler's callFinish)
// and checks every answer and every balance against an independent model computed with
// big.Rat (ratCharge). The events move the service's clock through a Tuesday, and one user's
// tariff has a weekday peak: the model prices its calls second by second (modelRate.charge);
// another's UK calls go through an option with a bundle of 30 minutes, held and spent before
// money (modelUser.bundleLeft). Resellers stay out of this model: TestRatingMix covers them.

// dialplanTemplates reads the URL templates out of the dialplan.
func dialplanTemplates(t *testing.T) (prepare, finish string) {
	b, err := os.ReadFile("../contrib/asterisk/extensions.conf")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`Set\((PREPARE_URL|FINISH_URL)=(.*)\)\s*$`)
	for _, line := range strings.Split(string(b), "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			if m[1] == "PREPARE_URL" {
				prepare = m[2]
			} else {
				finish = m[2]
			}
		}
	}
	if prepare == "" || finish == "" {
		t.Fatal("the dialplan has no PREPARE_URL or FINISH_URL template")
	}
	return prepare, finish
}

var dialplanVar = regexp.MustCompile(`\$\{URIENCODE\(\$\{([A-Z_]+)\}\)\}|\$\{([A-Z_]+)\}`)

// uriEncode is Asterisk's URIENCODE: every byte outside RFC 3986's unreserved set as %XX.
func uriEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// expand substitutes channel variables the way Asterisk does for these templates.
func expand(t *testing.T, tmpl string, vars map[string]string) string {
	out := dialplanVar.ReplaceAllStringFunc(tmpl, func(m string) string {
		sm := dialplanVar.FindStringSubmatch(m)
		if sm[1] != "" {
			return uriEncode(vars[sm[1]])
		}
		v, ok := vars[sm[2]]
		if !ok {
			t.Fatalf("the template uses ${%s}, which the replay does not know", sm[2])
		}
		return v
	})
	if strings.Contains(out, "${") || strings.Contains(out, "$[") {
		t.Fatalf("unexpanded dialplan expression in %q", out)
	}
	return out
}

// modelUser is the independent model of one account.
type modelUser struct {
	name, ext, currency string
	balance, overdraft  money.Micro
	capSecs             int
	tariff              string // "base", "perminute", "block", "tod" or "bundle" (the extension's tariff)
	block, tod          callTariff
	held                map[string]money.Micro
	quota, used         int            // "bundle": the month's quota of the UK option, in seconds
	holds               map[string]int // and the open calls' holds on it
}

// bundleLeft is what is left of the quota besides the holds of calls other than key.
func (m *modelUser) bundleLeft(key string) int {
	left := m.quota - m.used
	for k, h := range m.holds {
		if k != key {
			left -= h
		}
	}
	return max(0, left)
}

// modelRate is what the model expects for a destination: ok false is unroutable.
type modelRate struct {
	ok                      bool
	internal                bool
	bundle                  bool // through the UK option, whose bundle's quota goes first
	tariff                  callTariff
	cost                    money.Micro
	peak                    money.Micro // the cost per minute on weekdays 08:00-20:00 UTC, when not 0
	direction, prefix, name string
}

// charge is the model's price of a call of length seconds that began at start (Unix):
// ratCharge, or with a peak each billed second at the cost in force at that second.
func (r modelRate) charge(start int64, length int) money.Micro {
	if r.peak == 0 {
		return ratCharge(r.tariff, r.cost, length, false)
	}
	return r.charges(start, billedLen(r.tariff, length))[billedLen(r.tariff, length)]
}

// charges lists the charges of the billed lengths 0..n from start: the model computes one
// call's sums once (plain and slow otherwise).
func (r modelRate) charges(start int64, n int) []money.Micro {
	out := make([]money.Micro, n+1)
	sum := new(big.Rat) // currency units
	for i := 0; i < n; i++ {
		at := time.Unix(start+int64(i), 0).UTC()
		cost := r.cost
		if wd := at.Weekday(); wd != time.Saturday && wd != time.Sunday && at.Hour() >= 8 && at.Hour() < 20 {
			cost = r.peak
		}
		sum.Add(sum, new(big.Rat).SetFrac64(int64(cost)*int64(r.tariff.Multiplier), 60*1_000_000*1_000_000))
		c := new(big.Rat).Add(sum, new(big.Rat).SetFrac64(int64(r.tariff.SwitchPrice), 1_000_000))
		c.Mul(c, new(big.Rat).SetInt64(1_000_000))
		c.Add(c, big.NewRat(1, 2)) // half-up
		out[i+1] = money.Micro(new(big.Int).Quo(c.Num(), c.Denom()).Int64())
	}
	return out
}

// billedLen is the billed length of a call: the free threshold, the initial block, steps.
func billedLen(t callTariff, length int) int {
	first := t.First
	if first == 0 {
		first = t.Step
	}
	if length <= t.Free || length <= 0 {
		return 0
	}
	if length <= first {
		return first
	}
	return first + (length-first+t.Step-1)/t.Step*t.Step
}

func (m *modelUser) rate(s rtSeed, dest string, prior int, exts map[string]bool) modelRate {
	n := strings.NewReplacer(" ", "", "-", "").Replace(dest)
	if strings.HasPrefix(n, "+") {
		n = n[1:]
	} else {
		n = strings.TrimPrefix(n, "00")
	}
	r := modelRate{}
	route := func(t callTariff, cost money.Micro, dir, prefix, name string) modelRate {
		return modelRate{ok: true, tariff: t, cost: cost, direction: dir, prefix: prefix, name: name}
	}
	if m.tariff == "bundle" && strings.HasPrefix(n, "44") && !strings.HasPrefix(n, "4420") {
		if prior == 1 { // the option replaces the base tariff's entries for the UK
			r = route(s.option, 10_000, "UnitedKingdom", "out1/", "route1")
			r.bundle = true
		}
		return r
	}
	switch {
	case m.tariff == "block":
		if strings.HasPrefix(n, "79") && len(n) == 11 && prior == 1 {
			r = route(m.block, 200_000, "RussiaMobile", "out2/", "routetwo")
		}
	case m.tariff == "tod":
		if strings.HasPrefix(n, "79") && len(n) == 11 && prior == 1 {
			r = route(m.tod, 200_000, "RussiaMobile", "out2/", "routetwo")
			r.peak = 400_000
		}
	case m.tariff == "perminute":
		if strings.HasPrefix(n, "79") && len(n) == 11 && prior == 1 {
			r = route(s.perMinute, 200_000, "RussiaMobile", "out2/", "routetwo")
		}
	case strings.HasPrefix(n, "79") && len(n) == 11:
		switch prior {
		case 1:
			r = route(s.base, 200_000, "RussiaMobile", "out1/", "route1")
		case 2:
			r = route(s.base, 300_000, "RussiaMobile", "out2/", "routetwo")
		}
	case strings.HasPrefix(n, "4420"):
		if prior == 1 {
			r = route(s.base, 0, "London", "out1/", "route1")
		}
	case strings.HasPrefix(n, "44"):
		if prior == 1 {
			r = route(s.base, 50_000, "UnitedKingdom", "out2/", "routetwo")
		}
	case strings.HasPrefix(n, "7"):
		if prior == 1 {
			r = route(s.base, 100_000, "Russia", "out1/", "route1")
		}
	}
	if !r.ok && exts[n] {
		return modelRate{internal: true, direction: "Internal", name: "internal"}
	}
	return r
}

// maxTime is the model's MaxCallTime: the longest billed length (the initial block and
// then whole steps), up to the cap, whose charge fits in available.
func maxTime(r modelRate, start int64, available money.Micro, cap int) (int, bool) {
	if available < 0 {
		return 0, false
	}
	charge := func(secs int) money.Micro { return ratCharge(r.tariff, r.cost, secs, false) }
	if r.peak != 0 {
		sums := r.charges(start, billedLen(r.tariff, cap))
		charge = func(secs int) money.Micro { return sums[billedLen(r.tariff, secs)] }
	}
	if charge(cap) <= available {
		return cap, true
	}
	step, first := r.tariff.Step, r.tariff.First
	if first == 0 {
		first = step
	}
	for secs := (cap-first)/step*step + first; secs >= first; secs -= step { // down from the cap: the model is slow and plain
		if charge(secs) <= available {
			return secs, true
		}
	}
	return 0, false
}

type dialEvent struct {
	at   int
	seq  int
	call int
	end  bool
}

func TestDialplanReplay(t *testing.T) {
	calls := 2500
	if testing.Short() {
		calls = 300
	}
	prepTmpl, finTmpl := dialplanTemplates(t)
	eachEnv(t, func(t *testing.T, e *env) {
		s := seedCalls(t, e)
		users := []*modelUser{
			{name: "u1", ext: "20001", balance: 800 * money.One},
			{name: "u2", ext: "20002", balance: 300 * money.One, overdraft: 3 * money.One},
			{name: "u3", ext: "20003", balance: 600 * money.One, capSecs: 600},
			{name: "u4", ext: "20004", balance: money.One},
			{name: "u5", ext: "20005", balance: 700 * money.One, currency: "USD"},
			{name: "u6", ext: "20006", balance: 900 * money.One, tariff: "perminute"},
			{name: "u7", ext: "20007", balance: 40 * money.One, tariff: "block"}, // 60/6, runs dry
			{name: "u8", ext: "20008", balance: 400 * money.One, tariff: "tod"},  // 60/6 with a weekday peak
			{name: "u9", ext: "20009", balance: 3 * money.One, tariff: "bundle"}, // the UK option with 30 minutes a month
		}
		// The day is a Tuesday on the service's clock, which each event moves: u8's tariff
		// costs 0.40/min from 08:00 to 20:00 UTC on weekdays and 0.20 otherwise.
		day := time.Date(2030, 1, 15, 0, 0, 0, 0, time.UTC)
		cur := 0 // the current event's second of the day
		e.s.Now = func() time.Time { return day.Add(time.Duration(cur) * time.Second) }
		// An initial block: 60/6, ×1.0, switch 0.02, Russia Mobile 0.20 via route two.
		e.ok(e.do(e.web, "addBillType", admin("bill_type", "b60", "step", "6", "first_step", "60")))
		block := callTariff{BillType: "b60", Step: 6, First: 60, Multiplier: money.One, DIDMult: money.One, SwitchPrice: 20_000}
		block.ID = insertID(t, e.s.DB, `INSERT INTO rates (name, bill_type, switch_price) VALUES ('block', 'b60', 20000)`)
		execSQL(t, e.s.DB, `INSERT INTO rate_entries (rates_id, direction_id, priority, cost, route_id) VALUES (?, 2, 1, 200000, ?)`,
			block.ID, s.route2)
		execSQL(t, e.s.DB, `UPDATE rating_version SET version = version + 1`)
		e.s.ratingChanged(t.Context())
		e.ok(e.do(e.web, "addRates", admin("name", "tod", "bill_type", "b60", "switch_price", "0.02")))
		tod := callTariff{BillType: "b60", Step: 6, First: 60, Multiplier: money.One, DIDMult: money.One, SwitchPrice: 20_000}
		if err := e.s.DB.Q().Get(t.Context(), &tod.ID, `SELECT id FROM rates WHERE name = 'tod'`); err != nil {
			t.Fatal(err)
		}
		todID := strconv.FormatInt(tod.ID, 10)
		e.ok(e.do(e.web, "addDirection", admin("rates", todID, "direction", "2", "cost", "0.2", "route", strconv.FormatInt(s.route2, 10))))
		e.ok(e.do(e.web, "addRatePeriod", admin("rates", todID, "name", "peak", "days", "mon-fri", "start", "08:00", "end", "20:00")))
		e.ok(e.do(e.web, "updateDirectionPeriod", admin("rates", todID, "direction", "2", "period", "peak", "cost", "0.4")))
		exts := map[string]bool{}
		for _, u := range users {
			args := []string{}
			if u.currency != "" {
				args = append(args, "currency", u.currency)
			}
			callUser(t, e, s, u.name, u.ext, u.balance.String(), args...)
			exts[u.ext] = true
			u.held = map[string]money.Micro{}
			if u.currency == "" {
				u.currency = "EUR"
			}
			if u.tariff == "" {
				u.tariff = "base"
			}
			if u.overdraft > 0 {
				execSQL(t, e.s.DB, `UPDATE accounts SET overdraft = ? WHERE id = (SELECT account_id FROM users WHERE username = ?)`, u.overdraft, u.name)
			}
			if u.capSecs > 0 {
				execSQL(t, e.s.DB, `UPDATE extensions SET max_call_len = ? WHERE extension = ?`, u.capSecs, u.ext)
			} else {
				u.capSecs = 7200
			}
			if u.tariff == "perminute" {
				execSQL(t, e.s.DB, `UPDATE extensions SET rates_id = ? WHERE extension = ?`, s.perMinute.ID, u.ext)
			}
			if u.tariff == "bundle" {
				u.holds = map[string]int{}
				opt := strconv.FormatInt(s.option.ID, 10)
				e.ok(e.do(e.web, "updateRates", admin("id", opt, "is_public", "true")))
				e.ok(e.do(e.web, "setBundle", admin("rates", opt, "minutes", "30", "fee", "0.5")))
				e.ok(e.do(e.web, "switchRates", user(u.name, "id", opt, "state", "true")))
				if _, err := e.s.RunMaintenance(t.Context(), "test"); err != nil { // the month's fee and quota
					t.Fatal(err)
				}
				u.balance -= 500_000
				u.quota = 1800
			}
			if u.tariff == "tod" {
				u.tod = tod
				execSQL(t, e.s.DB, `UPDATE extensions SET rates_id = ? WHERE extension = ?`, tod.ID, u.ext)
			}
			if u.tariff == "block" {
				u.block = block
				execSQL(t, e.s.DB, `UPDATE extensions SET rates_id = ? WHERE extension = ?`, block.ID, u.ext)
			}
		}

		// A day of traffic.
		rnd := rand.New(rand.NewSource(42))
		dests := []func() string{
			func() string { return fmt.Sprintf("+79%09d", rnd.Intn(1e9)) },
			func() string { return fmt.Sprintf("79%09d", rnd.Intn(1e9)) },
			func() string { return fmt.Sprintf("00 7 495 %07d", rnd.Intn(1e7)) },
			func() string { return fmt.Sprintf("+44 20 %08d", rnd.Intn(1e8)) },
			func() string { return fmt.Sprintf("+44 1%08d", rnd.Intn(1e8)) },
			func() string { return users[rnd.Intn(len(users))].ext },
			func() string { return fmt.Sprintf("555%04d", rnd.Intn(1e4)) },
		}
		type call struct {
			u           *modelUser
			dest, uid   string
			start, ring int
			wantLen     int
			fail        [4]string // per prior: "" or CONGESTION/CHANUNAVAIL
			outcome     string    // ANSWER, NOANSWER, BUSY, CANCEL
			dup         bool
			prior, secs int
			open        bool
			rate        modelRate
		}
		cs := make([]*call, calls)
		var events []dialEvent
		for i := range cs {
			c := &call{u: users[rnd.Intn(len(users))], dest: dests[rnd.Intn(len(dests))](), start: rnd.Intn(86400),
				ring: 3 + rnd.Intn(25), wantLen: 1 + rnd.Intn(900), dup: rnd.Intn(50) == 0}
			if c.u.tariff == "bundle" && rnd.Intn(2) == 0 {
				c.dest = dests[4]() // the UK, in the bundle
			}
			if c.u.tariff == "tod" { // Russia Mobile, half of the calls started before the peak's start or end
				c.dest = dests[rnd.Intn(2)]()
				if rnd.Intn(2) == 0 {
					c.start = []int{8 * 3600, 20 * 3600}[rnd.Intn(2)] - rnd.Intn(900)
				}
			}
			c.uid = fmt.Sprintf("%d.%d", 1_700_000_000+c.start, i)
			for p := 1; p <= 3; p++ {
				switch rnd.Intn(8) {
				case 0:
					c.fail[p] = "CONGESTION"
				case 1:
					c.fail[p] = "CHANUNAVAIL"
				}
			}
			switch k := rnd.Intn(20); {
			case k < 13:
				c.outcome = "ANSWER"
				if k == 0 {
					c.wantLen = 0 // answered and hung up at once
				}
			case k < 16:
				c.outcome = "NOANSWER"
			case k < 18:
				c.outcome = "BUSY"
			default:
				c.outcome = "CANCEL"
			}
			cs[i] = c
			events = append(events, dialEvent{at: c.start, seq: 2 * i, call: i})
		}
		sort.Slice(events, func(i, j int) bool {
			return events[i].at < events[j].at || events[i].at == events[j].at && events[i].seq < events[j].seq
		})

		h := e.h
		get := func(tmpl string, vars map[string]string) string {
			u := expand(t, tmpl, vars)
			req := httptest.NewRequest(http.MethodGet, u, nil)
			req.RemoteAddr = "10.0.0.1:5060"
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 200 {
				t.Fatalf("%s: HTTP %d %s", u, rec.Code, rec.Body.String())
			}
			return rec.Body.String()
		}
		stats := map[string]int{}
		finish := func(c *call, length int, status string) {
			vars := map[string]string{"BILLING": "http://billing.test/billing/api/2.2", "BILLING_KEY": astKey, "EXT": c.u.ext,
				"BILLING_DEST": c.dest, "PRIOR": strconv.Itoa(c.prior), "LENGTH": strconv.Itoa(length), "STATUS": status, "UNIQUEID": c.uid}
			line := get(finTmpl, vars)
			key := c.uid + "/" + strconv.Itoa(c.prior)
			delete(c.u.held, key)
			var charge money.Micro
			if c.rate.ok {
				charge = c.rate.charge(day.Unix()+int64(cur-length), length) // the call began length ago
			}
			if c.rate.bundle {
				delete(c.u.holds, key)
				taken := min(length, c.u.bundleLeft(key))
				c.u.used += taken
				charge = ratCharge(c.rate.tariff, c.rate.cost, length-taken, false) // the rest, as a call of its own
				if taken > 0 {
					stats["quota seconds"] += taken
				}
			}
			if c.rate.peak != 0 && length > 0 {
				stats["priced by period"]++
				if from, to := (cur-length)%86400, (cur-length+billedLen(c.rate.tariff, length))%86400; from < 8*3600 && to > 8*3600 || from < 20*3600 && to > 20*3600 {
					stats["across the peak's start or end"]++
				}
			}
			c.u.balance -= charge
			f := fields(line)
			if len(f) != 9 || f[0] != "Saved" || f[1] != c.rate.direction || f[4] != "["+c.rate.name+"]" ||
				f[5] != strconv.Itoa(length) || f[7] != c.u.currency || f[8] != status {
				t.Fatalf("callFinish %s %v: %q", c.dest, vars, line)
			}
			if c.u.currency == "EUR" && f[6] != charge.Format(4) {
				t.Fatalf("callFinish cost %q, model %s", line, charge)
			}
			stats["finish"]++
			if c.dup { // Asterisk's CURL retried: same line, no charge
				if again := get(finTmpl, vars); again != line {
					t.Fatalf("repeated callFinish: %q then %q", line, again)
				}
				stats["repeat"]++
			}
		}
		// End events are inserted after the current one as calls get through (ring > 0),
		// so walk by index.
		for ei := 0; ei < len(events); ei++ {
			ev := events[ei]
			c := cs[ev.call]
			cur = ev.at
			if ev.end {
				if c.open {
					length := 0
					if c.outcome == "ANSWER" {
						length = min(c.wantLen, c.secs)
					}
					if length == 0 {
						stats["zero-length "+c.outcome]++
					}
					finish(c, length, c.outcome)
				}
				continue
			}
			for c.prior = 1; c.prior <= 3; c.prior++ {
				vars := map[string]string{"BILLING": "http://billing.test/billing/api/2.2", "BILLING_KEY": astKey, "EXT": c.u.ext,
					"BILLING_DEST": c.dest, "PRIOR": strconv.Itoa(c.prior), "UNIQUEID": c.uid}
				line := get(prepTmpl, vars)
				c.rate = c.u.rate(s, c.dest, c.prior, exts)
				var held money.Micro
				for _, v := range c.u.held {
					held += v
				}
				f := fields(line)
				switch {
				case !c.rate.ok && !c.rate.internal:
					if line != "Declined E_UNROUTABLE" {
						t.Fatalf("%s prior %d: %q, model: unroutable", c.dest, c.prior, line)
					}
					stats["unroutable"]++
				case c.rate.internal:
					if f[0] != "Allowed" || f[1] != strconv.Itoa(c.u.capSecs) || f[4] != "Internal" {
						t.Fatalf("internal %s: %q", c.dest, line)
					}
					c.secs = c.u.capSecs
				default:
					avail := c.u.balance + c.u.overdraft - held
					key := c.uid + "/" + strconv.Itoa(c.prior)
					left := 0
					if c.rate.bundle {
						left = c.u.bundleLeft(key)
					}
					secs, ok := maxTime(c.rate, day.Unix()+int64(cur), avail, c.u.capSecs)
					reserve := c.rate.charge(day.Unix()+int64(cur), secs)
					if left >= c.u.capSecs { // the quota alone covers the cap
						secs, ok, reserve = c.u.capSecs, true, 0
					} else if left > 0 { // the quota, then what the money buys past it
						m, mok := maxTime(c.rate, 0, avail, c.u.capSecs-left)
						secs, ok, reserve = left, true, 0
						if mok {
							secs, reserve = left+m, ratCharge(c.rate.tariff, c.rate.cost, m, false)
						}
					}
					if !ok {
						if line != "Declined E_INSUFFICIENT_MONEY" {
							t.Fatalf("%s %s: %q, model: no money (balance %s held %s)", c.u.name, c.dest, line, c.u.balance, held)
						}
						stats["nomoney"]++
						break
					}
					want := fmt.Sprintf("Allowed %d", secs)
					if !strings.HasPrefix(line, want+" ") || f[4] != c.rate.direction || f[5] != c.rate.prefix || f[6] != c.rate.name {
						t.Fatalf("%s %s prior %d: %q, model %q %s %s %s", c.u.name, c.dest, c.prior, line, want, c.rate.direction, c.rate.prefix, c.rate.name)
					}
					c.secs = secs
					c.u.held[key] = reserve
					if left > 0 {
						c.u.holds[key] = min(left, c.u.capSecs)
					}
				}
				if f[0] != "Allowed" {
					break
				}
				stats["allowed"]++
				c.open = true
				if c.fail[c.prior] != "" && !c.rate.internal { // the trunk failed: failover
					c.open = false
					finish(c, 0, c.fail[c.prior])
					stats["failover"]++
					continue
				}
				end := dialEvent{at: c.start + c.ring + c.wantLen, seq: 2*ev.call + 1, call: ev.call, end: true}
				// insert the end event in order after the current one
				i := sort.Search(len(events), func(i int) bool {
					return events[i].at > end.at || events[i].at == end.at && events[i].seq > end.seq
				})
				events = append(events, dialEvent{})
				copy(events[i+1:], events[i:])
				events[i] = end
				break
			}
		}
		for _, u := range users {
			bal, led, held := balanceOf(t, e.s.DB, u.name)
			if bal != u.balance || led != bal || held != 0 || len(u.held) != 0 {
				t.Fatalf("%s: balance %s ledger %s held %s; model %s (open %d)", u.name, bal, led, held, u.balance, len(u.held))
			}
		}
		var logged int
		if err := e.s.DB.Q().Get(t.Context(), &logged, `SELECT COUNT(*) FROM call_log`); err != nil || logged != stats["finish"] {
			t.Fatalf("call_log has %d records, %d callFinish answered (%v)", logged, stats["finish"], err)
		}
		t.Logf("%d calls: %v", calls, stats)
	})
}
