package billing

import (
	"context"
	"database/sql"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
)

// Extension is a SIP account (the reference's "SIP & DISA account" fields).
type Extension struct {
	ID             int64         `db:"id"`
	Extension      string        `db:"extension"`
	UserID         int64         `db:"user_id"`
	Owner          string        `db:"owner"`
	ServerID       sql.NullInt64 `db:"server_id"`
	Server         string        `db:"server"`  // the SIP server's address
	Realm          string        `db:"realm"`   // the SIP server's name
	Address        string        `db:"address"` // the SIP server's DNS name
	Password       string        `db:"password"`
	CallerID       string        `db:"callerid"`
	Language       string        `db:"language"`
	RatesID        sql.NullInt64 `db:"rates_id"`
	RatesName      string        `db:"rates_name"`
	RatesOptions   string        `db:"rates_options"`
	SRTP           int           `db:"srtp"`
	Transport      string        `db:"transport"`
	MaxCallLen     int           `db:"max_call_len"`
	Reach          int           `db:"reach"`
	Redirect       string        `db:"redirect"`
	ForceCallback  int           `db:"force_callback"`
	PitchShift     int           `db:"pitch_shift"`
	Host           string        `db:"host"`
	Options        string        `db:"options"`
	DISAPin        string        `db:"disa_pin"`
	DISATrustedCLI string        `db:"disa_trusted_cli"`
	UpdatedAt      int64         `db:"updated_at"`
}

const extensionSelect = `SELECT e.id, e.extension, e.user_id, u.username AS owner, e.server_id,
	COALESCE(s.address, '') AS server, COALESCE(s.name, '') AS realm, COALESCE(s.dns, '') AS address,
	e.password, e.callerid, e.language, e.rates_id, COALESCE(r.name, '') AS rates_name, e.rates_options,
	e.srtp, e.transport, e.max_call_len, e.reach, e.redirect, e.force_callback, e.pitch_shift, e.host,
	e.options, e.disa_pin, e.disa_trusted_cli, e.updated_at
	FROM extensions e JOIN users u ON u.id = e.user_id LEFT JOIN sip_servers s ON s.id = e.server_id
	LEFT JOIN rates r ON r.id = e.rates_id`

func extensionsOf(ctx context.Context, q db.Queryer, userID int64) ([]Extension, error) {
	var out []Extension
	err := q.Select(ctx, &out, extensionSelect+` WHERE e.user_id = ? ORDER BY e.id`, userID)
	return out, err
}

func extensionByName(ctx context.Context, q db.Queryer, ext string) (*Extension, error) {
	var e Extension
	err := q.Get(ctx, &e, extensionSelect+` WHERE e.extension = ?`, ext)
	if db.IsNotFound(err) {
		return nil, apierr.New(apierr.NotExist, "no SIP account %q", ext)
	}
	return &e, err
}

// view is the extension as the API shows it; sip_password only to callers that manage the
// owner (DECISIONS §2), and the 2.3 fields only on version 2.3.
func (e *Extension) view(showSecret bool, version string) map[string]any {
	v := map[string]any{
		"sip_extension":      e.Extension,
		"owner":              e.Owner,
		"sip_server":         e.Server,
		"sip_realm":          e.Realm,
		"sip_callerid":       e.CallerID,
		"sip_language":       e.Language,
		"sip_rates_id":       nullInt(e.RatesID),
		"rates_name":         e.RatesName,
		"sip_rates_options":  e.RatesOptions,
		"sip_srtp":           e.SRTP,
		"sip_transport":      e.Transport,
		"sip_max_call_len":   e.MaxCallLen,
		"sip_reach":          e.Reach,
		"sip_redirect":       e.Redirect,
		"sip_force_callback": e.ForceCallback,
		"sip_pitch_shift":    e.PitchShift,
		"disa_pin":           e.DISAPin,
		"disa_trusted_cli":   e.DISATrustedCLI,
		"lastupdated":        formatTime(e.UpdatedAt, 0),
	}
	if showSecret {
		v["sip_password"] = e.Password
	}
	if version == "2.3" {
		v["sip_host"], v["sip_options"], v["sip_address"] = e.Host, e.Options, e.Address
	}
	return v
}

func nullInt(n sql.NullInt64) any {
	if !n.Valid {
		return nil
	}
	return n.Int64
}

// SIPServer is a registered Asterisk (`narayanad sip-server add`).
type SIPServer struct {
	ID         int64  `db:"id"`
	Name       string `db:"name"`
	Address    string `db:"address"`
	DNS        string `db:"dns"`
	AMIAddress string `db:"ami_address"`
	AMIUser    string `db:"ami_user"`
	AMISecret  string `db:"ami_secret"`
}

// sipServer finds a server by its address (the sip_server argument) or its name;
// E_SIP_SERVER_NOT_EXIST when there is none.
func sipServer(ctx context.Context, q db.Queryer, addressOrName string) (*SIPServer, error) {
	var s SIPServer
	err := q.Get(ctx, &s, `SELECT id, name, address, dns, ami_address, ami_user, ami_secret FROM sip_servers
		WHERE address = ? OR name = ? ORDER BY (address = ?) DESC LIMIT 1`, addressOrName, addressOrName, addressOrName)
	if db.IsNotFound(err) {
		return nil, apierr.New(apierr.SIPServerNotExist, "no SIP server %q", addressOrName)
	}
	return &s, err
}
