package billing

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
	"github.com/narayana/narayanad/money"
)

// Config holds the daemon's settings. Each is declared once in Options, which the
// configuration file, the environment and the docs all read.
type Config struct {
	Listen           string
	TLSListen        string
	TLSCert          string
	TLSKey           string
	PprofListen      string // net/http/pprof on its own address, for profiling; empty is off
	LogLevel         string
	PlainAnswer      []string // auth_by methods answered in plain text (api_plain_answer)
	CustomIdentities []string // extra auth_by methods (apicustomidentities)
	BanThreshold     int
	MaxCallTime      int // seconds
	Currency         string
	DefaultLanguage  string
	PasswordCost     int
	RegisterPerHour  int // registerRequest codes one address may create an hour
	CallbackContext  string
	ReservationGrace time.Duration
	ScriptsDir       string
	LuaTimeout       time.Duration
	LuaHTTPAllow     []string // hosts scripts may reach with narayana.http_*
	AsteriskTimeout  time.Duration
	AsteriskAllow    []string // operations asteriskRequest may run

	// reservation_window, seconds; 0: a call reserves its whole grant (windows.go).
	ReservationWindow int

	// The schedule, rates, mail and invoices (maintenance.go, rates.go, mail.go, postpaid.go).
	MaintenanceInterval time.Duration // 0: the daemon runs no schedule of its own
	RatesSource         string        // URL of an ECB eurofxref-daily.xml; empty: no fetching
	SMTPHost            string        // empty: mail is off
	SMTPPort            int
	SMTPTLS             string // none, starttls or tls
	SMTPUser            string
	SMTPPassword        string
	SMTPFrom            string
	SMTPCAFile          string // PEM certificates trusted for the SMTP server besides the system's
	OperatorName        string
	OperatorAddress     string
	OperatorTaxID       string
	OperatorBank        string
	VATPercent          money.Micro // percent, such as 20 or 7.5: charges include it
	InvoiceDueDays      int
	LogFormat           string      // text or json
	MetricsSource       keys.Source // who may read GET /metrics
	// Messages without Lua (docs/MESSAGING.md): the built-in Kannel carrier, SIP
	// messages and voice messages through AMI.
	KannelSendURL  string // smsbox's sendsms URL; empty: no built-in Kannel carrier
	KannelUser     string
	KannelPassword string
	KannelSMSC     string // smsc-id to send through; empty: Kannel routes
	KannelDLRURL   string // this daemon's API base (with a key) Kannel reports to
	KannelDLRMask  int
	SIPMessageTech string // pjsip or sip: MessageSend's To is <tech>:<extension>
	VoiceDir       string // where voice messages are written for Asterisk's Playback

	// Built-in payment methods (payments.go): bank transfer and Stripe Checkout.
	BankTitle           string
	BankCommission      money.Micro // percent added to what the payer pays
	BankVAT             money.Micro // percent of VAT added on top of amount and commission
	BankValidDays       int
	StripeSecretKey     string
	StripeWebhookSecret string
	StripeTitle         string
	StripeCommission    money.Micro
	StripeVAT           money.Micro
	StripeSuccessURL    string
	StripeCancelURL     string
	StripeAPIURL        string // empty: Stripe's own; tests point it at stripe-mock

	// Browser sessions and the web panel (sessions.go, panel/).
	SessionTTL        time.Duration // an access token's life
	SessionRefreshTTL time.Duration // a refresh token's life: a session unused this long ends
	PanelKey          string        // the client key the panel logs in through; empty: no panel

	// from says where each setting read over the defaults came from ("FILE:LINE" or the
	// environment variable), so that a check made later, against the database, can name it.
	from map[string]string
}

// Option is one setting: its name in the file, its default, what it means, and how it is
// read into a Config.
type Option struct {
	Name    string
	Default string
	Help    string
	Secret  bool
	set     func(c *Config, v string) error
}

func str(f func(c *Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *f(c) = v; return nil }
}

