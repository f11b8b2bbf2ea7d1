package billing

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/asterisk"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
	"github.com/narayana/narayanad/lua"
)

// asteriskMethods declares the methods whose handlers are in this file: the reference's "Call
// processing", "Data security", "Technical maintenance".
func (s *Service) asteriskMethods() []Method {
	return []Method{
		// Call processing
		method("createCallback", 1, s.createCallback, "callerid:string", "destination1:string!",
			"destination2:string!", "epitch:int").
			Doc("start a callback between two numbers", "true"),
		// Data security
		method("flushBans", 22, s.flushBans).
			Doc("lift the bans on the user's SIP server", "true"),
		method("flushAllBans", 33, s.flushAllBans).
			Doc("lift every ban on every Narayana server", "true"),
		method("closeChannels", 50, s.closeChannels).
			Doc("hang up all the user's active channels", "true"),
		// Technical maintenance
		method("asteriskRequest", 22, s.asteriskRequest, "asterisk:string", "destination:string!",
			"process:string", "params:string").
			Doc("send a query to Asterisk", "Asterisk's answer"),
		method("updateDialplan", 33, s.updateDialplan, "asterisk:string", "url:string!").
			Doc("install a new dialplan version on an Asterisk server", "OK and the new version"),
		method("restoreDialplan", 33, s.restoreDialplan, "asterisk:string").
			Doc("go back to the previous dialplan version", "OK and the restored version"),
		method("updateInterface", 33, s.updateInterface, "asterisk:string", "url:string!").
			Doc("install a new interface file on an Asterisk server", "OK and the new version"),
		method("getServerFile", 50, s.getServerFile, "kind:ustring{dialplan,interface}=dialplan").
			Doc("the current dialplan or interface file of the key's SIP server, which its #exec line reads on every reload",
				"the file as text/plain (not an envelope)"),
	}
}

// extState is the Service's Asterisk and Lua side: the AMI connections (one per SIP
// server, opened lazily and shared), the script runtime and the TTS engine.
type extState struct {
	amiOnce sync.Once
	ami     *asterisk.Manager

	scripts *lua.Runtime // nil without scripts_dir

	ttsMu sync.Mutex
	tts   lua.TTS // nil: espeak-ng is looked for on first use
}

// amiManager returns the Service's AMI manager, creating it on first use. One action
// gets four fifths of asterisk_timeout (8 s of the default 10 s), so that with the rest
// of the request an unreachable or silent Asterisk is answered within the setting
// (DECISIONS §7).
func (s *Service) amiManager() *asterisk.Manager {
	s.ext.amiOnce.Do(func() {
		opts := []asterisk.Option{asterisk.WithLogger(s.Log)}
		if s.Config.AsteriskTimeout > 0 {
			opts = append(opts, asterisk.WithActionTimeout(s.Config.AsteriskTimeout*4/5))
		}
		s.ext.ami = asterisk.NewManager(opts...)
	})
	return s.ext.ami
}

// closeExtensions closes the AMI connections and the script runtime.
func (s *Service) closeExtensions() {
	s.ext.amiOnce.Do(func() {}) // no manager is created after this
	if s.ext.ami != nil {
		s.ext.ami.Close()
	}
	if s.ext.scripts != nil {
		s.ext.scripts.Close()
	}
}

// amiClient is the AMI connection of a SIP server; E_ASTERISK_QUERY_ERROR when the
// server has no manager interface registered.
func (s *Service) amiClient(srv *SIPServer) (*asterisk.Client, error) {
	if srv.AMIAddress == "" {
		return nil, apierr.New(apierr.AsteriskQueryError, "SIP server %s has no AMI address", srv.Name)
	}
	return s.amiManager().Server(asterisk.ServerConfig{
		Name: srv.Name, Address: srv.AMIAddress, Username: srv.AMIUser, Secret: srv.AMISecret,
	}), nil
}

