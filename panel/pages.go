package panel

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/narayana/narayanad/apierr"
)

// pages are the GET pages by path under /panel/.
func (p *Panel) pages() map[string]func(*sess) (*view, error) {
	return map[string]func(*sess) (*view, error){
		"home": p.home, "calls": p.calls, "sip": p.sip, "dids": p.dids, "didrules": p.didRules, "rates": p.rates,
		"topup": p.topup, "invoices": p.invoices, "tickets": p.tickets, "ticket": p.ticket, "news": p.news,
		"users": p.users, "user": p.user, "tariffs": p.tariffs, "routes": p.routes, "billtypes": p.billTypes,
		"pools": p.pools, "banktransfers": p.bankTransfers, "keys": p.keys, "bans": p.bans, "live": p.live, "stats": p.stats, "maintenance": p.maintenance,
	}
}

func (s *sess) q(name string) string { return strings.TrimSpace(s.r.URL.Query().Get(name)) }

func (s *sess) cur() string { return str(s.info["displaycurrency"]) }

// ---- the customer's pages ----

func (p *Panel) home(s *sess) (*view, error) {
	i := s.info
	curs, err := s.call("getCurrencies")
	if err != nil {
		return nil, err
	}
	var copts [][2]string
	for _, c := range toList(curs) {
		copts = append(copts, opt(str(c["currency"]), str(c["currency"])+" "+str(c["displayname"])))
	}
	if len(copts) == 0 { // an older answer shape: a map by code
		for code := range toMap(curs) {
			copts = append(copts, opt(code, code))
		}
	}
	back := Prefix + "home"
	return &view{Title: "Account", Blocks: []block{
		{ID: "account", Heading: "Balance", KV: [][2]string{
			{"Balance", money(i["displaybalance"], s.cur())},
			{"Credit (overdraft)", money(i["displayoverdraft"], s.cur())},
			{"Currency", str(i["currency"])},
			{"Account", str(i["account"])},
			{"SIP account", str(i["sip_extension"])},
			{"Tariff", str(i["rates"])},
			{"Language", str(i["language"])},
		}},
		{Heading: "Settings", Form: do("updateUser", back, "Save",
			choice("language", "Language", str(i["language"]), opt("english", "English"), opt("russian", "Русский")),
			choice("currency", "Currency", str(i["currency"]), copts...))},
		{Heading: "Password", Form: do("updateUserPassword", back, "Change password",
			field{Name: "new_password", Label: "New password", Type: "password", Required: true})},
	}}, nil
}

func (p *Panel) calls(s *sess) (*view, error) {
	from, to := s.q("from"), s.q("to")
	if from == "" {
		from = time.Now().UTC().AddDate(0, 0, -30).Format("2006-01-02")
	}
	if to == "" {
		to = time.Now().UTC().Format("2006-01-02")
	}
	offset := num(s.q("offset"))
	logs, err := s.call("getLogs", "from", from, "to", to, "limit", "50", "offset", itoa(offset))
	if err != nil {
		return nil, err
	}
	rows := toList(logs)
	t := &table{Cols: []string{"Date", "Destination", "Direction", "Seconds", "Cost", "Status"}}
	for _, r := range rows {
		t.Rows = append(t.Rows, []cell{{Text: str(r["clientdate"])}, {Text: str(r["destination"])}, {Text: str(r["direction"])},
			{Text: str(r["time"])}, {Text: money(r["displaycost"], str(r["displaycurrency"]))}, {Text: str(r["status"])}})
	}
	page := func(o int) string {
		return Prefix + "calls?" + url.Values{"from": {from}, "to": {to}, "offset": {itoa(o)}}.Encode()
	}
	if offset > 0 {
		t.Prev = page(max(0, offset-50))
	}
	if len(rows) == 50 {
		t.Next = page(offset + 50)
	}
	csv := Prefix + "calls.csv?" + url.Values{"from": {from}, "to": {to}}.Encode()
	return &view{Title: "Calls", Blocks: []block{
		{Form: &form{Action: Prefix + "calls", Method: "get", Submit: "Show",
			Fields: []field{date("from", "From", from), date("to", "To", to)}},
			Links: []link{{csv, "Download CSV"}}},
		{ID: "calls", Table: t},
	}}, nil
}

