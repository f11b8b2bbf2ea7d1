// Package amisim is an Asterisk Manager Interface simulator for tests: a TCP
// server on 127.0.0.1 that speaks the AMI wire protocol as shared/AMI.md
// describes it, over a small model of channels, with knobs for the failures
// a client must survive (bad login, busy callee, dropped connection, silence,
// event floods). It records every action it receives so tests can check
// exactly what was sent.
//
//	sim := amisim.Start(t, amisim.Config{})
//	sim.AddChannel(amisim.Channel{Name: "SIP/100-00000001"})
//	sim.SetOriginateOutcome("200", amisim.Busy)
//	client := asterisk.New(asterisk.Config{Address: sim.Addr(), Username: amisim.DefaultUsername, Secret: amisim.DefaultSecret})
//
// Replay (replay.go) instead plays back a transcript byte for byte.
package amisim

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Credentials the simulator accepts unless Config says otherwise.
const (
	DefaultUsername = "admin"
	DefaultSecret   = "secret"
)

// Outcome is how an originated call ends: the Reason of OriginateResponse.
type Outcome int

const (
	Failure    Outcome = 0 // e.g. no such channel
	HungUp     Outcome = 1 // hung up before answer
	NoAnswer   Outcome = 3
	Answered   Outcome = 4
	Busy       Outcome = 5
	Congestion Outcome = 8
)

// Config sets up a simulator. The zero value is an Asterisk 20 with the
// default credentials.
type Config struct {
	// Address to listen on; default "127.0.0.1:0" (a free port). Set it to
	// a former simulator's Addr to emulate an Asterisk restart.
	Address string

	Username, Secret string

	// Version is the AMI version in the banner; default "9.0.0" (Asterisk
	// 20), or "2.10.6" (Asterisk 13) with LegacyCommand.
	Version string

	// LegacyCommand answers Command as Asterisk 13 does: Response: Follows,
	// raw text, --END COMMAND--. Otherwise Output headers (Asterisk 14+).
	LegacyCommand bool

	// AuthFailDelay is waited before answering a failed Login (Asterisk
	// waits about 1s).
	AuthFailDelay time.Duration

	// OriginateDelay is waited before the outcome of an Originate.
	OriginateDelay time.Duration
}

// Channel is one channel of the model, as CoreShowChannel reports it. Empty
// fields get plausible values from AddChannel.
type Channel struct {
	Name              string // e.g. SIP/100-00000001
	State             string // ChannelStateDesc; default Up
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
	Duration          string // HH:MM:SS; default 00:00:00
	BridgeID          string
}

// Server is a running simulator.
type Server struct {
	cfg Config
	ln  net.Listener
	wg  sync.WaitGroup

	mu          sync.Mutex
	conns       map[*conn]struct{}
	closed      bool
	channels    []Channel
	seq         int
	outcomes    map[string]Outcome
	defOutcome  Outcome
	commands    map[string]string
	cmdFuncs    map[string]func() (string, error)
	techs       []string
	badTo       map[string]bool
	messages    []SentMessage
	actions     []Message
	connections int
	logins      int
	silent      bool
	dropList    bool
	noise       int
}

