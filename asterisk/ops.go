package asterisk

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// OriginateRequest is what Originate sends. Channel is "Tech/data"; once it
// answers, the call is connected to Exten in Context at Priority (default 1),
// or, when Application is set, runs that application with Data instead (as
// manager.c's action_originate reads them: Application and Data take the
// place of Context, Exten and Priority).
type OriginateRequest struct {
	Channel     string
	Context     string
	Exten       string
	Priority    int
	Application string        // e.g. Playback; Context/Exten/Priority are then not sent
	Data        string        // the application's argument
	CallerID    string        // `"Name" <number>` or a number
	Timeout     time.Duration // how long to ring; 0 leaves Asterisk's 30s
	Variables   map[string]string
	Account     string
}

// OriginateResult is the OriginateResponse of an answered call.
type OriginateResult struct {
	Channel  string
	Uniqueid string
	Reason   int
}

// Originate places a call and answers only once Asterisk has told the
// outcome. It sends Async: true (a synchronous Originate would hold the AMI
// session for the whole ringing time) and waits for the OriginateResponse
// event carrying its ActionID. A call that is queued but not answered gives
// *OriginateError; a refused Originate gives *Error.
func (c *Client) Originate(ctx context.Context, req OriginateRequest) (OriginateResult, error) {
	if !readsCallEvents(c.cfg.Events) {
		return OriginateResult{}, fmt.Errorf("asterisk: Originate needs call events, but Events is %q", c.cfg.Events)
	}
	prio := req.Priority
	if prio == 0 {
		prio = 1
	}
	h := []Header{{"Channel", req.Channel}}
	if req.Application != "" {
		h = append(h, Header{"Application", req.Application}, Header{"Data", req.Data})
	} else {
		h = append(h, Header{"Context", req.Context}, Header{"Exten", req.Exten}, Header{"Priority", strconv.Itoa(prio)})
	}
	if req.CallerID != "" {
		h = append(h, Header{"CallerID", req.CallerID})
	}
	if req.Timeout > 0 {
		h = append(h, Header{"Timeout", strconv.FormatInt(req.Timeout.Milliseconds(), 10)})
	}
	if req.Account != "" {
		h = append(h, Header{"Account", req.Account})
	}
	for _, k := range slices.Sorted(maps.Keys(req.Variables)) {
		if k == "" || strings.Contains(k, "=") {
			return OriginateResult{}, fmt.Errorf("%w: variable name %q", ErrInvalidValue, k)
		}
		h = append(h, Header{"Variable", k + "=" + req.Variables[k]})
	}
	h = append(h, Header{"Async", "true"})

	// The answer ("successfully queued") must come within ActionTimeout;
	// the outcome may take the ringing time on top.
	ackCtx, cancel := context.WithTimeout(ctx, c.cfg.ActionTimeout)
	defer cancel()
	s, cl, err := c.send(ackCtx, "Originate", h, "OriginateResponse")
	if err != nil {
		return OriginateResult{}, err
	}
	if err := s.wait(ackCtx, cl, cl.acked); err != nil {
		return OriginateResult{}, err
	}
	if !isSuccess(cl.resp) {
		return OriginateResult{}, &Error{Action: "Originate", Message: cl.resp.Get("Message")}
	}
	ring := req.Timeout
	if ring <= 0 {
		ring = 30 * time.Second
	}
	evCtx, cancel := context.WithTimeout(ctx, ring+c.cfg.ActionTimeout)
	defer cancel()
	if err := s.wait(evCtx, cl, cl.done); err != nil {
		return OriginateResult{}, err
	}
	ev := cl.event
	reason, err := strconv.Atoi(ev.Get("Reason"))
	if err != nil {
		reason = ReasonFailure
	}
	if !strings.EqualFold(ev.Get("Response"), "Success") {
		if reason == ReasonAnswered {
			reason = ReasonFailure
		}
		return OriginateResult{}, &OriginateError{Reason: reason}
	}
	return OriginateResult{Channel: ev.Get("Channel"), Uniqueid: ev.Get("Uniqueid"), Reason: reason}, nil
}

