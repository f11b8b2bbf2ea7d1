package billing

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/narayana/narayanad/asterisk/amisim"
)

// scrape reads GET /metrics through the router from remote.
func (e *env) scrape(remote string) (int, string) {
	e.t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.RemoteAddr = net.JoinHostPort(remote, "40000")
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// sample finds the value of one series (name and labels as printed) in an exposition.
func sample(body, series string) (string, bool) {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v, true
		}
	}
	return "", false
}

func wantSample(t *testing.T, body, series, want string) {
	t.Helper()
	if got, ok := sample(body, series); !ok || got != want {
		t.Errorf("%s = %q (present %v), want %q", series, got, ok, want)
	}
}

func TestMetrics(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		amiEnv(t, e)
		s := seedCalls(t, e)
		callUser(t, e, s, "alice", "10001", "10")

		code, body := e.scrape("127.0.0.1")
		if code != 200 {
			t.Fatalf("GET /metrics: %d %s", code, body)
		}
		// The Go runtime's own, and the states read at the scrape; a labelled series
		// only once counted.
		for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "narayana_reservations_open 0",
			"narayana_bans 0", "narayana_group_commits_total", "narayana_rating_snapshot_age_seconds"} {
			if !strings.Contains(body, "\n"+name) {
				t.Errorf("no %s in\n%s", name, body)
			}
		}
		for _, absent := range []string{"narayana_calls_total{", "narayana_ami_up{"} {
			if strings.Contains(body, absent) {
				t.Errorf("%s before any event", absent)
			}
		}

		if a := e.ast("callPrepare", "10001", "destination", "79010000001", "uniqueid", "m1"); !strings.HasPrefix(a, "Allowed ") {
			t.Fatalf("prepare: %s", a)
		}
		if a := e.ast("callPrepare", "10001", "destination", "9990001", "uniqueid", "m2"); a != "Declined E_UNROUTABLE" {
			t.Fatalf("prepare: %s", a)
		}
		_, body = e.scrape("127.0.0.1")
		wantSample(t, body, "narayana_reservations_open", "1")
		if a := e.ast("callFinish", "10001", "destination", "79010000001", "uniqueid", "m1", "length", "30", "status", "ANSWER"); !strings.HasPrefix(a, "Saved ") {
			t.Fatalf("finish: %s", a)
		}
		// A call whose callFinish never comes: its reservation expires and the sweep
		// releases it.
		e.ast("callPrepare", "10001", "destination", "79010000001", "uniqueid", "m3")
		execSQL(t, e.s.DB, `UPDATE reservations SET expires_at = 1`)
		_, body = e.scrape("127.0.0.1")
		wantSample(t, body, "narayana_reservations_overdue", "1")
		if _, err := e.s.sweepReservations(context.Background(), e.s.DB.Q(), 0); err != nil {
			t.Fatal(err)
		}
		// A wrong password, a method nobody declared (its name is no label), a ban.
		e.fails(e.do(e.web, "getInfo", admin("password", md5hex("wrong"))), "E_AUTH_FAILED", 200)
		e.fails(e.do(e.web, "s3cretMethodName", admin()), "E_UNKNOWN_METHOD", 400)
		e.fails(e.doFrom("192.0.2.66", "not-a-key-0000", "getInfo", admin()), "E_UNAUTHORIZED", 401)
		// An AMI session that is up, and one that cannot be.
		sim := amisim.Start(t, amisim.Config{})
		e.amiServer("pbx7", "10.0.0.7", sim.Addr(), amisim.DefaultSecret)
		e.register(admin(), "corp", 22, "sip_server", "10.0.0.7", "sip_extension", "20000")
		e.ok(e.do(e.web, "asteriskRequest", admin("asterisk", "pbx7", "destination", "peers")))

		_, body = e.scrape("127.0.0.1")
		wantSample(t, body, `narayana_calls_total{result="allowed"}`, "2")
		wantSample(t, body, `narayana_calls_total{result="declined"}`, "1")
		wantSample(t, body, `narayana_calls_total{result="saved"}`, "1")
		wantSample(t, body, `narayana_calls_declined_total{reason="E_UNROUTABLE"}`, "1")
		wantSample(t, body, `narayana_api_requests_total{code="OK",method="callPrepare"}`, "3")
		wantSample(t, body, `narayana_api_requests_total{code="E_AUTH_FAILED",method="getInfo"}`, "1")
		wantSample(t, body, `narayana_api_requests_total{code="E_UNKNOWN_METHOD",method="unknown"}`, "1")
		wantSample(t, body, `narayana_api_requests_total{code="E_UNAUTHORIZED",method="getInfo"}`, "1")
		wantSample(t, body, `narayana_api_request_seconds_count{method="callFinish"}`, "1")
		wantSample(t, body, "narayana_reservations_open", "0")
		wantSample(t, body, "narayana_reservations_expired_total", "1")
		wantSample(t, body, "narayana_bans", "1")
		wantSample(t, body, "narayana_mail_outbox", "0") // mail is off: nothing queued
		wantSample(t, body, `narayana_ami_up{server="pbx7"}`, "1")
		// No login, extension, number, key or password in any label.
		for _, secret := range []string{"10001", "79010000001", "s3cretMethodName", "not-a-key", astKey, webKey, "alice", md5hex("adminpw"), "192.0.2.66"} {
			if strings.Contains(body, secret) {
				t.Errorf("the metrics show %q", secret)
			}
		}
		sim.Close()
		waitOK(t, func() bool {
			_, body = e.scrape("127.0.0.1")
			v, _ := sample(body, `narayana_ami_up{server="pbx7"}`)
			return v == "0"
		})

		// Other addresses only when metrics_source lets them.
		if code, _ := e.scrape("192.0.2.1"); code != http.StatusForbidden {
			t.Fatalf("from 192.0.2.1: %d", code)
		}
		if err := e.s.Config.Set("metrics_source", "192.0.2.0/24"); err != nil {
			t.Fatal(err)
		}
		if code, _ := e.scrape("192.0.2.1"); code != 200 {
			t.Fatalf("from 192.0.2.1 when allowed: %d", code)
		}
	})
}