// New starts a simulator, by default on 127.0.0.1 at a free port.
func New(cfg Config) (*Server, error) {
	if cfg.Username == "" {
		cfg.Username = DefaultUsername
	}
	if cfg.Secret == "" {
		cfg.Secret = DefaultSecret
	}
	if cfg.Version == "" {
		cfg.Version = "9.0.0"
		if cfg.LegacyCommand {
			cfg.Version = "2.10.6"
		}
	}
	if cfg.Address == "" {
		cfg.Address = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", cfg.Address)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:        cfg,
		ln:         ln,
		conns:      make(map[*conn]struct{}),
		outcomes:   make(map[string]Outcome),
		defOutcome: Answered,
		commands:   defaultCommands(cfg.LegacyCommand),
		cmdFuncs:   make(map[string]func() (string, error)),
		techs:      []string{"pjsip", "sip"},
		badTo:      make(map[string]bool),
	}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Start is New for tests: it fails tb on error and closes the simulator when
// the test ends.
func Start(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	s, err := New(cfg)
	if err != nil {
		tb.Fatalf("amisim: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func defaultCommands(legacy bool) map[string]string {
	version := "Asterisk 20.5.0 built by root @ amisim on a x86_64 running Linux on 2024-01-01 00:00:00 UTC"
	if legacy {
		version = "Asterisk 13.38.3 built by root @ amisim on a x86_64 running Linux on 2021-01-01 00:00:00 UTC"
	}
	return map[string]string{
		"core show version":          version,
		"sip reload":                 "",
		"module reload res_pjsip.so": "",
		"sip show peers": "Name/username             Host                                    Dyn Forcerport Comedia    ACL Port     Status      Description\n" +
			"100/100                   192.168.1.10                             D  Auto (No)  No             5060     OK (12 ms)\n" +
			"\n" +
			"1 sip peers [Monitored: 1 online, 0 offline Unmonitored: 0 online, 0 offline]\n",
	}
}

// Addr is the host:port to dial.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the simulator and closes every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

// DropConnections closes every open connection, as an Asterisk restart does.
func (s *Server) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.nc.Close()
	}
}

// SetSilent makes the simulator stop answering: new connections get no
// banner and actions no answer (they are still recorded).
func (s *Server) SetSilent(silent bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silent = silent
}

// DropNextList makes the next CoreShowChannels send its first item (or just
// its answer) and then close the connection.
func (s *Server) DropNextList() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropList = true
}

// SetNoise makes the simulator send n unsolicited events before every
// answer, to sessions that read call events.
func (s *Server) SetNoise(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noise = n
}

// SetOriginateOutcome sets how Originate ends for a destination: dest is
// compared with the whole Channel header (Local/100@callback) and with the
// part between '/' and '@' (100). Unlisted destinations are Answered, unless
// SetDefaultOutcome says otherwise.
func (s *Server) SetOriginateOutcome(dest string, o Outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outcomes[dest] = o
}

// SetDefaultOutcome sets the outcome of destinations without their own.
func (s *Server) SetDefaultOutcome(o Outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.defOutcome = o
}

// SetCommand sets the CLI output of a command (lines ended by "\n").
func (s *Server) SetCommand(cli, output string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commands[normalizeCLI(cli)] = output
}

// SetCommandFunc makes a CLI command run fn each time it is received: its
// output answers, an error answers Response: Error with the error's text. A
// test uses it for what Asterisk does on that command, such as reading the
// dialplan's #exec include on `dialplan reload`.
func (s *Server) SetCommandFunc(cli string, fn func() (string, error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cmdFuncs[normalizeCLI(cli)] = fn
}

// SentMessage is a message MessageSend handed to a technology.
type SentMessage struct {
	To, From, Body string
	Variables      []string // name=value, in order
}

// Messages returns the messages MessageSend accepted, in order.
func (s *Server) Messages() []SentMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.messages)
}

// SetMessageTechs sets the message technologies MessageSend knows (default
// pjsip and sip); others answer "Message technology not found.".
func (s *Server) SetMessageTechs(techs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.techs = techs
}

// FailMessagesTo makes MessageSend to this destination (To, e.g. pjsip:100)
// answer "Message failed to send.", as when the endpoint has no contact.
func (s *Server) FailMessagesTo(to string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.badTo[to] = true
}

// AddChannel adds a channel to the model and returns it with its defaults
// filled in.
func (s *Server) AddChannel(ch Channel) Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	if ch.Uniqueid == "" {
		ch.Uniqueid = fmt.Sprintf("1700000000.%d", s.seq)
	}
	if ch.Linkedid == "" {
		ch.Linkedid = ch.Uniqueid
	}
	if ch.State == "" {
		ch.State = "Up"
	}
	if ch.Priority == "" {
		ch.Priority = "1"
	}
	if ch.Duration == "" {
		ch.Duration = "00:00:00"
	}
	s.channels = append(s.channels, ch)
	return ch
}

// RemoveChannel removes a channel by name and reports whether it was there.
func (s *Server) RemoveChannel(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, ch := range s.channels {
		if ch.Name == name {
			s.channels = slices.Delete(s.channels, i, i+1)
			return true
		}
	}
	return false
}

// Channels returns the channels of the model.
func (s *Server) Channels() []Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.channels)
}

// Actions returns every action received so far, Login included, in order.
func (s *Server) Actions() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.actions)
}