func list(f func(c *Config) *[]string) func(*Config, string) error {
	return func(c *Config, v string) error {
		var out []string
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		*f(c) = out
		return nil
	}
}

func integer(min, max int, f func(c *Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < min || n > max {
			return fmt.Errorf("want a whole number from %d to %d, got %q", min, max, v)
		}
		*f(c) = n
		return nil
	}
}

func duration(f func(c *Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d <= 0 {
			return fmt.Errorf("want a positive duration such as 1s or 500ms, got %q", v)
		}
		*f(c) = d
		return nil
	}
}

// durationOrOff reads a duration where 0 turns the thing off.
func durationOrOff(f func(c *Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		if strings.TrimSpace(v) == "0" {
			*f(c) = 0
			return nil
		}
		return duration(f)(c, v)
	}
}

// httpURL reads an http or https URL.
func httpURL(f func(c *Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if v != "" {
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("want an http or https URL, got %q", v)
			}
		}
		*f(c) = v
		return nil
	}
}

// percentSetting reads a percentage from 0 to 99.99 (decimals allowed) as micro-units.
func percentSetting(f func(c *Config) *money.Micro) func(*Config, string) error {
	return func(c *Config, v string) error {
		m, err := money.Parse(strings.TrimSpace(v))
		if err != nil || m < 0 || m >= 100*money.One {
			return fmt.Errorf("want a percentage from 0 to 99.99, got %q", v)
		}
		*f(c) = m
		return nil
	}
}