// TestGrafanaDashboard: every metric the dashboard in contrib/ queries is one the daemon
// serves (a renamed metric would leave an empty panel).
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile("../contrib/grafana/narayanad.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	eachEnv(t, func(t *testing.T, e *env) {
		if t.Name() != "TestGrafanaDashboard/sqlite" {
			t.Skip("one database is enough")
		}
		for _, n := range e.s.metricNames() {
			served[n] = true
		}
	})
	name := regexp.MustCompile(`\b(narayana_[a-z_]+|go_[a-z_]+|process_[a-z_]+)`)
	count := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				count++
				base := m
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					if b, ok := strings.CutSuffix(m, suffix); ok && served[b] {
						base = b
					}
				}
				if !served[base] {
					t.Errorf("panel %q queries %s, which the daemon does not serve", p.Title, m)
				}
			}
		}
	}
	if count < 10 {
		t.Fatalf("only %d metric names in the dashboard", count)
	}
}

// metricNames lists the name of every metric family the service can serve, labelled
// series not yet counted included.
func (s *Service) metricNames() []string {
	ch := make(chan *prometheus.Desc)
	go func() {
		for _, c := range s.metrics.collectors {
			c.Describe(ch)
		}
		close(ch)
	}()
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	var names []string
	for d := range ch {
		if m := fq.FindStringSubmatch(d.String()); m != nil {
			names = append(names, m[1])
		}
	}
	return names
}

// BenchmarkMetrics is what the metrics add to one callPrepare: the request counter, the
// latency histogram and the call counter.
func BenchmarkMetrics(b *testing.B) {
	s := New(nil, testConfig(), nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.metrics.observe("callPrepare", "OK", 90*time.Microsecond)
			s.metrics.countCall("callPrepare", "Allowed 7200 74951234567 30001 Russia out1/ route1 -1 -1", nil)
		}
	})
}