// ActionsNamed returns the received actions with the given Action name.
func (s *Server) ActionsNamed(name string) []Message {
	var out []Message
	for _, a := range s.Actions() {
		if strings.EqualFold(a.Get("Action"), name) {
			out = append(out, a)
		}
	}
	return out
}

// Connections is how many TCP connections were accepted so far.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connections
}

// Logins is how many logins succeeded so far.
func (s *Server) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins
}

// Inject sends an unsolicited event to every logged-in session that reads
// its category (the first word of its Privilege header; every session with
// events on when there is none). It goes out between two answers, never
// inside one.
func (s *Server) Inject(ev Message) {
	cat, _, _ := strings.Cut(ev.Get("Privilege"), ",")
	for _, c := range s.listeners(cat) {
		c.write(ev)
	}
}

// listeners are the logged-in connections that read events of category cat.
func (s *Server) listeners(cat string) []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*conn
	for c := range s.conns {
		if c.loggedIn && c.reads(cat) {
			out = append(out, c)
		}
	}
	return out
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		c := &conn{srv: s, nc: nc}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.connections++
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

// conn is one client session. Its goroutine handles actions one at a time,
// so answers go out in request order, as Asterisk's do.
type conn struct {
	srv *Server
	nc  net.Conn
	wmu sync.Mutex // one message (or list) is written whole

	// Set at login under srv.mu; read by injectors under srv.mu.
	loggedIn bool
	events   map[string]bool // nil: all categories
	noEvents bool
}

func (c *conn) reads(cat string) bool {
	if c.noEvents {
		return false
	}
	return c.events == nil || cat == "" || c.events[strings.ToLower(cat)]
}

func (c *conn) writeRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.nc.Write(b)
	return err
}

func (c *conn) write(msgs ...Message) error {
	var buf []byte
	for _, m := range msgs {
		buf = m.appendTo(buf)
	}
	return c.writeRaw(buf)
}

func (s *Server) isSilent() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.silent
}

func (c *conn) serve() {
	s := c.srv
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.nc.Close()
	}()
	if !s.isSilent() {
		if c.writeRaw([]byte("Asterisk Call Manager/"+s.cfg.Version+"\r\n")) != nil {
			return
		}
	}
	r := bufio.NewReader(c.nc)
	for {
		m, err := readAction(r)
		if err == errLineTooLong {
			c.write(response("", "Error", "Failed to parse message: line too long"))
			continue
		}
		if err != nil {
			return
		}
		s.mu.Lock()
		s.actions = append(s.actions, m)
		silent, noise := s.silent, s.noise
		loggedIn := c.loggedIn
		s.mu.Unlock()
		if silent {
			continue
		}
		if noise > 0 && loggedIn && c.readsLocked("call") {
			for i := range noise {
				c.write(Msg("Event", "Newstate", "Privilege", "call,all",
					"Channel", fmt.Sprintf("SIP/noise-%08d", i), "ChannelState", "5", "ChannelStateDesc", "Ringing"))
			}
		}
		if !c.handle(m, loggedIn) {
			return
		}
	}
}

func (c *conn) readsLocked(cat string) bool {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	return c.reads(cat)
}

// response is laid out as Asterisk's astman_send_response_full lays it out.
func response(id, status, message string, extra ...Header) Message {
	m := Message{{"Response", status}}
	if id != "" {
		m = append(m, Header{"ActionID", id})
	}
	if message != "" {
		m = append(m, Header{"Message", message})
	}
	return append(m, extra...)
}

// listAck is the answer that starts a list: EventList comes before Message.
func listAck(id, message string) Message {
	m := Message{{"Response", "Success"}}
	if id != "" {
		m = append(m, Header{"ActionID", id})
	}
	return append(m, Header{"EventList", "start"}, Header{"Message", message})
}

// handle answers one action; false closes the connection.
func (c *conn) handle(m Message, loggedIn bool) bool {
	id := m.Get("ActionID")
	name := m.Get("Action")
	if name == "" {
		return c.write(response(id, "Error", "Missing action in request")) == nil
	}
	if !loggedIn && !strings.EqualFold(name, "Login") {
		return c.write(response(id, "Error", "Permission denied")) == nil
	}
	switch strings.ToLower(name) {
	case "login":
		return c.login(m, id)
	case "logoff":
		c.write(response(id, "Goodbye", "Thanks for all the fish."))
		return false
	case "ping":
		now := time.Now()
		return c.write(response(id, "Success", "",
			Header{"Ping", "Pong"},
			Header{"Timestamp", fmt.Sprintf("%d.%06d", now.Unix(), now.Nanosecond()/1000)})) == nil
	case "originate":
		return c.originate(m, id)
	case "hangup":
		return c.hangup(m, id)
	case "command":
		return c.command(m, id)
	case "coreshowchannels":
		return c.coreShowChannels(id)
	case "messagesend":
		return c.messageSend(m, id)
	}
	return c.write(response(id, "Error", "Invalid/unknown command: "+name+". Use Action: ListCommands to show available commands.")) == nil
}