// Options lists every setting.
var Options = []Option{
	{Name: "listen", Default: "127.0.0.1:8080", Help: "HTTP listen address", set: str(func(c *Config) *string { return &c.Listen })},
	{Name: "tls_listen", Help: "HTTPS listen address (needs tls_cert and tls_key)", set: str(func(c *Config) *string { return &c.TLSListen })},
	{Name: "tls_cert", Help: "TLS certificate file (PEM)", set: str(func(c *Config) *string { return &c.TLSCert })},
	{Name: "tls_key", Help: "TLS private key file (PEM)", Secret: true, set: str(func(c *Config) *string { return &c.TLSKey })},
	{Name: "pprof_listen", Help: "address of a net/http/pprof listener for profiling (keep it on loopback); empty: off", set: str(func(c *Config) *string { return &c.PprofListen })},
	{Name: "log_level", Default: "info", Help: "debug, info, warn or error", set: func(c *Config, v string) error {
		switch v {
		case "debug", "info", "warn", "error":
			c.LogLevel = v
			return nil
		}
		return fmt.Errorf("want debug, info, warn or error, got %q", v)
	}},
	{Name: "log_format", Default: "text", Help: "text (key=value lines) or json (one JSON object a line)", set: func(c *Config, v string) error {
		switch v {
		case "text", "json":
			c.LogFormat = v
			return nil
		}
		return fmt.Errorf("want text or json, got %q", v)
	}},
	{Name: "metrics_source", Default: "127.0.0.1,::1", Help: "addresses that may read GET /metrics (Prometheus), as a key's source: addresses, CIDR, 10.0.*.*, or *", set: func(c *Config, v string) error {
		src, err := keys.ParseSource(v)
		if err != nil {
			return err
		}
		c.MetricsSource = src
		return nil
	}},
	{Name: "api_plain_answer", Default: "sip_extension,id", Help: "auth_by methods whose keys get plain-text answers", set: list(func(c *Config) *[]string { return &c.PlainAnswer })},
	{Name: "apicustomidentities", Help: "extra auth_by methods; such a key's default_user becomes a request variable", set: list(func(c *Config) *[]string { return &c.CustomIdentities })},
	{Name: "ban_threshold", Default: "1", Help: "requests with a bad key from one address before it is banned", set: integer(1, 1_000_000, func(c *Config) *int { return &c.BanThreshold })},
	{Name: "max_call_time", Default: "7200", Help: "longest call callPrepare grants, seconds", set: integer(1, 864_000, func(c *Config) *int { return &c.MaxCallTime })},
	{Name: "currency", Default: "EUR", Help: "system currency: balances and costs are kept in it; one of the currencies table (EUR, USD, RUB at first)", set: func(c *Config, v string) error {
		if !currencyCode(v) {
			return fmt.Errorf("want a currency code of three capital letters, got %q", v)
		}
		c.Currency = v
		return nil
	}},
	{Name: "default_language", Default: "english", Help: "language of users registered without one", set: str(func(c *Config) *string { return &c.DefaultLanguage })},
	{Name: "register_per_hour", Default: "20", Help: "invite codes one address may create with registerRequest an hour (0: no limit)", set: integer(0, 1_000_000, func(c *Config) *int { return &c.RegisterPerHour })},
	{Name: "password_cost", Default: "10", Help: "bcrypt cost of stored password hashes", set: integer(4, 31, func(c *Config) *int { return &c.PasswordCost })},
	{Name: "callback_context", Default: "callback", Help: "dialplan context createCallback originates into", set: str(func(c *Config) *string { return &c.CallbackContext })},
	{Name: "reservation_grace", Default: "5m", Help: "how long past its MaxCallTime an unsettled reservation is kept", set: duration(func(c *Config) *time.Duration { return &c.ReservationGrace })},
	{Name: "reservation_window", Default: "0", Help: "seconds of a call reserved at a time when the call can be cut through AMI (callPrepare got its channel and the SIP server has AMI); the daemon extends the reservation while the call lasts and hangs the channel up when the money is gone; 0: every call reserves its whole MaxCallTime", set: integer(0, 86_400, func(c *Config) *int { return &c.ReservationWindow })},
	{Name: "scripts_dir", Help: "folder of Lua extension scripts; empty runs none", set: str(func(c *Config) *string { return &c.ScriptsDir })},
	{Name: "lua_timeout", Default: "1s", Help: "time limit of one Lua call", set: duration(func(c *Config) *time.Duration { return &c.LuaTimeout })},
	{Name: "lua_http_allow", Help: "hosts Lua scripts may reach with narayana.http_get/http_post (api.example.com, *.example.com)", set: list(func(c *Config) *[]string { return &c.LuaHTTPAllow })},
	{Name: "asterisk_timeout", Default: "10s", Help: "time limit of one AMI action", set: duration(func(c *Config) *time.Duration { return &c.AsteriskTimeout })},
	{Name: "asterisk_allow", Default: "sipreload,dialplanreload,pjsipreload,channels,peers", Help: "operations asteriskRequest may run", set: list(func(c *Config) *[]string { return &c.AsteriskAllow })},
	{Name: "maintenance_interval", Default: "1h", Help: "how often the daemon runs the periodic work itself (DID renewals, invoice expiry, exchange rates, postpaid invoices, notifications); 0: never (cron runs `narayanad maintenance`)", set: durationOrOff(func(c *Config) *time.Duration { return &c.MaintenanceInterval })},
	{Name: "rates_source", Help: "URL of the European Central Bank's daily reference rates (eurofxref-daily.xml format) read by each maintenance run; empty: rates change only through updateCurrency", set: func(c *Config, v string) error {
		if v = strings.TrimSpace(v); v != "" && !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
			return fmt.Errorf("want an http:// or https:// URL, got %q", v)
		}
		c.RatesSource = v
		return nil
	}},
	{Name: "smtp_host", Help: "SMTP server that mail goes through; empty: nothing is mailed", set: str(func(c *Config) *string { return &c.SMTPHost })},
	{Name: "smtp_port", Default: "25", Help: "SMTP server port", set: integer(1, 65535, func(c *Config) *int { return &c.SMTPPort })},
	{Name: "smtp_tls", Default: "starttls", Help: "none, starttls (required, not opportunistic) or tls (implicit TLS, usually port 465)", set: func(c *Config, v string) error {
		switch v {
		case "none", "starttls", "tls":
			c.SMTPTLS = v
			return nil
		}
		return fmt.Errorf("want none, starttls or tls, got %q", v)
	}},
	{Name: "smtp_user", Help: "SMTP login (PLAIN or LOGIN over TLS); empty: no authentication", set: str(func(c *Config) *string { return &c.SMTPUser })},
	{Name: "smtp_password", Help: "SMTP password", Secret: true, set: str(func(c *Config) *string { return &c.SMTPPassword })},
	{Name: "smtp_from", Help: "sender address of the daemon's mail (needed with smtp_host)", set: str(func(c *Config) *string { return &c.SMTPFrom })},
	{Name: "smtp_ca_file", Help: "PEM file of certificates trusted for the SMTP server besides the system's (an internal CA)", set: str(func(c *Config) *string { return &c.SMTPCAFile })},
	{Name: "operator_name", Help: "the operator's legal name, printed on invoices", set: str(func(c *Config) *string { return &c.OperatorName })},
	{Name: "operator_address", Help: "the operator's address on invoices (\\n starts a new line)", set: str(func(c *Config) *string { return &c.OperatorAddress })},
	{Name: "operator_tax_id", Help: "the operator's tax id (VAT number, INN) on invoices", set: str(func(c *Config) *string { return &c.OperatorTaxID })},
	{Name: "operator_bank", Help: "the operator's bank details on invoices (\\n starts a new line)", set: str(func(c *Config) *string { return &c.OperatorBank })},
	{Name: "vat_percent", Default: "0", Help: "VAT rate in percent included in the charges; invoices show the VAT part of their total (0: no VAT line)", set: percentSetting(func(c *Config) *money.Micro { return &c.VATPercent })},
	{Name: "invoice_due_days", Default: "14", Help: "days a postpaid account has to pay its monthly invoice", set: integer(0, 365, func(c *Config) *int { return &c.InvoiceDueDays })},
	// Messages without Lua (docs/MESSAGING.md).
	{Name: "kannel_sendsms_url", Help: "Kannel smsbox's sendsms URL (http://127.0.0.1:13013/cgi-bin/sendsms); SMS routes whose prefix is `kannel` send through it; empty: off", set: httpURL(func(c *Config) *string { return &c.KannelSendURL })},
	{Name: "kannel_user", Help: "username of Kannel's sendsms-user", set: str(func(c *Config) *string { return &c.KannelUser })},
	{Name: "kannel_password", Help: "password of Kannel's sendsms-user", Secret: true, set: str(func(c *Config) *string { return &c.KannelPassword })},
	{Name: "kannel_smsc", Help: "Kannel smsc-id messages are sent through; empty: Kannel's own routing", set: str(func(c *Config) *string { return &c.KannelSMSC })},
	{Name: "kannel_dlr_url", Help: "this daemon's API as Kannel reaches it, with the key its reports use (http://127.0.0.1:8080/billing/api/2.2/KEY/); empty: no delivery reports", Secret: true, set: httpURL(func(c *Config) *string { return &c.KannelDLRURL })},
	{Name: "kannel_dlr_mask", Default: "31", Help: "Kannel dlr-mask: the reports asked for (1 delivered, 2 not delivered, 4 buffered, 8 accepted by the SMSC, 16 refused by the SMSC)", set: integer(0, 31, func(c *Config) *int { return &c.KannelDLRMask })},
	{Name: "sip_message_tech", Default: "pjsip", Help: "message technology sendSIPMessage's AMI MessageSend uses: pjsip (res_pjsip_messaging) or sip (chan_sip)", set: func(c *Config, v string) error {
		if v != "pjsip" && v != "sip" {
			return fmt.Errorf("want pjsip or sip, got %q", v)
		}
		c.SIPMessageTech = v
		return nil
	}},
	{Name: "voice_dir", Help: "folder voice messages are written to as 8 kHz WAV, at the same path on the Asterisk that plays them (routes whose prefix is `asterisk`); empty: off", set: str(func(c *Config) *string { return &c.VoiceDir })},
	{Name: "bank_title", Default: "Bank transfer", Help: "title of the built-in `bank` payment method, offered while operator_bank is set (docs/PAYMENTS.md)", set: str(func(c *Config) *string { return &c.BankTitle })},
	{Name: "bank_commission_percent", Default: "0", Help: "commission in percent of the amount that a bank-transfer payer pays on top", set: percentSetting(func(c *Config) *money.Micro { return &c.BankCommission })},
	{Name: "bank_vat_percent", Default: "0", Help: "VAT in percent added on top of a bank-transfer payment (amount plus commission); leave 0 when vat_percent already taxes the charges", set: percentSetting(func(c *Config) *money.Micro { return &c.BankVAT })},
	{Name: "bank_valid_days", Default: "14", Help: "days a bank-transfer invoice waits for the transfer before maintenance expires it", set: integer(1, 365, func(c *Config) *int { return &c.BankValidDays })},
	{Name: "stripe_secret_key", Help: "Stripe secret API key (sk_live_… or sk_test_…); set, the built-in `stripe` card method is offered (docs/PAYMENTS.md)", Secret: true, set: str(func(c *Config) *string { return &c.StripeSecretKey })},
	{Name: "stripe_webhook_secret", Help: "signing secret (whsec_…) of the Stripe webhook endpoint /billing/stripe/webhook", Secret: true, set: str(func(c *Config) *string { return &c.StripeWebhookSecret })},
	{Name: "stripe_title", Default: "Bank card", Help: "title of the built-in `stripe` payment method", set: str(func(c *Config) *string { return &c.StripeTitle })},
	{Name: "stripe_commission_percent", Default: "0", Help: "commission in percent of the amount that a card payer pays on top", set: percentSetting(func(c *Config) *money.Micro { return &c.StripeCommission })},
	{Name: "stripe_vat_percent", Default: "0", Help: "VAT in percent added on top of a card payment (amount plus commission); leave 0 when vat_percent already taxes the charges", set: percentSetting(func(c *Config) *money.Micro { return &c.StripeVAT })},
	{Name: "stripe_success_url", Help: "where Stripe Checkout sends the payer after paying (needed with stripe_secret_key); {INVOICE} is replaced by the invoice number, {CHECKOUT_SESSION_ID} by Stripe", set: httpURL(func(c *Config) *string { return &c.StripeSuccessURL })},
	{Name: "stripe_cancel_url", Help: "where Stripe Checkout sends a payer who gives up; empty: none", set: httpURL(func(c *Config) *string { return &c.StripeCancelURL })},
	{Name: "stripe_api_url", Help: "base URL of the Stripe API; empty: Stripe's own (a test points it at stripe-mock)", set: httpURL(func(c *Config) *string { return &c.StripeAPIURL })},
	// Browser sessions and the web panel (docs/PANEL.md).
	{Name: "session_ttl", Default: "15m", Help: "how long an access token from login lives (refreshToken buys a new one)", set: duration(func(c *Config) *time.Duration { return &c.SessionTTL })},
	{Name: "session_refresh_ttl", Default: "168h", Help: "how long a refresh token lives: a session not refreshed within it ends", set: duration(func(c *Config) *time.Duration { return &c.SessionRefreshTTL })},
	{Name: "panel_key", Default: "web", Help: "name of the client key (access level 0) the web panel at /panel/ logs users in through; empty: no panel", set: str(func(c *Config) *string { return &c.PanelKey })},
}

