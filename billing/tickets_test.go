package billing

import (
	"fmt"
	"testing"

	"github.com/narayana/narayanad/apierr"
)

// ticketList is a getTickets or getTicket answer as a list of objects.
func ticketList(a answer) []map[string]any {
	list, _ := a.Response.([]any)
	out := make([]map[string]any, len(list))
	for i, x := range list {
		out[i] = x.(map[string]any)
	}
	return out
}

func tstr(v any) string { return fmt.Sprint(v) }

func TestTickets(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.register(admin(), "sysadm", 33)
		e.register(admin(), "corp", 22)
		e.register(user("corp"), "cust", 11)
		e.register(user("corp"), "clerk", 11)
		e.register(admin(), "other", 11)
		unread := func(name string) string {
			return tstr(e.ok(e.do(e.web, "getUnreadTickets", user(name))).Response)
		}

		// A new ticket to support goes to the customer's manager.
		n := tstr(e.ok(e.do(e.web, "createTicket", user("cust", "destination", "support", "subject", "Help",
			"message", "Phone is not ringing!"))).Response)
		if unread("corp") != "1" || unread("cust") != "0" {
			t.Fatalf("unread after createTicket: corp %s, cust %s", unread("corp"), unread("cust"))
		}
		if v := field(e.ok(e.do(e.web, "getInfo", user("corp"))), "unread_tickets"); v != "1" {
			t.Fatalf("getInfo unread_tickets: %s", v)
		}
		// No messages to strangers, nor to oneself; comments are for administrators.
		e.fails(e.do(e.web, "createTicket", user("cust", "destination", "other", "message", "hi")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "createTicket", user("cust", "destination", "nobody", "message", "hi")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "createTicket", user("cust", "destination", "cust", "message", "hi")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "createTicket", user("cust", "message", "hi", "comment", "x")), apierr.InsufficientAccess, 200)
		e.fails(e.do(e.web, "createTicket", user("cust", "subject", "x")), apierr.MissingArgument, 400)
		e.fails(e.do(e.web, "createTicket", user("cust", "message", "x", "ticket", "abc")), apierr.InvalidArgument, 400)
		// A user without a manager writes to the master administrator.
		m := tstr(e.ok(e.do(e.web, "createTicket", user("other", "message", "hello?"))).Response)
		if unread("admin") != "1" {
			t.Fatalf("admin's unread: %s", unread("admin"))
		}

		// The manager reads it (marking it read) and answers.
		list := ticketList(e.ok(e.do(e.web, "getTickets", user("corp"))))
		if len(list) != 1 || tstr(list[0]["ticket"]) != n || tstr(list[0]["status"]) != "1" || tstr(list[0]["unread"]) != "true" ||
			list[0]["sender"] != "cust" || list[0]["recipient"] != "corp" || list[0]["subject"] != "Help" {
			t.Fatalf("corp's tickets: %v", list)
		}
		msgs := ticketList(e.ok(e.do(e.web, "getTicket", user("corp", "ticket", n))))
		if len(msgs) != 1 || msgs[0]["type"] != "in" || msgs[0]["message"] != "Phone is not ringing!" || tstr(msgs[0]["status"]) != "1" {
			t.Fatalf("getTicket: %v", msgs)
		}
		if _, ok := msgs[0]["comment"]; ok {
			t.Fatalf("a corporate user sees the comment: %v", msgs[0])
		}
		if unread("corp") != "0" {
			t.Fatalf("corp's unread after reading: %s", unread("corp"))
		}
		if got := tstr(e.ok(e.do(e.web, "createTicket", user("corp", "ticket", n, "message", "Try rebooting"))).Response); got != n {
			t.Fatalf("reply answered ticket %s, want %s", got, n)
		}
		if unread("cust") != "1" {
			t.Fatalf("cust's unread after the reply: %s", unread("cust"))
		}
		msgs = ticketList(e.ok(e.do(e.web, "getTicket", user("cust", "ticket", n))))
		if len(msgs) != 2 || msgs[1]["type"] != "in" || msgs[1]["sender"] != "corp" || msgs[1]["subject"] != "Help" ||
			tstr(msgs[1]["reply"]) != tstr(msgs[0]["msgid"]) || msgs[0]["type"] != "out" {
			t.Fatalf("cust's view: %v", msgs)
		}

		// Outsiders neither see nor answer it; the administrator manages its opener.
		e.fails(e.do(e.web, "getTicket", user("other", "ticket", n)), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "createTicket", user("other", "ticket", n, "message", "me too")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "updateTicket", user("other", "ticket", n, "action", "close")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "getTicket", user("cust", "ticket", "999999")), apierr.NotExist, 200)
		if len(ticketList(e.ok(e.do(e.web, "getTickets", user("other"))))) != 1 {
			t.Fatal("other sees tickets not theirs")
		}
		e.ok(e.do(e.web, "createTicket", user("sysadm", "ticket", n, "message", "Escalated", "comment", "line fault")))
		msgs = ticketList(e.ok(e.do(e.web, "getTicket", user("sysadm", "ticket", n))))
		if len(msgs) != 3 || msgs[2]["recipient"] != "cust" || msgs[2]["comment"] != "line fault" {
			t.Fatalf("administrator's reply: %v", msgs)
		}
		if got := len(ticketList(e.ok(e.do(e.web, "getTickets", user("sysadm", "all", "true"))))); got != 2 {
			t.Fatalf("sysadm with all sees %d tickets", got)
		}
		if got := len(ticketList(e.ok(e.do(e.web, "getTickets", user("corp", "all", "true", "limit", "1"))))); got != 1 {
			t.Fatalf("limit 1 gave %d tickets", got)
		}
		e.fails(e.do(e.web, "getTickets", user("corp", "limit", "0")), apierr.InvalidArgument, 400)

		// Assign to the clerk, who then sees it; not to a stranger; not by a customer.
		e.fails(e.do(e.web, "updateTicket", user("corp", "ticket", n, "action", "assign", "assign_to", "other")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "updateTicket", user("cust", "ticket", n, "action", "assign", "assign_to", "corp")), apierr.InsufficientAccess, 200)
		e.fails(e.do(e.web, "updateTicket", user("corp", "ticket", n, "action", "assign", "assign_to", "ghost")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "updateTicket", user("corp", "ticket", n, "action", "reopen")), apierr.InvalidArgument, 400)
		e.ok(e.do(e.web, "addAlias", user("clerk", "alias", "1", "destination", "2"))) // clerk exists and logs in
		e.fails(e.do(e.web, "getTicket", user("clerk", "ticket", n)), apierr.DoesNotBelongToYou, 200)
		e.ok(e.do(e.web, "updateTicket", user("corp", "ticket", n, "action", "assign", "assign_to", "clerk, corp")))
		e.ok(e.do(e.web, "getTicket", user("clerk", "ticket", n)))
		if list := ticketList(e.ok(e.do(e.web, "getTickets", user("clerk")))); len(list) != 1 || list[0]["assigned"] != "clerk,corp" {
			t.Fatalf("clerk's tickets: %v", list)
		}
		e.ok(e.do(e.web, "updateTicket", user("corp", "ticket", n, "action", "assign", "assign_to", "")))
		e.fails(e.do(e.web, "getTicket", user("clerk", "ticket", n)), apierr.DoesNotBelongToYou, 200)

		// Close, mark unread (refused while closed), reopen by a reply.
		e.ok(e.do(e.web, "updateTicket", user("cust", "ticket", n, "action", "close")))
		if list := ticketList(e.ok(e.do(e.web, "getTickets", user("cust")))); tstr(list[0]["status"]) != "-1" {
			t.Fatalf("closed ticket: %v", list)
		}
		e.fails(e.do(e.web, "updateTicket", user("cust", "ticket", n, "action", "markunread")), apierr.DataAbort, 200)
		e.ok(e.do(e.web, "updateTicket", user("cust", "ticket", n)))
		e.ok(e.do(e.web, "updateTicket", user("cust", "ticket", n, "action", "mark_unread")))
		if unread("cust") != "1" {
			t.Fatalf("cust's unread after markunread: %s", unread("cust"))
		}
		e.ok(e.do(e.web, "updateTicket", user("cust", "ticket", n, "action", "close")))
		if unread("cust") != "0" {
			t.Fatalf("a closed ticket counts as unread")
		}
		e.ok(e.do(e.web, "createTicket", user("cust", "ticket", n, "message", "Still broken")))
		if list := ticketList(e.ok(e.do(e.web, "getTickets", user("corp")))); tstr(list[0]["status"]) != "1" || list[0]["recipient"] != "corp" {
			t.Fatalf("reopened ticket: %v", list)
		}

		// deleteMessage and deleteTicket (33): one message, one ticket, all of a user's.
		msgs = ticketList(e.ok(e.do(e.web, "getTicket", user("sysadm", "ticket", n))))
		e.fails(e.do(e.web, "deleteMessage", user("corp", "id", tstr(msgs[3]["msgid"]))), apierr.InsufficientAccess, 200)
		e.ok(e.do(e.web, "deleteMessage", user("sysadm", "id", tstr(msgs[3]["msgid"]))))
		e.fails(e.do(e.web, "deleteMessage", user("sysadm", "id", tstr(msgs[3]["msgid"]))), apierr.NotExist, 200)
		if got := len(ticketList(e.ok(e.do(e.web, "getTicket", user("cust", "ticket", n))))); got != 3 {
			t.Fatalf("%d messages after deleteMessage", got)
		}
		e.fails(e.do(e.web, "deleteTicket", user("sysadm")), apierr.MissingArgument, 400)
		e.ok(e.do(e.web, "deleteTicket", user("sysadm", "username", "cust")))
		e.fails(e.do(e.web, "getTicket", admin("ticket", n)), apierr.NotExist, 200)
		e.ok(e.do(e.web, "deleteTicket", admin("ticket", m)))
		if unread("admin") != "0" {
			t.Fatalf("admin's unread after deleteTicket: %s", unread("admin"))
		}
	})
}