func (p *Panel) callsCSV(s *sess) (*view, error) {
	resp, err := s.raw("exportCalls", map[string]string{"from": s.q("from"), "to": s.q("to")})
	if err != nil {
		return nil, err
	}
	return s.download(resp, "calls.csv")
}

func (p *Panel) sip(s *sess) (*view, error) {
	exts, err := s.call("getExtensions")
	if err != nil {
		return nil, err
	}
	back := Prefix + "sip"
	t := &table{Cols: []string{"SIP account", "Server", "Caller ID", "Call limit, s", "Change"}}
	for _, e := range toList(exts) {
		ext := str(e["sip_extension"])
		upd := do("updateExtension", back, "Save",
			field{Name: "sip_callerid", Label: "Caller ID", Type: "text", Value: str(e["sip_callerid"])},
			field{Name: "sip_max_call_len", Label: "Call limit, s", Type: "number", Value: str(e["sip_max_call_len"])},
			field{Name: "sip_password", Label: "New password", Type: "text"})
		upd.Inline, upd.Hidden["sip_extension"] = true, ext
		t.Rows = append(t.Rows, []cell{{Text: ext}, {Text: str(e["sip_server"])}, {Text: str(e["sip_callerid"])},
			{Text: str(e["sip_max_call_len"])}, {Forms: []*form{upd}}})
	}
	return &view{Title: "SIP accounts", Blocks: []block{
		{ID: "sip", Table: t},
		{Heading: "New SIP account", Form: do("createExtension", back, "Create",
			text("sip_extension", "Number (empty: the next free)"), text("sip_password", "Password"),
			text("sip_callerid", "Caller ID"), text("sip_server", "SIP server"))},
	}}, nil
}

func (p *Panel) dids(s *sess) (*view, error) {
	list, err := s.call("getDIDList")
	if err != nil {
		return nil, err
	}
	back := Prefix + "dids"
	t := &table{Cols: []string{"Number", "Expires", "Cost", "Auto-renew", ""}}
	for _, d := range toList(list) {
		did := str(d["did"])
		t.Rows = append(t.Rows, []cell{{Text: did, Href: Prefix + "didrules?did=" + url.QueryEscape(did)}, {Text: str(d["expiration"])},
			{Text: str(d["displaycost"])}, {Text: str(d["autorenew"])}, {Forms: []*form{button("renewDID", back, "Renew", "did", did)}}})
	}
	return &view{Title: "Numbers", Blocks: []block{
		{ID: "dids", Table: t},
		{Heading: "Order a number", Form: do("orderDID", back, "Order", required("pool_id", "Pool"), required("did", "Number"))},
	}}, nil
}

func (p *Panel) didRules(s *sess) (*view, error) {
	did := s.q("did")
	rules, err := s.call("getDIDRules", "did", did)
	if err != nil {
		return nil, err
	}
	return &view{Title: "Routing rules of " + did, Blocks: []block{
		{Table: cols(toList(rules), "id", "policy", "source", "pattern", "action", "destination", "condition")},
		{Links: []link{{Prefix + "dids", "Back to numbers"}}},
	}}, nil
}