func readsCallEvents(events string) bool {
	for _, e := range strings.Split(events, ",") {
		switch strings.ToLower(strings.TrimSpace(e)) {
		case "on", "call", "all":
			return true
		}
	}
	return false
}

// Channel is one active channel as CoreShowChannels reports it.
type Channel struct {
	Name              string // e.g. SIP/100-0000001a
	State             string // ChannelStateDesc: Up, Ring, Ringing, ...
	CallerIDNum       string
	CallerIDName      string
	ConnectedLineNum  string
	ConnectedLineName string
	AccountCode       string
	Context           string
	Exten             string
	Priority          string
	Uniqueid          string
	Linkedid          string
	Application       string
	ApplicationData   string
	BridgeID          string
	Duration          time.Duration
}

// CoreShowChannels lists the active channels.
func (c *Client) CoreShowChannels(ctx context.Context) ([]Channel, error) {
	cl, err := c.do(ctx, "CoreShowChannels", nil)
	if err != nil {
		return nil, err
	}
	chans := make([]Channel, 0, len(cl.items))
	for _, m := range cl.items {
		if !strings.EqualFold(m.Get("Event"), "CoreShowChannel") {
			continue
		}
		chans = append(chans, Channel{
			Name:              m.Get("Channel"),
			State:             m.Get("ChannelStateDesc"),
			CallerIDNum:       m.Get("CallerIDNum"),
			CallerIDName:      m.Get("CallerIDName"),
			ConnectedLineNum:  m.Get("ConnectedLineNum"),
			ConnectedLineName: m.Get("ConnectedLineName"),
			AccountCode:       m.Get("AccountCode"),
			Context:           m.Get("Context"),
			Exten:             m.Get("Exten"),
			Priority:          m.Get("Priority"),
			Uniqueid:          m.Get("Uniqueid"),
			Linkedid:          m.Get("Linkedid"),
			Application:       m.Get("Application"),
			ApplicationData:   m.Get("ApplicationData"),
			BridgeID:          m.Get("BridgeId"),
			Duration:          parseDuration(m.Get("Duration")),
		})
	}
	return chans, nil
}

// parseDuration reads CoreShowChannel's HH:MM:SS; anything else is 0.
func parseDuration(s string) time.Duration {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0
	}
	var d time.Duration
	for i, unit := range []time.Duration{time.Hour, time.Minute, time.Second} {
		n, err := strconv.Atoi(parts[i])
		if err != nil || n < 0 {
			return 0
		}
		d += time.Duration(n) * unit
	}
	return d
}

// ChannelsOf picks the channels named <tech>/<extension>-<suffix> for the
// given extensions, comparing the extension exactly: SIP/100-0001 belongs
// to 100, not to 10. An empty tech matches any technology. Local channels
// (Local/100@ctx-0001;1) carry a context and never match.
func ChannelsOf(channels []Channel, tech string, extensions []string) []Channel {
	var out []Channel
	for _, ch := range channels {
		t, rest, ok := strings.Cut(ch.Name, "/")
		if !ok || (tech != "" && !strings.EqualFold(t, tech)) {
			continue
		}
		// The suffix after the last '-' is Asterisk's; peer names may hold '-'.
		i := strings.LastIndexByte(rest, '-')
		if i <= 0 {
			continue
		}
		if slices.Contains(extensions, rest[:i]) {
			out = append(out, ch)
		}
	}
	return out
}

// Hangup hangs up one channel by name (or Uniqueid). A name that starts with
// '/' is refused: Asterisk would read it as a regular expression.
func (c *Client) Hangup(ctx context.Context, channel string) error {
	if channel == "" || strings.HasPrefix(channel, "/") {
		return fmt.Errorf("%w: channel name %q", ErrInvalidValue, channel)
	}
	_, err := c.do(ctx, "Hangup", []Header{{"Channel", channel}})
	return err
}