func (c *conn) login(m Message, id string) bool {
	s := c.srv
	if m.Get("Username") != s.cfg.Username || m.Get("Secret") != s.cfg.Secret {
		time.Sleep(s.cfg.AuthFailDelay)
		c.write(response(id, "Error", "Authentication failed"))
		return false // Asterisk hangs up after a failed login
	}
	s.mu.Lock()
	c.loggedIn = true
	s.logins++
	switch ev := strings.ToLower(strings.TrimSpace(m.Get("Events"))); ev {
	case "", "on", "yes", "all":
		c.events = nil
	case "off", "no":
		c.noEvents = true
	default:
		c.events = make(map[string]bool)
		for _, cat := range strings.Split(ev, ",") {
			c.events[strings.TrimSpace(cat)] = true
		}
	}
	system := c.reads("system")
	s.mu.Unlock()
	msgs := []Message{response(id, "Success", "Authentication accepted")}
	if system {
		msgs = append(msgs, Msg("Event", "FullyBooted", "Privilege", "system,all",
			"Uptime", "1", "LastReload", "1", "Status", "Fully Booted"))
	}
	return c.write(msgs...) == nil
}

func (c *conn) originate(m Message, id string) bool {
	s := c.srv
	channel := m.Get("Channel")
	exten := m.Get("Exten")
	app := m.Get("Application")
	switch {
	case channel == "":
		return c.write(response(id, "Error", "Channel not specified")) == nil
	case app == "" && exten == "":
		// manager.c: neither an application nor an extension to connect to.
		return c.write(response(id, "Error", "Extension does not exist.")) == nil
	case app == "" && exten != "" && (m.Get("Context") == "" || m.Get("Priority") == ""):
		return c.write(response(id, "Error", "Originate with 'Exten' requires 'Context' and 'Priority'")) == nil
	case !strings.Contains(channel, "/"):
		return c.write(response(id, "Error", "Invalid channel")) == nil
	}
	if p := m.Get("Priority"); p != "" {
		if _, err := strconv.Atoi(p); err != nil {
			return c.write(response(id, "Error", "Invalid priority")) == nil
		}
	}
	outcome := s.outcomeFor(channel)
	async := isTrue(m.Get("Async"))
	if !async {
		time.Sleep(s.cfg.OriginateDelay)
		if outcome != Answered {
			return c.write(response(id, "Error", "Originate failed")) == nil
		}
		return c.write(response(id, "Success", "Originate successfully queued")) == nil
	}
	if c.write(response(id, "Success", "Originate successfully queued")) != nil {
		return false
	}
	// The outcome comes later, to every session reading call events, as
	// Asterisk's originate thread sends it.
	num, name := splitCallerID(m.Get("CallerID"))
	ev := Msg("Event", "OriginateResponse", "Privilege", "call,all")
	if id != "" {
		ev = append(ev, Header{"ActionID", id})
	}
	resp, uniqueid := "Failure", "<unknown>"
	if outcome == Answered {
		resp = "Success"
		s.mu.Lock()
		s.seq++
		uniqueid = fmt.Sprintf("1700000000.%d", s.seq)
		s.mu.Unlock()
	}
	ev = append(ev,
		Header{"Response", resp},
		Header{"Channel", channel},
		Header{"Context", m.Get("Context")},
		Header{"Exten", exten},
		Header{"Reason", strconv.Itoa(int(outcome))},
		Header{"Uniqueid", uniqueid},
		Header{"CallerIDNum", num},
		Header{"CallerIDName", name})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		time.Sleep(s.cfg.OriginateDelay)
		s.Inject(ev)
	}()
	return true
}