// amiError turns an error of the asterisk package into the API's: a value that would
// break the wire format is E_INVALID_ARGUMENT, anything else E_ASTERISK_QUERY_ERROR with
// Asterisk's own message (or what went wrong with the connection) as the description.
func amiError(err error) error {
	if err == nil {
		return nil
	}
	var ae *apierr.Error
	if errors.As(err, &ae) {
		return err
	}
	if errors.Is(err, asterisk.ErrInvalidValue) {
		return apierr.New(apierr.InvalidArgument, "a value cannot be sent to Asterisk")
	}
	var amiErr *asterisk.Error
	if errors.As(err, &amiErr) {
		return apierr.New(apierr.AsteriskQueryError, "%s", amiErr.Message)
	}
	var ne *asterisk.NetError
	if errors.As(err, &ne) {
		if ne.Timeout {
			return apierr.New(apierr.AsteriskQueryError, "Asterisk at %s did not answer in time", ne.Address)
		}
		return apierr.New(apierr.AsteriskQueryError, "Asterisk at %s is unreachable", ne.Address)
	}
	if errors.Is(err, asterisk.ErrClosed) {
		return apierr.New(apierr.AsteriskQueryError, "the daemon is shutting down")
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return apierr.New(apierr.AsteriskQueryError, "Asterisk did not answer in time")
	}
	return apierr.New(apierr.AsteriskQueryError, "%v", err)
}

// noLineBreaks refuses a CR or LF in any argument of the method: such a value is never
// written into an AMI message.
func noLineBreaks(r *Request) error {
	for _, a := range r.Method.Args {
		if strings.ContainsAny(r.Str(a.Name), "\r\n") {
			return apierr.New(apierr.InvalidArgument, "%s: line breaks are not allowed", a.Name)
		}
	}
	return nil
}

// serverArg is the SIP server an argument names by address (or name), or the user's
// server when the argument is empty.
// reachableServer is the server of the `asterisk` argument (else the user's) once its
// AMI answered a Ping: the dialplan methods store nothing for a server they cannot reload.
func (s *Service) reachableServer(r *Request) (*SIPServer, *asterisk.Client, error) {
	srv, err := s.serverArg(r, "asterisk")
	if err != nil {
		return nil, nil, err
	}
	c, err := s.amiClient(srv)
	if err != nil {
		return nil, nil, err
	}
	if err := c.Ping(r.ctx); err != nil {
		return nil, nil, amiError(err)
	}
	return srv, c, nil
}

func (s *Service) serverArg(r *Request, name string) (*SIPServer, error) {
	if v := r.Str(name); v != "" {
		return sipServer(r.ctx, s.DB.Q(), v)
	}
	_, srv, err := s.userSIPServer(r)
	return srv, err
}

// userSIPServer is the user's first extension and its SIP server.
func (s *Service) userSIPServer(r *Request) (*Extension, *SIPServer, error) {
	u, err := r.User()
	if err != nil {
		return nil, nil, err
	}
	exts, err := extensionsOf(r.ctx, s.DB.Q(), u.ID)
	if err != nil {
		return nil, nil, err
	}
	if len(exts) == 0 {
		return nil, nil, apierr.New(apierr.NotExist, "user %s has no SIP account", u.Username)
	}
	ext := exts[0]
	if ext.Server == "" {
		return nil, nil, apierr.New(apierr.SIPServerNotExist, "SIP account %s has no SIP server", ext.Extension)
	}
	srv, err := sipServer(r.ctx, s.DB.Q(), ext.Server)
	if err != nil {
		return nil, nil, err
	}
	return &ext, srv, nil
}

// dialable is what createCallback accepts as a destination: it becomes part of a Local
// channel name, so '@', '/', '&' and the like (another context, another channel) are out.
var dialable = regexp.MustCompile(`^[0-9A-Za-z*#+_.-]{1,64}$`)