// HangupMatching hangs up every channel whose name matches regex (POSIX
// extended, as Asterisk's regcomp reads it, without the slashes) and returns
// how many were hung up. No match is not an error.
func (c *Client) HangupMatching(ctx context.Context, regex string) (int, error) {
	if regex == "" {
		return 0, fmt.Errorf("%w: empty regex", ErrInvalidValue)
	}
	cl, err := c.do(ctx, "Hangup", []Header{{"Channel", "/" + regex + "/"}})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range cl.items {
		if strings.EqualFold(m.Get("Event"), "ChannelHungup") {
			n++
		}
	}
	return n, nil
}

// Command runs a CLI command and returns its output, lines joined by "\n".
// Both answer forms are read: Output headers (Asterisk 14 and later) and raw
// text up to --END COMMAND-- (Asterisk 13). A failed or unknown command is an
// *Error whose Message is the CLI output.
func (c *Client) Command(ctx context.Context, cli string) (string, error) {
	cl, err := c.do(ctx, "Command", []Header{{"Command", cli}})
	var amiErr *Error
	// An *Error without an answer of Command's own (a refused login) has no output.
	if err != nil && (cl == nil || !errors.As(err, &amiErr)) {
		return "", err
	}
	out := strings.Join(cl.resp.Values("Output"), "\n")
	if amiErr != nil {
		if strings.TrimSpace(out) != "" {
			amiErr.Message = out
		}
		return out, amiErr
	}
	// Asterisk 13 answers an unknown command with Response: Follows.
	if strings.HasPrefix(out, "No such command '") {
		return out, &Error{Action: "Command", Message: out}
	}
	return out, nil
}

// Ping checks that Asterisk answers.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.do(ctx, "Ping", nil)
	return err
}

// MessageRequest is what MessageSend sends: an out-of-call message (a SIP
// MESSAGE) through one of Asterisk's message technologies.
type MessageRequest struct {
	To        string // tech:destination, e.g. pjsip:100 (res_pjsip_messaging) or sip:100 (chan_sip)
	From      string // the sender: a user, user@domain or a SIP URI
	Body      string
	Variables map[string]string // message variables (Variable: name=value)
}

// maxMessageBody is the longest body MessageSend can carry: Asterisk decodes
// Base64Body into a 1301-byte buffer (main/message.c, action_messagesend), and
// a Body line must fit the 1024-byte line limit.
const maxMessageBody = 1300

// MessageSend sends an out-of-call message and returns once Asterisk has
// handed it to the technology ("Message successfully sent"). A body without
// line breaks goes as Body; one with line breaks as Base64Body (the AMI line
// format cannot carry them). A body that cannot fit either form is
// ErrInvalidValue; a refused message is an *Error ("Message failed to send.",
// "Message technology not found.").
func (c *Client) MessageSend(ctx context.Context, req MessageRequest) error {
	if req.To == "" || !strings.Contains(req.To, ":") {
		return fmt.Errorf("%w: message destination %q is not tech:destination", ErrInvalidValue, req.To)
	}
	if len(req.Body) > maxMessageBody {
		return fmt.Errorf("%w: message body of %d bytes (at most %d)", ErrInvalidValue, len(req.Body), maxMessageBody)
	}
	h := []Header{{"To", req.To}}
	if req.From != "" {
		h = append(h, Header{"From", req.From})
	}
	if strings.ContainsAny(req.Body, "\r\n") {
		h = append(h, Header{"Base64Body", base64.StdEncoding.EncodeToString([]byte(req.Body))})
	} else {
		h = append(h, Header{"Body", req.Body})
	}
	for _, k := range slices.Sorted(maps.Keys(req.Variables)) {
		if k == "" || strings.ContainsAny(k, "=,") || strings.Contains(req.Variables[k], ",") {
			return fmt.Errorf("%w: message variable %q", ErrInvalidValue, k)
		}
		h = append(h, Header{"Variable", k + "=" + req.Variables[k]})
	}
	_, err := c.do(ctx, "MessageSend", h)
	return err
}