func (s *Server) outcomeFor(channel string) Outcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.outcomes[channel]; ok {
		return o
	}
	_, data, _ := strings.Cut(channel, "/")
	data, _, _ = strings.Cut(data, "@")
	if o, ok := s.outcomes[data]; ok {
		return o
	}
	return s.defOutcome
}

func isTrue(v string) bool {
	switch strings.ToLower(v) {
	case "true", "yes", "1", "on", "y", "t":
		return true
	}
	return false
}

// splitCallerID splits `"Name" <num>` the way the OriginateResponse shows it.
func splitCallerID(cid string) (num, name string) {
	num, name = "<unknown>", "<unknown>"
	cid = strings.TrimSpace(cid)
	if cid == "" {
		return num, name
	}
	if i := strings.LastIndexByte(cid, '<'); i >= 0 && strings.HasSuffix(cid, ">") {
		num = cid[i+1 : len(cid)-1]
		if n := strings.Trim(strings.TrimSpace(cid[:i]), `"`); n != "" {
			name = n
		}
		return num, name
	}
	return cid, name
}

func (c *conn) hangup(m Message, id string) bool {
	s := c.srv
	target := m.Get("Channel")
	if target == "" {
		return c.write(response(id, "Error", "No channel specified")) == nil
	}
	if len(target) > 2 && strings.HasPrefix(target, "/") && strings.HasSuffix(target, "/") {
		re, err := regexp.CompilePOSIX(target[1 : len(target)-1])
		if err != nil {
			return c.write(response(id, "Error", "Regex compile failed on: "+target)) == nil
		}
		var gone []Channel
		s.mu.Lock()
		s.channels = slices.DeleteFunc(s.channels, func(ch Channel) bool {
			if re.MatchString(ch.Name) {
				gone = append(gone, ch)
				return true
			}
			return false
		})
		s.mu.Unlock()
		msgs := []Message{listAck(id, "Channels hung up will follow")}
		for _, ch := range gone {
			ev := Msg("Event", "ChannelHungup", "Channel", ch.Name)
			if id != "" {
				ev = append(ev, Header{"ActionID", id})
			}
			msgs = append(msgs, ev)
		}
		msgs = append(msgs, listComplete("ChannelsHungupListComplete", id, len(gone)))
		if c.write(msgs...) != nil {
			return false
		}
		s.hungUp(gone)
		return true
	}
	var gone []Channel
	s.mu.Lock()
	s.channels = slices.DeleteFunc(s.channels, func(ch Channel) bool {
		if ch.Name == target || ch.Uniqueid == target {
			gone = append(gone, ch)
			return true
		}
		return false
	})
	s.mu.Unlock()
	if len(gone) == 0 {
		return c.write(response(id, "Error", "No such channel")) == nil
	}
	if c.write(response(id, "Success", "Channel Hungup")) != nil {
		return false
	}
	s.hungUp(gone)
	return true
}

// hungUp sends the Hangup events of channels hung up by an action.
func (s *Server) hungUp(gone []Channel) {
	for _, ch := range gone {
		s.Inject(Msg("Event", "Hangup", "Privilege", "call,all",
			"Channel", ch.Name, "Uniqueid", ch.Uniqueid, "Linkedid", ch.Linkedid,
			"CallerIDNum", ch.CallerIDNum, "Cause", "16", "Cause-txt", "Normal Clearing"))
	}
}

func listComplete(event, id string, n int) Message {
	m := Msg("Event", event)
	if id != "" {
		m = append(m, Header{"ActionID", id})
	}
	return append(m, Header{"EventList", "Complete"}, Header{"ListItems", strconv.Itoa(n)})
}

var stateNumbers = map[string]int{
	"Down": 0, "Rsrvd": 1, "OffHook": 2, "Dialing": 3, "Ring": 4, "Ringing": 5, "Up": 6, "Busy": 7,
}