func (p *Panel) rates(s *sess) (*view, error) {
	id := s.q("id")
	if id == "" {
		id = str(s.info["rates"])
	}
	var blocks []block
	if id != "" && id != "0" {
		offset := num(s.q("offset"))
		term := s.q("search")
		rates, err := s.call("getRates", "id", id, "search", term, "limit", "50", "offset", itoa(offset))
		if err != nil {
			return nil, err
		}
		t := &table{Cols: []string{"Id", "Direction", "Price a minute"}}
		rows := toList(rates)
		for _, r := range rows {
			var prices []string
			for _, e := range toList(r["routing"]) {
				prices = append(prices, money(e["displaycost"], s.cur()))
			}
			if len(prices) > 1 {
				prices = prices[:1] // a customer pays the first route's price; failover does not change it
			}
			t.Rows = append(t.Rows, []cell{{Text: str(r["id"])}, {Text: str(r["direction"])}, {Text: strings.Join(prices, ", ")}})
		}
		page := func(o int) string {
			return Prefix + "rates?" + url.Values{"id": {id}, "search": {term}, "offset": {itoa(o)}}.Encode()
		}
		if offset > 0 {
			t.Prev = page(max(0, offset-50))
		}
		if len(rows) == 50 {
			t.Next = page(offset + 50)
		}
		blocks = append(blocks, block{Heading: "Tariff " + id,
			Search: &search{Action: Prefix + "rates", Target: "ratestable", Value: term, Placeholder: "Direction", Hidden: map[string]string{"id": id}}},
			block{ID: "ratestable", Table: t})
	}
	opts, err := s.call("getRatesList", "is_option", "true")
	if err == nil {
		back := Prefix + "rates"
		t := &table{Cols: []string{"Option", "Description", ""}}
		for _, o := range toList(opts) {
			oid := str(o["id"])
			t.Rows = append(t.Rows, []cell{{Text: str(o["name"])}, {Text: str(o["description"])}, {Forms: []*form{
				button("switchRates", back, "Turn on", "id", oid, "state", "true"),
				button("switchRates", back, "Turn off", "id", oid, "state", "false")}}})
		}
		blocks = append(blocks, block{Heading: "Tariff options", Table: t})
	}
	return &view{Title: "Rates", Blocks: blocks}, nil
}

func (p *Panel) topup(s *sess) (*view, error) {
	pm, err := s.call("getPaymentMethods")
	if err != nil {
		return nil, err
	}
	// getPaymentMethods answers each group as title → method name; the default is also in
	// its own group, so it is offered once, first.
	var methods [][2]string
	seen := map[string]bool{}
	for _, group := range []string{"default", "public", "private"} {
		g := toMap(toMap(pm)[group])
		titles := make([]string, 0, len(g))
		for title := range g {
			titles = append(titles, title)
		}
		sort.Strings(titles)
		for _, title := range titles {
			name := str(g[title])
			if name == "" || seen[name] {
				continue
			}
			seen[name] = true
			methods = append(methods, opt(name, title))
		}
	}
	back := Prefix + "topup"
	blocks := []block{}
	if len(methods) > 0 {
		blocks = append(blocks, block{ID: "pay", Heading: "Pay", Form: &form{Action: Prefix + "topup", Submit: "Create invoice",
			Hidden: map[string]string{}, Fields: []field{choice("payment_method", "Method", methods[0][0], methods...),
				{Name: "payment_amount", Label: "Amount", Type: "number", Required: true}}}})
	} else {
		blocks = append(blocks, block{Heading: "Pay", Text: "No payment method is configured."})
	}
	blocks = append(blocks, block{ID: "prepaid", Heading: "Prepaid code", Form: do("activatePrepaidCode", back, "Activate", required("code", "Code"))})
	return &view{Title: "Top up", Blocks: blocks}, nil
}

// topupPost creates the invoice and shows what createInvoice answers: for a bank transfer
// the amount to pay, the bank details, the reference and the PDF; for a payment page its
// link.
func (p *Panel) topupPost(s *sess) (*view, error) {
	resp, err := s.call("createInvoice", "payment_method", s.r.PostFormValue("payment_method"),
		"payment_amount", strings.TrimSpace(s.r.PostFormValue("payment_amount")))
	if err != nil {
		return nil, err
	}
	m := toMap(resp)
	id := str(m["invoice"])
	if id == "" {
		id = str(m["transaction"])
	}
	cur := str(m["currency"])
	details := [][2]string{{"Invoice", id}, {"To pay", money(m["pay_amount"], cur)},
		{"Credited when paid", money(s.r.PostFormValue("payment_amount"), s.cur())}}
	if v := str(m["comission"]); v != "" && v != "0" {
		details = append(details, [2]string{"Commission", v + " %"})
	}
	if v := str(m["vat"]); v != "" && v != "0" {
		details = append(details, [2]string{"VAT", v + " %"})
	}
	if v := str(m["bank_details"]); v != "" {
		details = append(details, [2]string{"Bank details", v})
	}
	if v := str(m["reference"]); v != "" {
		details = append(details, [2]string{"Payment reference", v})
	}
	b := block{ID: "invoice", KV: details, Text: str(m["msg"])}
	if str(m["pdf"]) != "" {
		b.Links = append(b.Links, link{Prefix + "invoice.pdf?id=" + url.QueryEscape(id), "Invoice (PDF)"})
	}
	if u := str(m["url"]); strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://") {
		b.Links = append(b.Links, link{u, "Go to the payment page"})
	}
	b.Links = append(b.Links, link{Prefix + "invoices", "All invoices"})
	return &view{Title: "Invoice " + id, Flash: "Done.", Blocks: []block{b}}, nil
}