// DefaultConfig is the configuration with every option at its default.
func DefaultConfig() Config {
	var c Config
	for _, o := range Options {
		if err := o.set(&c, o.Default); err != nil && o.Default != "" {
			panic("billing: bad default for " + o.Name)
		}
	}
	return c
}

// Set sets one option by name; the error names the option.
func (c *Config) Set(name, value string) error {
	for _, o := range Options {
		if o.Name == name {
			if err := o.set(c, value); err != nil {
				return fmt.Errorf("setting %s: %v", name, err)
			}
			return nil
		}
	}
	return fmt.Errorf("unknown setting %q", name)
}

// ReadConfig reads `name = value` lines (# starts a comment) over c.
func (c *Config) ReadConfig(r io.Reader, file string) error {
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		name, value, ok := strings.Cut(t, "=")
		if !ok {
			return fmt.Errorf("%s:%d: want `name = value`", file, line)
		}
		name = strings.TrimSpace(name)
		if err := c.Set(name, strings.Trim(strings.TrimSpace(value), `"`)); err != nil {
			return fmt.Errorf("%s:%d: %v", file, line, err)
		}
		c.setFrom(name, fmt.Sprintf("%s:%d", file, line))
	}
	return sc.Err()
}

// LoadConfigFile reads the configuration file at path over c.
func (c *Config) LoadConfigFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return c.ReadConfig(f, path)
}

