package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromium finds Debian's chromium (.ci/run installs it).
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium is not installed (apt-get install chromium; .ci/run does): the panel's browser test cannot run")
	return ""
}

// TestPanelInBrowser drives the web panel of the real binary over the demo database in a
// headless chromium: a customer logs in, tops up with a prepaid code and by bank transfer
// and downloads the calls CSV and the invoice; an administrator confirms the transfer,
// creates an Asterisk key and lifts a ban. Every page is
// checked for console errors, exceptions and browser log errors (a CSP violation, a
// missing file). UPDATE_SCREENSHOTS=1 rewrites docs/panel/*.png.
func TestPanelInBrowser(t *testing.T) {
	exe := chromium(t)
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	addr := freeAddr(t)
	dsn := "sqlite:" + filepath.Join(dir, "demo.db")
	if out, err := exec.Command(bin, "demo", "--db", dsn, "--listen", addr).CombinedOutput(); err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	// The bank method is offered while operator_bank is set; serve reads it from the environment.
	t.Setenv("NARAYANA_OPERATOR_BANK", `Narayana Test Bank\nIBAN DE89 3704 0044 0532 0130 00`)
	t.Setenv("NARAYANA_BANK_COMMISSION_PERCENT", "2")
	startServe(t, bin, "--db", dsn, "--listen", addr)
	base := "http://" + addr
	api := func(method string, kv ...string) any {
		t.Helper()
		q := url.Values{"login": {"admin"}, "password": {"21232f297a57a5a743894a0e4a801fc3"}}
		for i := 0; i+1 < len(kv); i += 2 {
			q.Set(kv[i], kv[i+1])
		}
		resp, err := http.Get(base + "/billing/api/2.2/demo0123456789key/" + method + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var env struct {
			Result   bool `json:"result"`
			Response any  `json:"response"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || !env.Result {
			t.Fatalf("%s: %v %v", method, err, env.Response)
		}
		return env.Response
	}
	ast := func(method string, kv ...string) string {
		q := url.Values{"login": {"10001"}}
		for i := 0; i+1 < len(kv); i += 2 {
			q.Set(kv[i], kv[i+1])
		}
		resp, err := http.Get(base + "/billing/api/2.2/demo-asterisk-key/" + method + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	// What the test needs beside the demo: a call of alice's, a prepaid code, a banned address.
	ast("callPrepare", "destination", "+79161234567", "uniqueid", "panel.1")
	if got := ast("callFinish", "destination", "+79161234567", "uniqueid", "panel.1", "length", "75", "status", "ANSWER"); !strings.HasPrefix(got, "Saved") {
		t.Fatalf("callFinish: %s", got)
	}
	code := fmt.Sprint(api("createPrepaidCode", "balance", "5"))
	api("banIP", "source", "api", "target", "192.0.2.77", "reason", "bad key")

	downloads := t.TempDir()
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), chromedp.ExecPath(exe), chromedp.Headless,
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-default-browser-check", true))
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTime := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTime()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 860)); err != nil {
		t.Fatalf("chromium does not start: %v", err)
	}

	// Everything the pages say on the console or in the browser's log, as it comes.
	var mu sync.Mutex
	var problems []string
	note := func(s string) { mu.Lock(); problems = append(problems, s); mu.Unlock() }
	watch := func(ctx context.Context) { // a tab's
		// One listener, set up before the tab is used (chromedp.Events called from several
		// goroutines on a tab not yet attached races inside chromedp). It runs in the tab's
		// read loop, so it only notes.
		if err := chromedp.Listen(ctx, func(ev any) {
			switch ev := ev.(type) {
			case *runtime.EventConsoleAPICalled:
				if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
					var args []string
					for _, a := range ev.Args {
						args = append(args, string(a.Value)+a.Description)
					}
					note("console." + string(ev.Type) + ": " + strings.Join(args, " "))
				}
			case *runtime.EventExceptionThrown:
				note("exception: " + ev.ExceptionDetails.Text)
			case *cdplog.EventEntryAdded:
				if ev.Entry.Level == cdplog.EntryLevelError {
					note("log: " + ev.Entry.Text + " " + ev.Entry.URL)
				}
			}
		}); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, cdplog.Enable, struct{}{})
			return err
		})); err != nil {
			t.Fatal(err)
		}
	}
	watch(ctx)
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: downloads, EventsEnabled: new(true)})
		return err
	})); err != nil {
		t.Fatal(err)
	}

	update := os.Getenv("UPDATE_SCREENSHOTS") != ""
	shot := func(name string) {
		t.Helper()
		if !update {
			return
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "panel", name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("%s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	doIn := func(ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			mu.Lock()
			defer mu.Unlock()
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("main")))
			t.Fatalf("%s: %v\nthe page: %s\nthe browser said:\n%s", what, err, html, strings.Join(problems, "\n"))
		}
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		doIn(ctx, what, steps...)
	}
	// download clicks a link and answers the file the browser saved.
	download := func(what, sel string) []byte {
		t.Helper()
		progress := chromedp.Events(ctx, browser.DownloadProgress) // subscribed before the click
		do(what, chromedp.Click(chromedp.CSS(sel)))
		for ev, err := range progress {
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if ev.State == browser.DownloadProgressStateCompleted {
				b, _ := os.ReadFile(filepath.Join(downloads, ev.GUID))
				return b
			}
			if ev.State == browser.DownloadProgressStateCanceled {
				t.Fatalf("%s: the download was cancelled", what)
			}
		}
		return nil
	}
	balanceOf := func(user string) string {
		t.Helper()
		return fmt.Sprint(api("getInfo", "username", user).(map[string]any)["displaybalance"])
	}
	visit := func(page, wait string) {
		t.Helper()
		do(page, chromedp.Navigate(base+"/panel/"+page), chromedp.WaitVisible(chromedp.CSS(wait)))
		if strings.Contains(text("main"), "E_") {
			t.Fatalf("%s shows an error: %s", page, text("main"))
		}
	}
	login := func(user, pw string) {
		t.Helper()
		do("login "+user, chromedp.Navigate(base+"/panel/login"), chromedp.WaitVisible(chromedp.CSS(`input[name=login]`)),
			chromedp.SendKeys(chromedp.CSS(`input[name=login]`), user), chromedp.SendKeys(chromedp.CSS(`input[name=password]`), pw),
			chromedp.Submit(chromedp.CSS(`input[name=password]`)), chromedp.WaitVisible(chromedp.CSS(`#balance`)))
	}

	// The customer.
	visit("login", `input[name=login]`)
	shot("login")
	login("alice", "alice")
	if got := text("#balance"); got != "19.84 €" {
		t.Fatalf("alice's balance after a 75 s call: %q", got)
	}
	shot("customer-account")
	visit("calls", "#calls")
	if !strings.Contains(text("#calls"), "79161234567") {
		t.Fatalf("the call is not listed: %s", text("#calls"))
	}
	shot("customer-calls")
	csv := download("download the CSV", `a[href^="/panel/calls.csv"]`)
	if lines := strings.Split(strings.TrimSpace(string(csv)), "\n"); len(lines) != 2 || !strings.Contains(lines[1], ",alice,10001,") {
		t.Fatalf("calls.csv: %q", csv)
	}
	for _, p := range []struct{ page, wait, shot string }{{"sip", "#sip", "customer-sip"}, {"dids", "#dids", ""},
		{"invoices", "#invoices", ""}, {"tickets", "#tickets", "customer-tickets"}, {"news", "main", ""}} {
		visit(p.page, p.wait)
		if p.shot != "" {
			shot(p.shot)
		}
	}
	// The rates' search narrows the table in place (htmx).
	visit("rates", "#ratestable")
	shot("customer-rates")
	do("search rates", chromedp.SendKeys(chromedp.CSS(`input[type=search]`), "mobile"),
		chromedp.Poll[chromedp.Void](`document.querySelectorAll('#ratestable tbody tr').length === 1 ? 'ok' : ''`))
	// A top-up: the prepaid code adds 5 €.
	visit("topup", "#prepaid")
	shot("customer-topup")
	do("activate the code", chromedp.SendKeys(chromedp.CSS(`#prepaid input[name=code]`), code),
		chromedp.Submit(chromedp.CSS(`#prepaid input[name=code]`)), chromedp.WaitVisible(chromedp.CSS(`.flash`)))
	if got := text("#balance"); got != "24.84 €" {
		t.Fatalf("balance after the top-up: %q", got)
	}
	// A top-up by bank transfer: the invoice shows the bank details, the reference and
	// what to pay with the 2 % commission; the account is credited when the money arrives.
	visit("topup", "#pay")
	do("bank top-up", chromedp.SetValue(chromedp.CSS(`#pay select[name=payment_method]`), "bank"),
		chromedp.SendKeys(chromedp.CSS(`#pay input[name=payment_amount]`), "10"),
		chromedp.Submit(chromedp.CSS(`#pay input[name=payment_amount]`)), chromedp.WaitVisible(chromedp.CSS(`#invoice`)))
	invoice := text(`#invoice dd`)
	for _, want := range []string{"Narayana Test Bank, IBAN DE89 3704 0044 0532 0130 00", "Invoice " + invoice, "10.20 EUR", "2 %", "10.00 €"} {
		if !strings.Contains(text("#invoice"), want) {
			t.Fatalf("the bank invoice lacks %q: %s", want, text("#invoice"))
		}
	}
	shot("customer-bank-invoice")
	if pdf := download("the invoice's PDF", `#invoice a[href^="/panel/invoice.pdf"]`); !strings.HasPrefix(string(pdf), "%PDF") {
		t.Fatalf("invoice.pdf: %.40q", pdf)
	}
	if got := balanceOf("alice"); got != "24.84" {
		t.Fatalf("balance before the transfer is confirmed: %s", got)
	}
	// Alice is no administrator: the gate answers the panel as it would answer her.
	do("users as alice", chromedp.Navigate(base+"/panel/users"), chromedp.WaitVisible(chromedp.CSS(`.error`)))
	if !strings.Contains(text(".error"), "E_INSUFFICIENT_ACCESS") {
		t.Fatalf("alice on the users page: %s", text(".error"))
	}
	mu.Lock() // the browser logs that refusal's status (403): expected, and the only one so far
	if len(problems) == 1 && strings.Contains(problems[0], "403") && strings.Contains(problems[0], "/panel/users") {
		problems = nil
	}
	mu.Unlock()
	do("logout", chromedp.Click(chromedp.CSS(`#logout`)), chromedp.WaitVisible(chromedp.CSS(`input[name=login]`)))

	// The administrator.
	login("admin", "admin")
	for _, p := range []struct{ page, wait, shot string }{{"users", "#userstable", "admin-users"}, {"tariffs", "#tariffs", "admin-tariffs"},
		{"routes", "main", "admin-routes"}, {"billtypes", "main", ""}, {"pools", "main", ""}, {"live", "#livecalls", "admin-live"},
		{"stats?user=alice", "#chartcalls svg rect", "admin-stats"}, {"maintenance", "#outbox", "admin-maintenance"}} {
		visit(p.page, p.wait)
		if p.shot != "" {
			shot(p.shot)
		}
	}
	// The administrator confirms alice's transfer. A second confirmation, from a tab opened
	// before the first, changes nothing.
	visit("banktransfers", "#unpaid")
	row := fmt.Sprintf(`//section[@id="unpaid"]//tr[td[1]/a[text()="%s"]]`, invoice)
	do("alice's invoice waits", chromedp.WaitVisible(chromedp.Search(row+`[td[2][text()="alice"]]//button`)))
	stale, cancelStale := chromedp.NewContext(ctx)
	defer cancelStale()
	watch(stale)
	doIn(stale, "the second tab", chromedp.Navigate(base+"/panel/banktransfers"), chromedp.WaitVisible(chromedp.Search(row+`//button`)))
	do("mark paid", chromedp.SendKeys(chromedp.Search(row+`//input[@name="reference"]`), "STMT 4711"))
	shot("admin-bank-transfers")
	do("mark paid", chromedp.Click(chromedp.Search(row+`//button`)), chromedp.WaitVisible(chromedp.CSS(`.flash`)))
	if got := text("#confirmed"); !strings.Contains(got, "alice") || !strings.Contains(got, "STMT 4711") {
		t.Fatalf("the confirmed transfers: %s", got)
	}
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#unpaid button').length`)); n != 0 {
		t.Fatalf("%d invoices still wait", n)
	}
	if got := balanceOf("alice"); got != "34.84" {
		t.Fatalf("alice's balance after the confirmation: %s", got)
	}
	doIn(stale, "mark paid again", chromedp.Click(chromedp.Search(row+`//button`)), chromedp.WaitVisible(chromedp.CSS(`.flash`)))
	if got := balanceOf("alice"); got != "34.84" {
		t.Fatalf("alice's balance after a second confirmation: %s", got)
	}
	cancelStale()
	// An Asterisk's key in one step, its secret shown once.
	visit("keys", "#newkey")
	shot("admin-keys")
	do("new key", chromedp.SendKeys(chromedp.CSS(`#newkey input[name=name]`), "pbx2"),
		chromedp.SendKeys(chromedp.CSS(`#newkey input[name=source]`), "127.0.0.1"),
		chromedp.Submit(chromedp.CSS(`#newkey input[name=source]`)), chromedp.WaitVisible(chromedp.CSS(`#secret`)))
	secret := text("#secret")
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(secret) {
		t.Fatalf("secret: %q", secret)
	}
	shot("admin-key-created")
	// The new key works at once, from the address it was made for.
	resp, err := http.Get(base + "/billing/api/2.2/" + secret + "/callPrepare?login=10001&destination=79161234567")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(b), "Allowed") {
		t.Fatalf("the new key's callPrepare: %s", b)
	}
	visit("keys", "#keys")
	if strings.Contains(text("#keys"), secret) {
		t.Fatal("the keys page shows the secret again")
	}
	// Lift the ban.
	visit("bans", "#bans")
	shot("admin-bans")
	do("unban", chromedp.Click(chromedp.Search(`//tr[td[text()="192.0.2.77"]]//button`)), chromedp.WaitVisible(chromedp.CSS(`.flash`)))
	if strings.Contains(text("#bans"), "192.0.2.77") {
		t.Fatal("the ban is still listed")
	}
	if bans, _ := json.Marshal(api("getBans")); strings.Contains(string(bans), "192.0.2.77") {
		t.Fatalf("the ban is still there: %s", bans)
	}
	// The same panel in Russian.
	visit("home", "#account")
	do("russian", chromedp.SetValue(chromedp.CSS(`select[name=language]`), "russian"),
		chromedp.Submit(chromedp.CSS(`select[name=language]`)), chromedp.WaitVisible(chromedp.CSS(`.flash`)))
	if got := text("h1"); got != "Счёт" {
		t.Fatalf("title in Russian: %q", got)
	}
	shot("admin-account-russian")

	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Fatalf("the pages reported:\n%s", strings.Join(problems, "\n"))
	}
}
