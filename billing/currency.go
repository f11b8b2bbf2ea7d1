package billing

import (
	"context"
	"strings"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/money"
)

// currencyMethods declares the methods whose handlers are in this file: the reference's
// "Interface functions".
func (s *Service) currencyMethods() []Method {
	return []Method{
		method("getCourse", 0, s.getCourse, "currency:string").
			Doc("get a currency's exchange rate and other data", "the currency's rate and data"),
		method("updateCurrency", 44, s.updateCurrency, "currency:string!", "eur_course:num",
			"displayname:string", "transfer_fee:money", "referral_reward:money").
			Doc("edit or add a currency: exchange rate, display name, fees (not in the reference)", "true"),
		method("getCurrencies", 0, s.getCurrencies).
			Doc("list the currencies", "the currencies"),
	}
}

// Currency is a row of the currencies table; EURCourse is units per 1 EUR (×1e6).
type Currency struct {
	Code           string      `db:"code" json:"currency"`
	DisplayName    string      `db:"displayname" json:"displayname"`
	EURCourse      money.Micro `db:"eur_course" json:"eur_course"`
	TransferFee    money.Micro `db:"transfer_fee" json:"transfer_fee"`
	ReferralReward money.Micro `db:"referral_reward" json:"referral_reward"`
}

func currency(ctx context.Context, q db.Queryer, code string) (*Currency, error) {
	var c Currency
	err := q.Get(ctx, &c, `SELECT code, displayname, eur_course, transfer_fee, referral_reward FROM currencies WHERE code = ?`,
		strings.ToUpper(code))
	if db.IsNotFound(err) {
		return nil, apierr.New(apierr.NotExist, "no currency %q", code)
	}
	return &c, err
}

// money converts between the system currency and a user's.
type exchange struct {
	system, user *Currency
}

func (s *Service) exchange(ctx context.Context, userCurrency string) (exchange, error) {
	sys, err := s.currency(ctx, s.Config.Currency)
	if err != nil {
		return exchange{}, err
	}
	u, err := s.currency(ctx, userCurrency)
	if err != nil {
		return exchange{}, err
	}
	return exchange{sys, u}, nil
}

// currency is a currency row through the directory cache (currencies change rarely and
// every change drops the cache).
func (s *Service) currency(ctx context.Context, code string) (*Currency, error) {
	v, err := s.Gate.Directory.Remember("currency\x00"+strings.ToUpper(code), func() (any, error) {
		return currency(ctx, s.DB.Q(), code)
	})
	if err != nil {
		return nil, err
	}
	return v.(*Currency), nil
}

// viewer is the user the answer is about (the `username` target, else the caller) and
// the exchange into their currency: display* fields are in that user's currency
// (DECISIONS §3, §4).
func (s *Service) viewer(r *Request) (*User, exchange, error) {
	u, err := r.User()
	if err != nil {
		return nil, exchange{}, err
	}
	x, err := s.exchange(r.ctx, u.Currency)
	return u, x, err
}

// display is an amount of the system currency shown in the user's, rounded to cents.
func (x exchange) display(m money.Micro) money.Micro {
	return money.Convert(m, x.system.EURCourse, x.user.EURCourse).Round(2)
}

// toSystem converts an amount given in the user's currency into the system currency.
func (x exchange) toSystem(m money.Micro) money.Micro {
	return money.Convert(m, x.user.EURCourse, x.system.EURCourse)
}

// fromSystem converts exactly (not rounded to cents) into the user's currency.
func (x exchange) fromSystem(m money.Micro) money.Micro {
	return money.Convert(m, x.system.EURCourse, x.user.EURCourse)
}

// getCurrencies lists the currencies.
func (s *Service) getCurrencies(r *Request) (any, error) {
	var out []Currency
	err := s.DB.Q().Select(r.ctx, &out, `SELECT code, displayname, eur_course, transfer_fee, referral_reward FROM currencies ORDER BY code`)
	list := make([]map[string]any, len(out))
	for i, c := range out {
		list[i] = map[string]any{"currency": c.Code, "displayname": c.DisplayName, "eur_course": c.EURCourse}
	}
	return list, err
}

// getCourse gets a currency's exchange rate and other data.
func (s *Service) getCourse(r *Request) (any, error) {
	code := r.Str("currency")
	if code == "" {
		code = s.Config.Currency
		if r.Caller.User != nil {
			if u, err := r.User(); err == nil {
				code = u.Currency
			}
		}
	}
	return currency(r.ctx, s.DB.Q(), code)
}

// currencyCode reports whether v has the form of a currency code: three capital letters (ISO 4217).
func currencyCode(v string) bool {
	if len(v) != 3 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 'A' || v[i] > 'Z' {
			return false
		}
	}
	return true
}

// maxCourse bounds an exchange rate: the weakest currencies trade at some 10^5 per EUR.
const maxCourse = 10_000_000 * money.One

// updateCurrency edits or adds a currency (not in the reference, which has no way to
// change exchange rates through the API; level 44: the master admin).
func (s *Service) updateCurrency(r *Request) (any, error) {
	raw := r.Str("currency")
	code := strings.ToUpper(raw)
	if len(code) != len(raw) || !currencyCode(code) { // the length guards ToUpper("ßa") == "SSA"
		return nil, apierr.New(apierr.InvalidArgument, "currency: want three letters A-Z (ISO 4217), not %q", r.Str("currency"))
	}
	if r.Has("eur_course") && r.Money("eur_course") > maxCourse {
		return nil, apierr.New(apierr.InvalidArgument, "eur_course: at most %s units per EUR", maxCourse.Format(0))
	}
	for _, name := range []string{"eur_course", "transfer_fee", "referral_reward"} {
		if r.Has(name) && r.Money(name) < 0 || name == "eur_course" && r.Has(name) && r.Money(name) == 0 {
			return nil, apierr.New(apierr.InvalidArgument, "%s must be positive", name)
		}
	}
	return nil, s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		old, err := currency(r.ctx, tx, code)
		if apierr.Code(err) == apierr.NotExist {
			if !r.Has("eur_course") {
				return apierr.New(apierr.MissingArgument, "eur_course is obligatory for a new currency")
			}
			old = &Currency{Code: code, DisplayName: code}
			if _, err := tx.Exec(r.ctx, `INSERT INTO currencies (code, displayname, eur_course) VALUES (?, ?, ?)`,
				code, code, r.Money("eur_course")); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		c := *old
		if r.Has("eur_course") {
			c.EURCourse = r.Money("eur_course")
		}
		if r.Has("displayname") {
			c.DisplayName = r.Str("displayname")
		}
		if r.Has("transfer_fee") {
			c.TransferFee = r.Money("transfer_fee")
		}
		if r.Has("referral_reward") {
			c.ReferralReward = r.Money("referral_reward")
		}
		_, err = tx.Exec(r.ctx, `UPDATE currencies SET displayname = ?, eur_course = ?, transfer_fee = ?, referral_reward = ? WHERE code = ?`,
			c.DisplayName, c.EURCourse, c.TransferFee, c.ReferralReward, code)
		return err
	})
}