// EnvName is the environment variable that stands in for an option: NARAYANA_ and the
// name in upper case (NARAYANA_LISTEN, NARAYANA_MAX_CALL_TIME).
func EnvName(option string) string { return "NARAYANA_" + strings.ToUpper(option) }

// ReadEnv sets every option whose environment variable is set; errors name the variable.
func (c *Config) ReadEnv(lookup func(string) (string, bool)) error {
	for _, o := range Options {
		if v, ok := lookup(EnvName(o.Name)); ok && v != "" {
			if err := o.set(c, v); err != nil {
				return fmt.Errorf("%s: %v", EnvName(o.Name), err)
			}
			c.setFrom(o.Name, EnvName(o.Name))
		}
	}
	return nil
}

func (c *Config) setFrom(name, where string) {
	if c.from == nil {
		c.from = map[string]string{}
	}
	c.from[name] = where
}

// settingError names the setting and, when it was read from a file or the environment,
// where: "narayana.conf:3: setting currency: …".
func (c *Config) settingError(name, format string, a ...any) error {
	msg := "setting " + name + ": " + fmt.Sprintf(format, a...)
	if where := c.from[name]; where != "" {
		msg = where + ": " + msg
	}
	return errors.New(msg)
}

// SeededCurrencies are the currencies the first migration creates
// (sql/*/001_init.sql): all a database knows before anyone calls updateCurrency.
var SeededCurrencies = []string{"EUR", "RUB", "USD"}

