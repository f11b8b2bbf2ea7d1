package billing

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/narayana/narayanad/money"
)

// ecbEnvelope is the European Central Bank's daily reference rates file
// (eurofxref-daily.xml): gesmes:Envelope / Cube / Cube time= / Cube currency= rate=.
// The rates are units of the currency per 1 EUR: what eur_course holds.
type ecbEnvelope struct {
	XMLName xml.Name `xml:"Envelope"`
	Days    []struct {
		Time  string `xml:"time,attr"`
		Rates []struct {
			Currency string `xml:"currency,attr"`
			Rate     string `xml:"rate,attr"`
		} `xml:"Cube"`
	} `xml:"Cube>Cube"`
}

// maxRatesFile bounds what a rates_source may answer (the real file is under 2 KB).
const maxRatesFile = 1 << 20

// parseECBRates reads an ECB daily file: the day and each currency's rate (EUR is 1).
func parseECBRates(r io.Reader) (string, map[string]money.Micro, error) {
	var env ecbEnvelope
	if err := xml.NewDecoder(io.LimitReader(r, maxRatesFile)).Decode(&env); err != nil {
		return "", nil, fmt.Errorf("not an ECB rates file: %w", err)
	}
	if len(env.Days) == 0 || len(env.Days[0].Rates) == 0 {
		return "", nil, fmt.Errorf("the file lists no rates")
	}
	day := env.Days[0]
	rates := map[string]money.Micro{"EUR": money.One}
	for _, c := range day.Rates {
		code := strings.ToUpper(strings.TrimSpace(c.Currency))
		rate, err := money.Parse(strings.TrimSpace(c.Rate))
		if !currencyCode(code) || err != nil || rate <= 0 {
			return "", nil, fmt.Errorf("bad rate %q for %q", c.Rate, c.Currency)
		}
		rates[code] = rate
	}
	return day.Time, rates, nil
}

// fetchRates sets eur_course of every currency in the currencies table that rates_source
// lists, and answers how many changed. Unset: nothing. A failed fetch or a file that does
// not parse changes nothing: the old rates stay, and the error (logged by the caller)
// says why. Currencies the table does not have are not added: the operator chooses them.
func (s *Service) fetchRates(ctx context.Context) (int, error) {
	src := s.Config.RatesSource
	if src == "" {
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("User-Agent", "narayanad")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("rates_source %s: %w (the old rates stay)", src, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("rates_source %s: HTTP %s (the old rates stay)", src, resp.Status)
	}
	day, rates, err := parseECBRates(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("rates_source %s: %w (the old rates stay)", src, err)
	}
	var known []Currency
	if err := s.DB.Q().Select(ctx, &known, `SELECT code, displayname, eur_course, transfer_fee, referral_reward FROM currencies`); err != nil {
		return 0, err
	}
	n := 0
	for _, c := range known {
		rate, ok := rates[c.Code]
		if !ok || rate == c.EURCourse {
			continue
		}
		if _, err := s.DB.Q().Exec(ctx, `UPDATE currencies SET eur_course = ? WHERE code = ?`, rate, c.Code); err != nil {
			return n, err
		}
		n++
	}
	if n > 0 {
		s.Log.Info("exchange rates set", "source", src, "day", day, "currencies", n)
	}
	return n, nil
}