// invoiceStatus names getInvoices' status numbers (billing.Invoice*).
func invoiceStatus(v any) string {
	switch str(v) {
	case "0":
		return "unpaid"
	case "1":
		return "paid"
	case "2":
		return "declined"
	case "3":
		return "expired"
	}
	return str(v)
}

func (p *Panel) invoices(s *sess) (*view, error) {
	list, err := s.call("getInvoices")
	if err != nil {
		return nil, err
	}
	t := &table{Cols: []string{"Invoice", "Date", "Amount", "Method", "Status", ""}}
	for _, i := range toList(list) {
		id := str(i["id"])
		t.Rows = append(t.Rows, []cell{{Text: id}, {Text: str(i["clientdate"])}, {Text: money(i["displayamount"], s.cur())},
			{Text: str(i["handler"])}, {Text: invoiceStatus(i["status"])}, {Text: "PDF", Href: Prefix + "invoice.pdf?id=" + url.QueryEscape(id)}})
	}
	return &view{Title: "Invoices", Blocks: []block{{ID: "invoices", Table: t}}}, nil
}

func (p *Panel) invoicePDF(s *sess) (*view, error) {
	resp, err := s.raw("viewInvoice", map[string]string{"id": s.q("id")})
	if err != nil {
		return nil, err
	}
	return s.download(resp, "invoice-"+url.PathEscape(s.q("id"))+".pdf")
}

func (p *Panel) tickets(s *sess) (*view, error) {
	list, err := s.call("getTickets")
	if err != nil {
		return nil, err
	}
	t := &table{Cols: []string{"Ticket", "Subject", "Status", "Updated"}}
	for _, tk := range toList(list) {
		id := str(tk["id"])
		t.Rows = append(t.Rows, []cell{{Text: "#" + id, Href: Prefix + "ticket?id=" + url.QueryEscape(id)}, {Text: str(tk["subject"])},
			{Text: str(tk["status"])}, {Text: str(tk["date"])}})
	}
	return &view{Title: "Tickets", Blocks: []block{
		{ID: "tickets", Table: t},
		{Heading: "New ticket", Form: do("createTicket", Prefix+"tickets", "Send", required("subject", "Subject"), required("message", "Message"))},
	}}, nil
}

func (p *Panel) ticket(s *sess) (*view, error) {
	id := s.q("id")
	msgs, err := s.call("getTicket", "ticket", id)
	if err != nil {
		return nil, err
	}
	back := Prefix + "ticket?id=" + url.QueryEscape(id)
	reply := do("createTicket", back, "Reply", required("message", "Message"))
	reply.Hidden["ticket"] = id
	list := toList(msgs)
	if len(list) == 0 {
		list = toList(toMap(msgs)["messages"])
	}
	return &view{Title: "Ticket #" + id, Blocks: []block{
		{Table: cols(list, "date", "sender", "subject", "message")},
		{Form: reply},
		{Form: button("updateTicket", back, "Close the ticket", "ticket", id, "action", "close")},
	}}, nil
}

func (p *Panel) news(s *sess) (*view, error) {
	list, err := s.call("getNews")
	if err != nil {
		return nil, err
	}
	return &view{Title: "News", Blocks: []block{{Table: cols(toList(list), "date", "title", "text")}}}, nil
}