// createCallback(1) joins destination1 and destination2 through the user's SIP server
// (DECISIONS §7) and answers once Asterisk has told the outcome.
func (s *Service) createCallback(r *Request) (any, error) {
	if err := noLineBreaks(r); err != nil {
		return nil, err
	}
	d1, d2 := r.Str("destination1"), r.Str("destination2")
	for name, v := range map[string]string{"destination1": d1, "destination2": d2} {
		if !dialable.MatchString(v) {
			return nil, apierr.New(apierr.InvalidArgument, "%s: %q is not a number or extension", name, v)
		}
	}
	vars := map[string]string{}
	if r.Has("epitch") {
		p := r.Int("epitch")
		if p < 1 || p > 6 {
			return nil, apierr.New(apierr.InvalidArgument, "epitch: want 1 to 6, got %d", p)
		}
		vars["EPITCH"] = strconv.FormatInt(p, 10)
	}
	ext, srv, err := s.userSIPServer(r)
	if err != nil {
		return nil, err
	}
	cid := r.Str("callerid")
	if cid == "" {
		cid = ext.CallerID
	}
	if cid == "" {
		cid = ext.Extension
	}
	cbctx := s.Config.CallbackContext
	if cbctx == "" {
		cbctx = "callback"
	}
	c, err := s.amiClient(srv)
	if err != nil {
		return nil, err
	}
	_, err = c.Originate(r.ctx, asterisk.OriginateRequest{
		Channel:   "Local/" + d1 + "@" + cbctx,
		Context:   cbctx,
		Exten:     d2,
		Priority:  1,
		CallerID:  cid,
		Variables: vars,
		Account:   ext.Extension,
	})
	var oe *asterisk.OriginateError
	var ae *asterisk.Error
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &oe):
		return nil, apierr.New(apierr.InitiateCallFail, "%s", oe.Error())
	case errors.As(err, &ae) && ae.Action == "Originate":
		return nil, apierr.New(apierr.InitiateCallFail, "%s", ae.Message)
	}
	return nil, amiError(err)
}

// closeChannels(50) hangs up exactly the channels of the user's extensions
// (<TECH>/<extension>-…), found with CoreShowChannels on each of their SIP servers.
func (s *Service) closeChannels(r *Request) (any, error) {
	u, err := r.User()
	if err != nil {
		return nil, err
	}
	exts, err := extensionsOf(r.ctx, s.DB.Q(), u.ID)
	if err != nil {
		return nil, err
	}
	byServer := map[string][]string{}
	var order []string
	for _, e := range exts {
		if e.Server == "" {
			continue
		}
		if _, seen := byServer[e.Server]; !seen {
			order = append(order, e.Server)
		}
		byServer[e.Server] = append(byServer[e.Server], e.Extension)
	}
	for _, addr := range order {
		srv, err := sipServer(r.ctx, s.DB.Q(), addr)
		if err != nil {
			return nil, err
		}
		c, err := s.amiClient(srv)
		if err != nil {
			return nil, err
		}
		chans, err := c.CoreShowChannels(r.ctx)
		if err != nil {
			return nil, amiError(err)
		}
		for _, ch := range asterisk.ChannelsOf(chans, "", byServer[addr]) {
			err := c.Hangup(r.ctx, ch.Name)
			var ae *asterisk.Error
			if errors.As(err, &ae) && strings.EqualFold(ae.Message, "No such channel") {
				continue // it ended on its own meanwhile
			}
			if err != nil {
				return nil, amiError(err)
			}
		}
	}
	return true, nil
}

// asteriskOps maps each operation asteriskRequest knows to fixed CLI commands, tried in
// order until one exists on that Asterisk (chan_sip is gone from Asterisk 21). No text
// of the caller's ever reaches the CLI; the setting asterisk_allow says which of these
// may run.
var asteriskOps = map[string][]string{
	"sipreload":      {"sip reload", "module reload res_pjsip.so"},
	"pjsipreload":    {"module reload res_pjsip.so"},
	"dialplanreload": {"dialplan reload"},
	"channels":       {"core show channels"},
	"peers":          {"sip show peers", "pjsip show endpoints"},
	"version":        {"core show version"},
	"uptime":         {"core show uptime"},
}

