package billing

import (
	"github.com/narayana/narayanad/apierr"
)

// sessionMethods declares the methods whose handlers are in this file: browser sessions,
// an addition to the reference modelled on PortaBilling's Session/login. A session's
// access token stands in for login and password on every method (the gate's token step,
// keys.Gate.Authorize); docs/API.md "Sessions" says how it travels.
func (s *Service) sessionMethods() []Method {
	return []Method{
		method("login", 1, s.login).
			Doc("open a session with login and password through a client key: a short-lived access token "+
				"to send as `token` (POST body or `Authorization: Bearer`, never in a URL) in place of login and "+
				"password, and a refresh token for refreshToken (not in the reference)",
				"{session_id, access_token, refresh_token, expires_in, refresh_expires_in, username, accesslevel}"),
		method("refreshToken", 0, s.refreshToken, "refresh_token:string!").
			Doc("trade a session's refresh token for a new access token and refresh token; the old ones stop "+
				"working (not in the reference)", "the same fields as login"),
		method("logout", 1, s.logout, "all:bool=false").
			Doc("end the session whose token authorized the call, or with `all` (or when called with a "+
				"password) every session of the user (not in the reference)", "true"),
	}
}

type sessionAnswer struct {
	SessionID      int64  `json:"session_id"`
	AccessToken    string `json:"access_token"`
	RefreshToken   string `json:"refresh_token"`
	ExpiresIn      int64  `json:"expires_in"`
	RefreshExpires int64  `json:"refresh_expires_in"`
	Username       string `json:"username"`
	AccessLevel    int    `json:"accesslevel"`
}

// login opens a session for the user the password authorized. A token does not open
// another session (refreshToken does that), and a key without passwords has no sessions.
func (s *Service) login(r *Request) (any, error) {
	c := r.Caller
	switch {
	case c.Key == nil || c.Key.IsServer() || c.Key.DefaultUser != "":
		return nil, apierr.New(apierr.InsufficientAccess, "sessions are opened through a client key that asks for a password")
	case c.Session != 0:
		return nil, apierr.New(apierr.InvalidArgument, "login takes the password; refreshToken renews a session")
	case c.User != c.Actor:
		return nil, apierr.New(apierr.InvalidArgument, "a session is the user's own: login takes no username")
	}
	t, err := s.Gate.Sessions.Open(r.ctx, c.Actor, c.Key, s.Config.SessionTTL, s.Config.SessionRefreshTTL)
	if err != nil {
		return nil, err
	}
	return sessionAnswer{t.SessionID, t.AccessToken, t.RefreshToken, t.ExpiresIn, t.RefreshExpires, c.Actor.Username, c.Actor.AccessLevel}, nil
}

// refreshToken(0) rotates a session's tokens (keys.Gate.Refresh).
func (s *Service) refreshToken(r *Request) (any, error) {
	if r.Caller.Key == nil {
		return nil, apierr.New(apierr.InsufficientAccess, "sessions belong to a client key")
	}
	t, u, err := s.Gate.Refresh(r.ctx, r.Caller.Key, r.Str("refresh_token"), s.Config.SessionTTL, s.Config.SessionRefreshTTL)
	if err != nil {
		return nil, err
	}
	return sessionAnswer{t.SessionID, t.AccessToken, t.RefreshToken, t.ExpiresIn, t.RefreshExpires, u.Username, u.AccessLevel}, nil
}

// logout(1) ends the calling session, or all of the user's.
func (s *Service) logout(r *Request) (any, error) {
	c := r.Caller
	if c.Session != 0 && !r.Bool("all") {
		return nil, s.Gate.Sessions.Close(r.ctx, c.Actor.ID, c.Session)
	}
	return nil, s.Gate.Sessions.CloseAll(r.ctx, c.Actor.ID)
}