// ---- the administrator's pages ----

func (p *Panel) users(s *sess) (*view, error) {
	offset, term := num(s.q("offset")), s.q("search")
	list, err := s.call("getUsers", "all", "true", "limit", "25", "offset", itoa(offset), "search", term)
	if err != nil {
		return nil, err
	}
	back := Prefix + "users?" + url.Values{"search": {term}, "offset": {itoa(offset)}}.Encode()
	t := &table{Cols: []string{"User", "Level", "Manager", "Balance", "Status", ""}}
	rows := toList(list)
	for _, u := range rows {
		name := str(u["username"])
		act := button("updateUser", back, "Lock", "username", name, "active", "-1")
		act.Danger = true
		if str(u["active"]) == "-1" {
			act = button("updateUser", back, "Unlock", "username", name, "active", "1")
		}
		t.Rows = append(t.Rows, []cell{{Text: name, Href: Prefix + "user?name=" + url.QueryEscape(name)}, {Text: str(u["accesslevel"])},
			{Text: str(u["manager"])}, {Text: money(u["displaybalance"], str(u["displaycurrency"]))}, {Text: str(u["active"])}, {Forms: []*form{act}}})
	}
	page := func(o int) string {
		return Prefix + "users?" + url.Values{"search": {term}, "offset": {itoa(o)}}.Encode()
	}
	if offset > 0 {
		t.Prev = page(max(0, offset-25))
	}
	if len(rows) == 25 {
		t.Next = page(offset + 25)
	}
	return &view{Title: "Users", Blocks: []block{
		{Search: &search{Action: Prefix + "users", Target: "userstable", Value: term, Placeholder: "Username"}},
		{ID: "userstable", Table: t},
		{Heading: "Transfer money", Form: do("transferMoney", back, "Transfer", required("destination", "To user"),
			field{Name: "amount", Label: "Amount", Type: "number", Required: true}, text("comment", "Comment"))},
		{Heading: "New user", Form: do("registerUserForm", back, "Register", required("user", "Username"),
			field{Name: "new_password", Label: "Password", Type: "password", Required: true},
			choice("accesslevel", "Level", "11", opt("11", "customer"), opt("22", "reseller"), opt("33", "administrator")),
			text("sip_server", "SIP server"), text("sip_extension", "SIP account"))},
	}}, nil
}

func (p *Panel) user(s *sess) (*view, error) {
	name := s.q("name")
	info, err := s.call("getInfo", "username", name)
	if err != nil {
		return nil, err
	}
	m := toMap(info)
	back := Prefix + "user?name=" + url.QueryEscape(name)
	upd := do("updateUser", back, "Save", text("rates", "Tariff id"), text("allowed_call_len", "Call limit, s"), text("comment", "Comment"))
	upd.Hidden["username"] = name
	return &view{Title: "User " + name, Blocks: []block{
		{KV: kv(m, "id", "username", "accesslevel", "manager", "active", "account", "balance", "displaybalance", "currency",
			"overdraft", "rates", "language", "sip_extension", "notify_email", "comment")},
		{Heading: "Change", Form: upd},
		{Heading: "SIP accounts", Table: cols(toList(m["sip_extensions"]), "sip_extension", "sip_server", "sip_callerid")},
	}}, nil
}