func (c *conn) coreShowChannels(id string) bool {
	s := c.srv
	s.mu.Lock()
	chans := slices.Clone(s.channels)
	drop := s.dropList
	s.dropList = false
	s.mu.Unlock()
	msgs := []Message{listAck(id, "Channels will follow")}
	for _, ch := range chans {
		ev := Msg("Event", "CoreShowChannel")
		if id != "" {
			ev = append(ev, Header{"ActionID", id})
		}
		ev = append(ev,
			Header{"Channel", ch.Name},
			Header{"ChannelState", strconv.Itoa(stateNumbers[ch.State])},
			Header{"ChannelStateDesc", ch.State},
			Header{"CallerIDNum", ch.CallerIDNum},
			Header{"CallerIDName", ch.CallerIDName},
			Header{"ConnectedLineNum", ch.ConnectedLineNum},
			Header{"ConnectedLineName", ch.ConnectedLineName},
			Header{"Language", "en"},
			Header{"AccountCode", ch.AccountCode},
			Header{"Context", ch.Context},
			Header{"Exten", ch.Exten},
			Header{"Priority", ch.Priority},
			Header{"Uniqueid", ch.Uniqueid},
			Header{"Linkedid", ch.Linkedid},
			Header{"Application", ch.Application},
			Header{"ApplicationData", ch.ApplicationData},
			Header{"Duration", ch.Duration},
			Header{"BridgeId", ch.BridgeID})
		msgs = append(msgs, ev)
		if drop {
			c.write(msgs...)
			return false
		}
	}
	if drop {
		c.write(msgs...)
		return false
	}
	msgs = append(msgs, listComplete("CoreShowChannelsComplete", id, len(chans)))
	return c.write(msgs...) == nil
}

// Commands Asterisk's manager refuses to run.
var blacklisted = []string{"module load", "module unload", "restart gracefully"}

func normalizeCLI(cli string) string { return strings.Join(strings.Fields(cli), " ") }

func (c *conn) command(m Message, id string) bool {
	s := c.srv
	cli := normalizeCLI(m.Get("Command"))
	for _, b := range blacklisted {
		if cli == b || strings.HasPrefix(cli, b+" ") {
			return c.write(response(id, "Error", "Command blacklisted")) == nil
		}
	}
	s.mu.Lock()
	out, ok := s.commands[cli]
	fn := s.cmdFuncs[cli]
	s.mu.Unlock()
	if fn != nil {
		var err error
		if out, err = fn(); err != nil {
			return c.write(response(id, "Error", err.Error())) == nil
		}
		ok = true
	}
	if !ok {
		first, _, _ := strings.Cut(cli, " ")
		out = fmt.Sprintf("No such command '%s' (type 'core show help %s' for other possible commands)\n", cli, first)
	}
	if s.cfg.LegacyCommand {
		head := "Response: Follows\r\nPrivilege: Command\r\n"
		if id != "" {
			head += "ActionID: " + id + "\r\n"
		}
		return c.writeRaw([]byte(head+out+"--END COMMAND--\r\n\r\n")) == nil
	}
	status := "Success"
	if !ok {
		status = "Error"
	}
	resp := response(id, status, "Command output follows")
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		resp = append(resp, Header{"Output", line})
	}
	return c.write(resp) == nil
}

// messageSend answers MessageSend as main/message.c's action_messagesend does:
// Destination, else To, names tech:destination; Base64Body (decoded into a
// 1300-byte buffer) takes precedence over Body; Variable headers hold
// name=value pairs, comma separated.
func (c *conn) messageSend(m Message, id string) bool {
	s := c.srv
	to := m.Get("To")
	if d := m.Get("Destination"); d != "" {
		to = d
	} else if to == "" {
		return c.write(response(id, "Error", "No 'To' address specified.")) == nil
	}
	body := m.Get("Body")
	if b64 := m.Get("Base64Body"); b64 != "" {
		raw, _ := base64.StdEncoding.DecodeString(b64)
		if len(raw) > 1300 {
			raw = raw[:1300]
		}
		body = string(raw)
	}
	tech, _, _ := strings.Cut(to, ":")
	s.mu.Lock()
	known := slices.ContainsFunc(s.techs, func(t string) bool { return strings.EqualFold(t, tech) })
	bad := s.badTo[to]
	if known && !bad {
		var vars []string
		for _, v := range m.Values("Variable") {
			for _, p := range strings.Split(v, ",") {
				vars = append(vars, strings.TrimSpace(p))
			}
		}
		s.messages = append(s.messages, SentMessage{To: to, From: m.Get("From"), Body: body, Variables: vars})
	}
	s.mu.Unlock()
	switch {
	case !known:
		return c.write(response(id, "Error", "Message technology not found.")) == nil
	case bad:
		return c.write(response(id, "Error", "Message failed to send.")) == nil
	}
	return c.write(response(id, "Success", "Message successfully sent")) == nil
}
