package billing

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/narayana/narayanad/apierr"
)

// Metrics (DECISIONS §8), served as GET /metrics in Prometheus's text format. Each
// Service has its own registry, so that tests running several services see only their own.
// Labels carry method names, answer codes, results, decline reasons and SIP server names:
// never a key, a login, a number or a password. A method not in the table is counted as
// "unknown", and a decline reason that is not one of the API's codes (a script may
// decline with any text) as "other", so no caller can grow the series without bound.
//
// The request counters cost the call path a map lookup under a read lock each; the gauges
// that count rows (open reservations, bans, the mail outbox) are read from the database
// when Prometheus scrapes, never on the call path.
type metrics struct {
	reg        *prometheus.Registry
	collectors []prometheus.Collector // what reg holds
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	calls      *prometheus.CounterVec
	declined   *prometheus.CounterVec
	expired    prometheus.Counter

	// byMethod caches each method's latency observer: WithLabelValues hashes the label
	// on every call, a sync.Map read of a string key is cheaper.
	byMethod sync.Map // method name → prometheus.Observer

}

// Latency buckets: the call path answers in about 0.1 ms on SQLite, so the default
// buckets (from 5 ms up) would put every call in the first one.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// knownCodes is the set of answer codes a label may carry.
var knownCodes = func() map[string]bool {
	m := map[string]bool{"OK": true}
	for _, c := range []string{apierr.IncorrectAPIVersion, apierr.UnknownMethod, apierr.UndefinedInstruction,
		apierr.InsufficientAccess, apierr.MissingArgument, apierr.InvalidArgument, apierr.LuaException,
		apierr.AuthFailed, apierr.EndlessLoop, apierr.Unauthorized, apierr.Forbidden, apierr.UserLocked,
		apierr.SQLError, apierr.NotExist, apierr.DoesNotBelongToYou, apierr.DataAbort, apierr.AsteriskQueryError,
		apierr.SIPServerNotExist, apierr.WrongExtension, apierr.TransactionsLimited, apierr.TransactionsLocked,
		apierr.AccountHasUsers, apierr.CantCreateAccount, apierr.CarrierError, apierr.DIDOrderFail,
		apierr.InitiateCallFail, apierr.InsufficientMoney, apierr.InvalidSMSFrom, apierr.InvalidSMSTo,
		apierr.CodeHasNoBalance, apierr.InviteLimitReached, apierr.MaximumPayment, apierr.MinimalPayment,
		apierr.MinimalStartPayment, apierr.TargetWhitelisted, apierr.TransactionFailed, apierr.TTSError,
		apierr.Unroutable, apierr.CantCreateExtension, apierr.CantDeleteExtension, apierr.AlreadyOnThisTariff,
		apierr.ContactReseller} {
		m[c] = true
	}
	return m
}()

func labelCode(code string) string {
	if knownCodes[code] {
		return code
	}
	return "other"
}

func newMetrics(s *Service) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "narayana_api_requests_total", Help: "API requests answered, by method and answer code (OK or the E_ code).",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "narayana_api_request_seconds", Help: "Time from a request's arrival to its answer, by method.",
			Buckets: latencyBuckets,
		}, []string{"method"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "narayana_calls_total", Help: "callPrepare answers Allowed and Declined, callFinish answers Saved.",
		}, []string{"result"}),
		declined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "narayana_calls_declined_total", Help: "Calls refused by callPrepare, by reason (the E_ code).",
		}, []string{"reason"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "narayana_reservations_expired_total", Help: "Reservations released unsettled after MaxCallTime and the grace period: calls whose callFinish never came.",
		}),
	}
	m.collectors = []prometheus.Collector{m.requests, m.latency, m.calls, m.declined, m.expired,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&stateCollector{s: s}}
	m.reg.MustRegister(m.collectors...)
	return m
}

// observe counts one answered HTTP request.
func (m *metrics) observe(method, code string, took time.Duration) {
	o, ok := m.byMethod.Load(method)
	if !ok {
		o, _ = m.byMethod.LoadOrStore(method, m.latency.WithLabelValues(method))
	}
	o.(prometheus.Observer).Observe(took.Seconds())
	m.requests.WithLabelValues(method, labelCode(code)).Inc()
}