// runOp runs an operation's commands, falling back when Asterisk does not know one.
func runOp(ctx context.Context, c *asterisk.Client, cmds []string) (string, error) {
	var out string
	var err error
	for _, cli := range cmds {
		out, err = c.Command(ctx, cli)
		var ae *asterisk.Error
		if errors.As(err, &ae) && strings.HasPrefix(strings.TrimSpace(ae.Message), "No such command") {
			continue
		}
		break
	}
	return out, err
}

// asteriskRequest(22) runs one allow-listed operation on a SIP server and answers the CLI
// output. The operation is `process`, or `destination` when no process is given; both
// must be allowed. `params` is accepted for compatibility and never sent.
func (s *Service) asteriskRequest(r *Request) (any, error) {
	if err := noLineBreaks(r); err != nil {
		return nil, err
	}
	op := r.Str("destination")
	names := []string{op}
	if p := r.Str("process"); p != "" && p != op {
		names = append(names, p)
		op = p
	}
	for _, n := range names {
		if _, known := asteriskOps[n]; !known {
			return nil, apierr.New(apierr.InvalidArgument, "unknown Asterisk operation %q", n)
		}
		allowed := false
		for _, a := range s.Config.AsteriskAllow {
			allowed = allowed || a == n
		}
		if !allowed {
			return nil, apierr.New(apierr.InsufficientAccess, "Asterisk operation %q is not allowed (asterisk_allow)", n)
		}
	}
	srv, err := s.serverArg(r, "asterisk")
	if err != nil {
		return nil, err
	}
	c, err := s.amiClient(srv)
	if err != nil {
		return nil, err
	}
	out, err := runOp(r.ctx, c, asteriskOps[op])
	if err != nil {
		return nil, amiError(err)
	}
	return out, nil
}

// flushBansCLI is what a SIP server is told after its bans were lifted: reload its named
// ACLs, which an operator builds from the ban list.
const flushBansCLI = "module reload acl"

// callerServer is the SIP server a flushBans caller stands for: the server whose name
// (realm) is the API key's name (DECISIONS §6), else the server of the user's first
// extension.
func (s *Service) callerServer(r *Request) (*SIPServer, error) {
	if k := r.Caller.Key; k != nil && k.Name != "" {
		srv, err := sipServer(r.ctx, s.DB.Q(), k.Name)
		if err == nil && srv.Name == k.Name {
			return srv, nil
		}
		if err != nil && apierr.Code(err) != apierr.SIPServerNotExist {
			return nil, err
		}
	}
	_, srv, err := s.userSIPServer(r)
	if apierr.Code(err) == apierr.NotExist {
		return nil, apierr.New(apierr.SIPServerNotExist, "the caller has no SIP server")
	}
	return srv, err
}

// tellFlushed tells servers with AMI that their bans changed. The bans are already
// lifted in the database, so a server that cannot be told is logged, not an error:
// it reads the list again on its next poll.
func (s *Service) tellFlushed(ctx context.Context, servers []SIPServer) {
	var wg sync.WaitGroup
	for i := range servers {
		srv := &servers[i]
		c, err := s.amiClient(srv)
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Command(ctx, flushBansCLI); err != nil {
				s.Log.Warn("flush bans: could not tell the SIP server", "server", srv.Name, "err", err)
			}
		}()
	}
	wg.Wait()
}

// flushBans(22) lifts the non-permanent bans placed by the caller's SIP server.
func (s *Service) flushBans(r *Request) (any, error) {
	srv, err := s.callerServer(r)
	if err != nil {
		return nil, err
	}
	sources := []any{srv.Name, srv.Address}
	if srv.DNS != "" {
		sources = append(sources, srv.DNS)
	}
	q := `DELETE FROM bans WHERE permanent = 0 AND source IN (?` + strings.Repeat(", ?", len(sources)-1) + `)`
	if _, err := s.DB.Q().Exec(r.ctx, q, sources...); err != nil {
		return nil, err
	}
	s.Gate.Bans.Invalidate()
	s.tellFlushed(r.ctx, []SIPServer{*srv})
	return true, nil
}