func (p *Panel) tariffs(s *sess) (*view, error) {
	list, err := s.call("getRatesList", "all", "true")
	if err != nil {
		return nil, err
	}
	routes, _ := s.call("getRoutes", "all", "true")
	var ropts [][2]string
	for _, r := range toList(routes) {
		ropts = append(ropts, opt(str(r["route"]), str(r["route"])))
	}
	back := Prefix + "tariffs"
	t := &table{Cols: []string{"Id", "Name", "Bill type", "Option", "Public", "Owner"}}
	var topts [][2]string
	for _, r := range toList(list) {
		id := str(r["id"])
		topts = append(topts, opt(id, id+" "+str(r["name"])))
		t.Rows = append(t.Rows, []cell{{Text: id, Href: Prefix + "rates?id=" + id}, {Text: str(r["name"])}, {Text: str(r["bill_type"])},
			{Text: str(r["is_option"])}, {Text: str(r["is_public"])}, {Text: str(r["owner"])}})
	}
	first := ""
	if len(topts) > 0 {
		first = topts[0][0]
	}
	deck := &form{Action: Prefix + "deck", Multipart: true, Submit: "Upload", Hidden: map[string]string{},
		Fields: []field{choice("rates", "Tariff", first, topts...), choice("route", "Route", "", ropts...),
			{Name: "deck", Label: "Deck (prefix;description;rate)", Type: "file", Required: true},
			{Name: "replace", Label: "Replace the route's prices", Type: "checkbox"}}}
	return &view{Title: "Tariffs", Blocks: []block{
		{ID: "tariffs", Table: t},
		{Heading: "New tariff", Form: do("addRates", back, "Add", required("name", "Name"),
			choice("bill_type", "Bill type", "by_second", opt("by_second", "by_second"), opt("byminute", "byminute")),
			field{Name: "is_option", Label: "Option", Type: "checkbox"}, field{Name: "is_public", Label: "Public", Type: "checkbox"})},
		{Heading: "Markup", Form: do("updateMarkup", back, "Apply", choice("rates", "Tariff", first, topts...),
			field{Name: "markup", Label: "Multiply prices by", Type: "text", Required: true, Value: "1.10"})},
		{Heading: "Copy my tariff into", Form: do("copyDirections", back, "Copy", choice("rates", "Tariff", first, topts...))},
		{ID: "deck", Heading: "Rate deck upload", Form: deck},
	}}, nil
}

// deck reads an uploaded rate deck and hands it to importDeck.
func (p *Panel) deck(s *sess) (*view, error) {
	f, _, err := s.r.FormFile("deck")
	if err != nil {
		return nil, apierr.New(apierr.MissingArgument, "choose a deck file")
	}
	defer f.Close()
	body, err := io.ReadAll(io.LimitReader(f, 32<<20))
	if err != nil {
		return nil, err
	}
	resp, err := s.call("importDeck", "rates", s.r.PostFormValue("rates"), "route", s.r.PostFormValue("route"),
		"deck", string(body), "replace", s.r.PostFormValue("replace"))
	if err != nil {
		return nil, err
	}
	m := toMap(resp)
	return &view{Title: "Rate deck applied", Flash: "Done.", Blocks: []block{
		{KV: kv(m, "rows", "directions", "new_directions")},
		{Links: []link{{Prefix + "rates?id=" + url.QueryEscape(s.r.PostFormValue("rates")), "Show the tariff"}, {Prefix + "tariffs", "Back to tariffs"}}},
	}}, nil
}

func (p *Panel) routes(s *sess) (*view, error) {
	list, err := s.call("getRoutes", "all", "true")
	if err != nil {
		return nil, err
	}
	return &view{Title: "Routes", Blocks: []block{
		{Table: cols(toList(list), "id", "route", "type", "prefix", "sip_server", "enabled", "owner")},
		{Heading: "New route", Form: do("addRoute", Prefix+"routes", "Add", required("route", "Name"),
			choice("type", "Type", "sip", opt("sip", "sip"), opt("sms", "sms")), text("prefix", "Dial prefix"), text("sip_server", "SIP server"))},
	}}, nil
}

func (p *Panel) billTypes(s *sess) (*view, error) {
	list, err := s.call("getBillTypes")
	if err != nil {
		return nil, err
	}
	return &view{Title: "Bill types", Blocks: []block{
		{Table: cols(toList(list), "type", "free_threshold", "first_step", "step")},
		{Heading: "New bill type", Form: do("addBillType", Prefix+"billtypes", "Add", required("bill_type", "Name"),
			field{Name: "step", Label: "Step, s", Type: "number", Required: true}, field{Name: "free_threshold", Label: "Free seconds", Type: "number"})},
	}}, nil
}