// countCall counts what callPrepare and callFinish answered, whichever face asked.
func (m *metrics) countCall(method string, resp any, err error) {
	switch method {
	case "callPrepare":
		if err != nil {
			m.calls.WithLabelValues("declined").Inc()
			m.declined.WithLabelValues(labelCode(apierr.Code(err))).Inc()
			return
		}
		line, _ := resp.(string)
		if reason, ok := strings.CutPrefix(line, "Declined "); ok {
			m.calls.WithLabelValues("declined").Inc()
			m.declined.WithLabelValues(labelCode(reason)).Inc()
		} else if strings.HasPrefix(line, "Allowed ") {
			m.calls.WithLabelValues("allowed").Inc()
		}
	case "callFinish":
		if line, _ := resp.(string); err == nil && strings.HasPrefix(line, "Saved ") {
			m.calls.WithLabelValues("saved").Inc()
		}
	}
}

// serveMetrics answers GET /metrics to the addresses of the setting metrics_source.
func (s *Service) serveMetrics() http.Handler {
	h := promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{ErrorLog: nil})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.Config.MetricsSource.Allows(RemoteAddr(r)) {
			http.Error(w, "metrics are not served to this address (setting metrics_source)", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// stateCollector reads, at each scrape, what is a state rather than a count of events:
// rows in the database, AMI sessions, the rating snapshot's age, the group commits.
type stateCollector struct{ s *Service }

var (
	descReservations = prometheus.NewDesc("narayana_reservations_open", "Reservations of calls in progress (callPrepare answered, callFinish not yet).", nil, nil)
	descReservedOld  = prometheus.NewDesc("narayana_reservations_overdue", "Open reservations already past their expiry, waiting for the sweep.", nil, nil)
	descBans         = prometheus.NewDesc("narayana_bans", "Banned addresses (rows of the bans list, whitelist excluded).", nil, nil)
	descOutbox       = prometheus.NewDesc("narayana_mail_outbox", "Messages in the mail outbox waiting to be sent (queued or being retried).", nil, nil)
	descAMI          = prometheus.NewDesc("narayana_ami_up", "Whether the AMI session to a SIP server is up (1) or not (0); a server appears once the daemon first talks to it.", []string{"server"}, nil)
	descRatingAge    = prometheus.NewDesc("narayana_rating_snapshot_age_seconds", "Seconds since the in-memory rating snapshot was built.", nil, nil)
	descCommits      = prometheus.NewDesc("narayana_group_commits_total", "Group commits of the call path's writes (SQLite).", nil, nil)
	descCommitJobs   = prometheus.NewDesc("narayana_group_commit_jobs_total", "Transactions those group commits held: jobs/commits is the mean group size.", nil, nil)
	descScrapeErrors = prometheus.NewDesc("narayana_metrics_errors", "Database reads that failed during this scrape.", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descReservations, descReservedOld, descBans, descOutbox, descAMI,
		descRatingAge, descCommits, descCommitJobs, descScrapeErrors} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	failed := 0
	count := func(d *prometheus.Desc, query string, args ...any) {
		var n int64
		if err := s.DB.Q().Get(ctx, &n, query, args...); err != nil {
			s.Log.Warn("metrics: read failed", "metric", d.String(), "err", err)
			failed++
			return
		}
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(n))
	}
	count(descReservations, `SELECT COUNT(*) FROM reservations WHERE level = 0`) // a call, not its resellers' levels
	count(descReservedOld, `SELECT COUNT(*) FROM reservations WHERE level = 0 AND expires_at < ?`, time.Now().Unix())
	count(descBans, `SELECT COUNT(*) FROM bans WHERE source <> 'whitelist'`)
	count(descOutbox, `SELECT COUNT(*) FROM outbox WHERE status = ?`, outboxQueued)
	for name, up := range s.amiManager().Connected() {
		v := 0.0
		if up {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descAMI, prometheus.GaugeValue, v, name)
	}
	if at := s.rt.loaded.Load(); at != 0 {
		ch <- prometheus.MustNewConstMetric(descRatingAge, prometheus.GaugeValue, time.Since(time.Unix(0, at)).Seconds())
	}
	commits, jobs := s.DB.GroupCommits()
	ch <- prometheus.MustNewConstMetric(descCommits, prometheus.CounterValue, float64(commits))
	ch <- prometheus.MustNewConstMetric(descCommitJobs, prometheus.CounterValue, float64(jobs))
	ch <- prometheus.MustNewConstMetric(descScrapeErrors, prometheus.GaugeValue, float64(failed))
}