// flushAllBans(33) lifts every non-permanent ban of every source; permanent bans and the
// whitelist stay. Every server with AMI is told.
func (s *Service) flushAllBans(r *Request) (any, error) {
	if _, err := s.DB.Q().Exec(r.ctx, `DELETE FROM bans WHERE permanent = 0 AND source <> ?`, keys.Whitelist); err != nil {
		return nil, err
	}
	s.Gate.Bans.Invalidate()
	var servers []SIPServer
	if err := s.DB.Q().Select(r.ctx, &servers, `SELECT id, name, address, dns, ami_address, ami_user, ami_secret
		FROM sip_servers WHERE ami_address <> '' ORDER BY id`); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(r.ctx, s.amiBudget())
	defer cancel()
	s.tellFlushed(ctx, servers)
	return true, nil
}

// amiBudget bounds telling many servers at once.
func (s *Service) amiBudget() time.Duration {
	if s.Config.AsteriskTimeout > 0 {
		return s.Config.AsteriskTimeout
	}
	return 10 * time.Second
}

// Server files: updateDialplan, updateInterface and restoreDialplan keep every version
// fetched in dialplan_versions (the newest is the current one, named in sip_servers) and
// make Asterisk reload its dialplan. Its extensions.conf reads both files with an
// `#exec` line that fetches getServerFile (contrib/asterisk/, docs/DIALPLAN.md), so
// what Asterisk loads on that reload is the version just stored.

const (
	maxServerFile     = 4 << 20
	dialplanReloadCLI = "dialplan reload"
)

// serverFileColumn is the sip_servers column naming the current version of a kind.
var serverFileColumn = map[string]string{"dialplan": "dialplan_version", "interface": "interface_version"}

// fileVersionLine is a `; version: 0082R20170626_205` line in a fetched file.
var fileVersionLine = regexp.MustCompile(`(?im)^[ \t]*[;#/*-]*[ \t]*version[ \t]*[:=][ \t]*([A-Za-z0-9._-]{1,64})[ \t]*$`)

// fileVersion is the version a file declares, else the start of its SHA-256.
func fileVersion(body []byte) string {
	if m := fileVersionLine.FindSubmatch(body); m != nil {
		return string(m[1])
	}
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:6])
}

// fileURL reads the url argument: `~` stands for `/`, and http:// is assumed.
func fileURL(raw string) (string, error) {
	u := strings.ReplaceAll(raw, "~", "/")
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	pu, err := url.Parse(u)
	if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		return "", apierr.New(apierr.InvalidArgument, "url: %q is not an http or https URL", raw)
	}
	return pu.String(), nil
}

// fetchFile GETs a dialplan or interface file: text, at most maxServerFile bytes.
func (s *Service) fetchFile(ctx context.Context, u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.amiBudget())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, apierr.New(apierr.InvalidArgument, "url: %v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, apierr.New(apierr.DataAbort, "fetching %s failed", u)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, apierr.New(apierr.DataAbort, "fetching %s: HTTP %d", u, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxServerFile+1))
	switch {
	case err != nil:
		return nil, apierr.New(apierr.DataAbort, "fetching %s failed", u)
	case len(body) > maxServerFile:
		return nil, apierr.New(apierr.DataAbort, "%s is larger than %d bytes", u, maxServerFile)
	case len(body) == 0 || !utf8.Valid(body) || bytes.IndexByte(body, 0) >= 0:
		return nil, apierr.New(apierr.DataAbort, "%s is not a text file", u)
	}
	return body, nil
}