// CheckCurrency checks that the system currency is one the database knows: a row of its
// currencies table or, for a database `init` is about to create, one of SeededCurrencies.
// Balances are kept in that currency, so an unknown one would break every rating.
func (c *Config) CheckCurrency(ctx context.Context, d *db.DB) error {
	v, err := d.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	known := SeededCurrencies
	if v > 0 {
		known = nil
		if err := d.Q().Select(ctx, &known, `SELECT code FROM currencies ORDER BY code`); err != nil {
			return err
		}
	}
	if slices.Contains(known, c.Currency) {
		return nil
	}
	return c.settingError("currency", "the database has no currency %s (it has %s); add it with updateCurrency first",
		c.Currency, strings.Join(known, ", "))
}

// Validate checks settings that depend on each other.
func (c *Config) Validate() error {
	if c.TLSListen != "" && (c.TLSCert == "" || c.TLSKey == "") {
		return c.settingError("tls_listen", "needs tls_cert and tls_key")
	}
	if c.SMTPHost != "" && c.SMTPFrom == "" {
		return c.settingError("smtp_host", "needs smtp_from, the sender address")
	}
	if c.StripeSecretKey != "" && (c.StripeWebhookSecret == "" || c.StripeSuccessURL == "") {
		return c.settingError("stripe_secret_key", "needs stripe_webhook_secret and stripe_success_url")
	}
	return nil
}
