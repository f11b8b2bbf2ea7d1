package billing

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/db/dbtest"
)

// env is a daemon over a fresh database, driven through its real router.
type env struct {
	t   testing.TB
	s   *Service
	h   http.Handler
	web string // the client key made by Bootstrap
}

const (
	adminName = "admin"
	webKey    = "web-key-0123456789"
)

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Every test reads arguments strictly: a handler reading one its method does not
// declare panics (Request.arg).
func init() { strictArgs = true }

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.PasswordCost = 4 // bcrypt's minimum: tests make many users
	// The schedule runs when a test runs it (RunMaintenance), never behind its back.
	cfg.MaintenanceInterval = 0
	return cfg
}

func newEnv(t *testing.T, d *db.DB) *env {
	t.Helper()
	cfg := testConfig()
	if err := Bootstrap(context.Background(), d, cfg, adminName, md5hex("adminpw"), webKey); err != nil {
		t.Fatal(err)
	}
	s := New(d, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return &env{t: t, s: s, h: s.Handler(), web: webKey}
}

// eachEnv runs fn on SQLite and on PostgreSQL.
func eachEnv(t *testing.T, fn func(t *testing.T, e *env)) {
	dbtest.EachEmpty(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.t = t
		fn(t, e)
	})
}

// answer is a decoded envelope plus the HTTP status and raw body.
type answer struct {
	Status      int
	Result      bool
	Response    any
	Description string
	Body        string
}

// code is the response as a string (the E_* code of a failed call).
func (a answer) code() string { s, _ := a.Response.(string); return s }

// do sends a GET through the router from 127.0.0.1 and decodes the answer.
func (e *env) do(key, method string, params url.Values) answer {
	return e.doFrom("127.0.0.1", key, method, params)
}

func (e *env) doFrom(remote, key, method string, params url.Values) answer {
	e.t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/billing/api/2.2/"+key+"/"+method+"?"+params.Encode(), nil)
	req.RemoteAddr = net.JoinHostPort(remote, "40000")
	return e.serve(req)
}

func (e *env) serve(req *http.Request) answer {
	e.t.Helper()
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	a := answer{Status: rec.Code, Body: rec.Body.String()}
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		var env struct {
			Result      bool   `json:"result"`
			Response    any    `json:"response"`
			Description string `json:"description"`
		}
		dec := json.NewDecoder(strings.NewReader(a.Body))
		dec.UseNumber()
		if err := dec.Decode(&env); err != nil {
			e.t.Fatalf("%s: not an envelope: %q", req.URL, a.Body)
		}
		a.Result, a.Response, a.Description = env.Result, env.Response, env.Description
	} else {
		// A plain answer: the response alone; structured results are JSON text.
		a.Response = a.Body
		a.Result = !strings.HasPrefix(a.Body, "E_") && a.Body != "false"
		var v any
		dec := json.NewDecoder(strings.NewReader(a.Body))
		dec.UseNumber()
		if strings.HasPrefix(a.Body, "{") || strings.HasPrefix(a.Body, "[") {
			if dec.Decode(&v) == nil {
				a.Response = v
			}
		}
	}
	return a
}

// as returns params that log in as user with the client key (password md5 of pw).
func as(user, pw string, kv ...string) url.Values {
	v := url.Values{"login": {user}, "password": {md5hex(pw)}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

func admin(kv ...string) url.Values { return as(adminName, "adminpw", kv...) }

// updateUser changes a user's fields as the master admin would, through updateUser.
func (e *env) updateUser(name string, kv ...string) {
	e.t.Helper()
	e.ok(e.do(e.web, "updateUser", admin(append([]string{"username", name}, kv...)...)))
}

// ok fails the test unless the call succeeded.
func (e *env) ok(a answer) answer {
	e.t.Helper()
	if !a.Result || a.Status != 200 {
		e.t.Fatalf("call failed: %d %s", a.Status, a.Body)
	}
	return a
}

// fails checks a failed call's code and HTTP status.
func (e *env) fails(a answer, code string, status int) {
	e.t.Helper()
	if a.Result || a.code() != code || a.Status != status {
		e.t.Fatalf("want %s (%d), got %d %s", code, status, a.Status, a.Body)
	}
}

// register creates a user through the API as the admin (or as the given manager).
func (e *env) register(by url.Values, name string, level int, kv ...string) {
	e.t.Helper()
	p := url.Values{}
	for k, v := range by {
		p[k] = v
	}
	p.Set("user", name)
	p.Set("web_password", md5hex(name+"pw"))
	p.Set("accesslevel", itoa(level))
	for i := 0; i+1 < len(kv); i += 2 {
		p.Set(kv[i], kv[i+1])
	}
	e.ok(e.do(e.web, "registerUser", p))
}

// addKey creates an API key through addKey as the master admin, with the web client key:
// the way an operator makes one. kv are addKey's arguments.
func (e *env) addKey(kv ...string) {
	e.t.Helper()
	e.ok(e.do(e.web, "addKey", admin(kv...)))
}

func itoa(i int) string { return strconv.Itoa(i) }

// user logs in as a registered user (password name+"pw").
func user(name string, kv ...string) url.Values { return as(name, name+"pw", kv...) }

// field reads a field of an object response.
func field(a answer, name string) string {
	m, _ := a.Response.(map[string]any)
	switch v := m[name].(type) {
	case json.Number:
		return v.String()
	case string:
		return v
	case nil:
		return ""
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// samePool returns a function that opens another pool of connections to one fresh
// database of dialect each time it is called, as another daemon would.
func samePool(t *testing.T, dialect db.Dialect) func() *db.DB {
	dsn := dbtest.DSN(t, dialect)
	return func() *db.DB {
		d, err := db.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
}