// updateDialplan installs a new dialplan version on an Asterisk server.
func (s *Service) updateDialplan(r *Request) (any, error) { return s.updateServerFile(r, "dialplan") }

// updateInterface installs a new interface file on an Asterisk server.
func (s *Service) updateInterface(r *Request) (any, error) { return s.updateServerFile(r, "interface") }

// updateServerFile fetches a new version of a server's file, keeps it, reloads the
// dialplan and answers `OK <version>`. Asterisk is checked first, so an unreachable
// server stores nothing.
func (s *Service) updateServerFile(r *Request, kind string) (any, error) {
	if err := noLineBreaks(r); err != nil {
		return nil, err
	}
	u, err := fileURL(r.Str("url"))
	if err != nil {
		return nil, err
	}
	srv, c, err := s.reachableServer(r)
	if err != nil {
		return nil, err
	}
	body, err := s.fetchFile(r.ctx, u)
	if err != nil {
		return nil, err
	}
	version := fileVersion(body)
	err = s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(r.ctx, `INSERT INTO dialplan_versions (server_id, kind, version, body, created_at) VALUES (?, ?, ?, ?, ?)`,
			srv.ID, kind, version, string(body), time.Now().Unix()); err != nil {
			return err
		}
		_, err := tx.Exec(r.ctx, `UPDATE sip_servers SET `+serverFileColumn[kind]+` = ? WHERE id = ?`, version, srv.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	if _, err := c.Command(r.ctx, dialplanReloadCLI); err != nil {
		return nil, amiError(err)
	}
	return "OK " + version, nil
}

// restoreDialplan(33) drops the current dialplan version, makes the one before it
// current again, reloads and answers `OK <version>`; E_NOT_EXIST without a previous one.
func (s *Service) restoreDialplan(r *Request) (any, error) {
	if err := noLineBreaks(r); err != nil {
		return nil, err
	}
	srv, c, err := s.reachableServer(r)
	if err != nil {
		return nil, err
	}
	var version string
	err = s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		var rows []struct {
			ID      int64  `db:"id"`
			Version string `db:"version"`
		}
		if err := tx.Select(r.ctx, &rows, `SELECT id, version FROM dialplan_versions WHERE server_id = ? AND kind = 'dialplan'
			ORDER BY id DESC LIMIT 2`, srv.ID); err != nil {
			return err
		}
		if len(rows) < 2 {
			return apierr.New(apierr.NotExist, "no previous dialplan version of %s", srv.Name)
		}
		if _, err := tx.Exec(r.ctx, `DELETE FROM dialplan_versions WHERE id = ?`, rows[0].ID); err != nil {
			return err
		}
		version = rows[1].Version
		_, err := tx.Exec(r.ctx, `UPDATE sip_servers SET dialplan_version = ? WHERE id = ?`, version, srv.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	if _, err := c.Command(r.ctx, dialplanReloadCLI); err != nil {
		return nil, amiError(err)
	}
	return "OK " + version, nil
}

// getServerFile(50) answers the current version of the dialplan or interface file of
// the caller's SIP server (the server named like the API key, DECISIONS §6), exactly
// as stored, for the `#exec` line of that server's extensions.conf. Before any
// version is stored it answers a comment line, so the reload finds an empty file
// rather than an error text.
func (s *Service) getServerFile(r *Request) (any, error) {
	srv, err := s.callerServer(r)
	if err != nil {
		return nil, err
	}
	kind := r.Str("kind")
	var bodies []string
	if err := s.DB.Q().Select(r.ctx, &bodies, `SELECT body FROM dialplan_versions WHERE server_id = ? AND kind = ?
		ORDER BY id DESC LIMIT 1`, srv.ID, kind); err != nil {
		return nil, err
	}
	body := "; narayana: no " + kind + " version stored for " + srv.Name + " yet\n"
	if len(bodies) == 1 {
		body = bodies[0]
	}
	return Raw{ContentType: "text/plain; charset=utf-8", Body: []byte(body)}, nil
}