func (p *Panel) pools(s *sess) (*view, error) {
	pools, err := s.call("getDIDPools")
	if err != nil {
		return nil, err
	}
	dids, err := s.call("getDIDList", "own", "false")
	if err != nil {
		return nil, err
	}
	back := Prefix + "pools"
	return &view{Title: "DID pools", Blocks: []block{
		{Heading: "Pools", Table: cols(toList(pools), "id", "country", "area", "provider", "cost", "quantity")},
		{Heading: "New pool", Form: do("addDIDPool", back, "Add", required("country", "Country"), required("area", "Area"),
			field{Name: "cost", Label: "Monthly cost", Type: "number"})},
		{Heading: "Numbers", Table: cols(toList(dids), "did", "owner", "expiration", "cost", "pool_id")},
		{Heading: "New number", Form: do("addDID", back, "Add", required("did", "Number"), text("owner", "Owner"), text("pool_id", "Pool"),
			field{Name: "cost", Label: "Monthly cost", Type: "number"})},
	}}, nil
}

// bankTransfers lists the unpaid bank invoices of the users the administrator manages
// (getInvoices own=false: the handler decides whose), each with a button that confirms the
// transfer through payInvoice, and the last confirmed ones.
func (p *Panel) bankTransfers(s *sess) (*view, error) {
	unpaid, err := s.call("getInvoices", "own", "false", "bank", "true", "done", "false")
	if err != nil {
		return nil, err
	}
	paid, err := s.call("getInvoices", "own", "false", "bank", "true", "done", "true")
	if err != nil {
		return nil, err
	}
	back := Prefix + "banktransfers"
	t := &table{Cols: []string{"Invoice", "User", "Date", "Valid until", "Credit", "To pay", "Payment reference", "Status", ""}}
	for _, i := range toList(unpaid) {
		id := str(i["id"])
		create := toMap(toMap(i["txdata"])["create"])
		pay := do("payInvoice", back, "Mark paid", text("reference", "Bank transaction"))
		pay.Inline, pay.Hidden["invoice"] = true, id
		t.Rows = append(t.Rows, []cell{{Text: id, Href: Prefix + "invoice.pdf?id=" + url.QueryEscape(id)}, {Text: str(i["owner"])},
			{Text: str(i["clientdate"])}, {Text: str(i["clientvalidthru"])}, {Text: money(i["displayamount"], s.cur())},
			{Text: money(create["pay_amount"], str(create["currency"]))}, {Text: str(create["reference"])},
			{Text: invoiceStatus(i["status"])}, {Forms: []*form{pay}}})
	}
	done := &table{Cols: []string{"Invoice", "User", "Date", "Credit", "Confirmed by", "Bank transaction"}}
	for n, i := range toList(paid) {
		if n == 20 {
			break
		}
		tx := toMap(toMap(i["txdata"])["finish"]) // what payInvoice kept
		done.Rows = append(done.Rows, []cell{{Text: str(i["id"])}, {Text: str(i["owner"])}, {Text: str(i["clientdate"])},
			{Text: money(i["displayamount"], s.cur())}, {Text: str(tx["paid_by"])}, {Text: str(tx["reference"])}})
	}
	return &view{Title: "Bank transfers", Blocks: []block{
		{ID: "unpaid", Heading: "Waiting for the money", Text: "Find the invoice by the payment reference on the bank statement; " +
			"Mark paid credits the account once.", Table: t},
		{ID: "confirmed", Heading: "Confirmed", Table: done},
	}}, nil
}

func (p *Panel) keys(s *sess) (*view, error) {
	list, err := s.call("getKeys")
	if err != nil {
		return nil, err
	}
	back := Prefix + "keys"
	t := &table{Cols: []string{"Name", "Level", "Auth by", "Source", "Secret", "Enabled", ""}}
	for _, k := range toList(list) {
		secret := []rune(str(k["key"]))
		shown := string(secret[:min(4, len(secret)/2)]) + "…" // the panel shows a secret once, when it is made
		revoke := button("revokeKey", back, "Revoke", "name", str(k["name"]))
		revoke.Danger = true
		t.Rows = append(t.Rows, []cell{{Text: str(k["name"])}, {Text: str(k["accessLevel"])}, {Text: str(k["auth_by"])},
			{Text: str(k["source"])}, {Text: shown}, {Text: str(k["enabled"])}, {Forms: []*form{revoke}}})
	}
	return &view{Title: "Keys", Blocks: []block{
		{ID: "keys", Table: t},
		{ID: "newkey", Heading: "New Asterisk key", Text: "The name is the Asterisk's SIP realm (a server added with narayanad sip-server add); the secret is shown once.",
			Form: &form{Action: Prefix + "keys/new", Submit: "Create", Hidden: map[string]string{},
				Fields: []field{required("name", "Realm"), required("source", "Asterisk's address")}}},
	}}, nil
}

