package billing

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/narayana/narayanad/apierr"
)

// newsIDs lists the ids of a getNews answer, sorted.
func newsIDs(a answer) string {
	list, _ := a.Response.([]any)
	var ids []string
	for _, x := range list {
		ids = append(ids, fmt.Sprint(x.(map[string]any)["id"]))
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}

func TestNews(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.register(admin(), "sysadm", 33)
		e.register(admin(), "corp", 22)
		e.register(user("corp"), "cust", 11, "language", "russian")

		e.ok(e.do(e.web, "addNews", admin("id", "public", "header", "Hello", "message", "hello world")))
		e.ok(e.do(e.web, "addNews", admin("id", "staff", "access", "22", "typ", "warning", "message", "for managers")))
		e.ok(e.do(e.web, "addNews", admin("id", "ru", "language", "russian", "access", "1", "message", "privet")))
		e.ok(e.do(e.web, "addNews", user("sysadm", "id", "personal", "user", "cust", "access", "1", "isbroadcast", "true",
			"broadcast", "Pay your bill", "typ", "error")))
		// Bad input.
		e.fails(e.do(e.web, "addNews", admin("id", "public")), apierr.DataAbort, 200)
		e.fails(e.do(e.web, "addNews", admin("header", "x")), apierr.MissingArgument, 400)
		e.fails(e.do(e.web, "addNews", admin("id", "bad id")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "addNews", admin("id", "t1", "typ", "fatal")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "addNews", admin("id", "t2", "access", "-1")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "addNews", admin("id", "t3", "access", "1.5")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "addNews", admin("id", "t4", "isbroadcast", "maybe")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "addNews", admin("id", "t5", "user", "nobody")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "addNews", user("corp", "id", "t6")), apierr.InsufficientAccess, 200)

		// Who reads what.
		for _, c := range []struct {
			who  url.Values
			want string
		}{
			{nil, "public"},
			{user("cust"), "personal,public,ru"},
			{user("cust", "broadcast", "true"), "personal"},
			{user("corp"), "public,staff"},
			{user("sysadm"), "public,staff"},
			{user("sysadm", "all", "true"), "personal,public,ru,staff"},
			{user("corp", "all", "true"), "public,ru,staff"},
		} {
			if got := newsIDs(e.ok(e.do(e.web, "getNews", c.who))); got != c.want {
				t.Errorf("getNews %v: %s, want %s", c.who.Get("login"), got, c.want)
			}
		}
		a := e.ok(e.do(e.web, "getNews", user("cust", "id", "personal")))
		if field(a, "broadcast") != "Pay your bill" || field(a, "author") != "sysadm" || field(a, "is_broadcast") != "1" ||
			field(a, "typ") != "error" || field(a, "date") == "" {
			t.Fatalf("getNews id: %s", a.Body)
		}
		e.fails(e.do(e.web, "getNews", user("corp", "id", "personal")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "getNews", url.Values{"id": {"staff"}}), apierr.NotExist, 200)
		// getInfo's broadcasts read the same table.
		info := e.ok(e.do(e.web, "getInfo", user("cust")))
		if !strings.Contains(field(info, "broadcasts"), "Pay your bill") {
			t.Fatalf("broadcasts: %s", field(info, "broadcasts"))
		}

		// updateNews changes only what is given and records the editor.
		e.ok(e.do(e.web, "updateNews", admin("id", "public", "message", "hello earth")))
		a = e.ok(e.do(e.web, "getNews", url.Values{"id": {"public"}}))
		if field(a, "message") != "hello earth" || field(a, "header") != "Hello" || field(a, "lastupdated_by") != "admin" {
			t.Fatalf("after updateNews: %s", a.Body)
		}
		e.ok(e.do(e.web, "updateNews", admin("id", "public", "access", "11")))
		if got := newsIDs(e.ok(e.do(e.web, "getNews", nil))); got != "" {
			t.Fatalf("anonymous after access 11: %s", got)
		}
		// An administrator (33) does not edit the master's news; the master edits theirs.
		e.fails(e.do(e.web, "updateNews", user("sysadm", "id", "public", "message", "x")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "deleteNews", user("sysadm", "id", "public")), apierr.DoesNotBelongToYou, 200)
		e.ok(e.do(e.web, "updateNews", admin("id", "personal", "typ", "success")))
		e.ok(e.do(e.web, "updateNews", user("sysadm", "id", "personal", "isbroadcast", "false")))
		e.fails(e.do(e.web, "updateNews", admin("id", "nosuch", "message", "x")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "updateNews", admin("id", "personal", "typ", "bad")), apierr.InvalidArgument, 400)
		if got := newsIDs(e.ok(e.do(e.web, "getNews", user("cust", "broadcast", "true")))); got != "" {
			t.Fatalf("broadcasts after isbroadcast=false: %s", got)
		}

		e.ok(e.do(e.web, "deleteNews", user("sysadm", "id", "personal")))
		e.fails(e.do(e.web, "deleteNews", admin("id", "personal")), apierr.NotExist, 200)
		if got := newsIDs(e.ok(e.do(e.web, "getNews", admin("all", "true")))); got != "public,ru,staff" {
			t.Fatalf("after deleteNews: %s", got)
		}
	})
}