// newKey creates an Asterisk's key in one step and shows its secret this once.
func (p *Panel) newKey(s *sess) (*view, error) {
	var b [16]byte
	rand.Read(b[:])
	secret := hex.EncodeToString(b[:])
	name := s.r.PostFormValue("name")
	if _, err := s.call("addKey", "name", name, "source", s.r.PostFormValue("source"), "auth_by", "sip_extension",
		"accessLevel", "50", "apikey", secret); err != nil {
		return nil, err
	}
	return &view{Title: "Key " + name + " created", Flash: "Done.", Blocks: []block{
		{Heading: "Its secret", Text: "Copy it into the Asterisk's BILLING_KEY now: it is not shown again.", Secret: secret},
		{Links: []link{{Prefix + "keys", "Back to keys"}}},
	}}, nil
}

func (p *Panel) bans(s *sess) (*view, error) {
	list, err := s.call("getBans")
	if err != nil {
		return nil, err
	}
	back := Prefix + "bans"
	t := &table{Cols: []string{"Address", "Kind", "Reason", "Date", "Permanent", ""}}
	for _, b := range toList(list) {
		label := "Unban"
		if str(b["source"]) == "whitelist" {
			label = "Remove"
		}
		t.Rows = append(t.Rows, []cell{{Text: str(b["target"])}, {Text: str(b["source"])}, {Text: str(b["reason"])},
			{Text: str(b["date"])}, {Text: str(b["permanent"])}, {Forms: []*form{button("unbanIP", back, label, "id", str(b["id"]))}}})
	}
	wl := do("banIP", back, "Whitelist", required("target", "Address"), text("reason", "Reason"))
	wl.Hidden["source"] = "whitelist"
	return &view{Title: "Bans", Blocks: []block{
		{ID: "bans", Table: t},
		{Heading: "Whitelist an address", Form: wl},
	}}, nil
}

func (p *Panel) live(s *sess) (*view, error) {
	list, err := s.call("getActiveCalls")
	if err != nil {
		return nil, err
	}
	back := Prefix + "live"
	t := &table{Cols: []string{"Started", "User", "SIP account", "Destination", "Granted, s", "Reserved", ""}}
	for _, c := range toList(list) {
		hang := button("hangupCalls", back, "Hang up", "username", str(c["username"]))
		hang.Danger = true
		t.Rows = append(t.Rows, []cell{{Text: str(c["started"])}, {Text: str(c["username"])}, {Text: str(c["sip_extension"])},
			{Text: str(c["destination"])}, {Text: str(c["max_call_time"])}, {Text: money(c["displayreserved"], s.cur())}, {Forms: []*form{hang}}})
	}
	return &view{Title: "Live calls", Blocks: []block{{ID: "livecalls", Refresh: back, Table: t}}}, nil
}

func (p *Panel) maintenance(s *sess) (*view, error) {
	m, err := s.call("getMaintenance")
	if err != nil {
		return nil, err
	}
	mm := toMap(m)
	return &view{Title: "Maintenance", Blocks: []block{
		{Heading: "Periodic work", KV: kv(mm, "last_started", "last_finished", "ran_by", "running", "interval", "mail")},
		{Heading: "Last run", KV: kv(toMap(mm["report"]))},
		{ID: "outbox", Heading: "Mail outbox", KV: kv(toMap(mm["outbox"]), "queued", "failed", "sent")},
	}}, nil
}
