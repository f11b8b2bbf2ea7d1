package asterisk

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/narayana/narayanad/asterisk/amisim"
)

func TestPingAndLogin(t *testing.T) {
	sim := amisim.Start(t, amisim.Config{})
	c := newClient(t, sim.Addr())
	if err := c.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	acts := sim.Actions()
	if len(acts) != 3 {
		t.Fatalf("got %d actions, want Login, Ping, Ping: %v", len(acts), acts)
	}
	login := acts[0]
	for k, want := range map[string]string{"Action": "Login", "Username": "admin", "Secret": "secret", "Events": "call"} {
		if got := login.Get(k); got != want {
			t.Errorf("Login %s = %q, want %q", k, got, want)
		}
	}
	if sim.Connections() != 1 {
		t.Errorf("connections = %d, want 1 shared connection", sim.Connections())
	}
}

func TestLoginFailed(t *testing.T) {
	sim := amisim.Start(t, amisim.Config{AuthFailDelay: 20 * time.Millisecond})
	c := newClient(t, sim.Addr(), func(cfg *Config) {
		cfg.Secret = "wrong"
		cfg.ReconnectMin = time.Hour // the second call must not dial again
		cfg.ReconnectMax = time.Hour
	})
	for range 2 {
		err := c.Ping(t.Context())
		var amiErr *Error
		if !errors.As(err, &amiErr) || amiErr.Message != "Authentication failed" || amiErr.Action != "Login" {
			t.Fatalf("err = %v, want Login: Authentication failed", err)
		}
	}
	if n := sim.Connections(); n != 1 {
		t.Errorf("connections = %d, want 1 (backoff after a refused login)", n)
	}
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := newClient(t, addr)
	err = c.Ping(t.Context())
	var ne *NetError
	if !errors.As(err, &ne) || ne.Timeout || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("err = %v, want unreachable NetError", err)
	}
}

func TestSilentServerTimesOut(t *testing.T) {
	sim := amisim.Start(t, amisim.Config{})
	short := func(cfg *Config) { cfg.ActionTimeout = 200 * time.Millisecond }

	t.Run("connected", func(t *testing.T) {
		c := newClient(t, sim.Addr(), short)
		if err := c.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
		sim.SetSilent(true)
		defer sim.SetSilent(false)
		err := c.Ping(t.Context())
		var ne *NetError
		if !errors.As(err, &ne) || !ne.Timeout || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want timeout", err)
		}
		if !strings.Contains(err.Error(), "timeout") {
			t.Errorf("message %q does not say timeout", err)
		}
	})
	t.Run("connecting", func(t *testing.T) {
		sim.SetSilent(true) // no banner either
		defer sim.SetSilent(false)
		c := newClient(t, sim.Addr(), short)
		err := c.Ping(t.Context())
		var ne *NetError
		if !errors.As(err, &ne) || !ne.Timeout {
			t.Fatalf("err = %v, want timeout", err)
		}
	})
	t.Run("caller deadline", func(t *testing.T) {
		c := newClient(t, sim.Addr()) // ActionTimeout 5s; the caller's 100ms wins
		if err := c.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
		sim.SetSilent(true)
		defer sim.SetSilent(false)
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		if err := c.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want deadline exceeded", err)
		}
	})
}

func TestReconnectAfterDrop(t *testing.T) {
	sim := amisim.Start(t, amisim.Config{})
	c := newClient(t, sim.Addr())
	if err := c.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	sim.DropConnections()
	// The client reconnects by itself, without a caller asking.
	eventually(t, "second login", func() bool { return sim.Logins() == 2 })
	if err := c.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestDropMidListThenReconnect(t *testing.T) {
	sim := amisim.Start(t, amisim.Config{})
	sim.AddChannel(amisim.Channel{Name: "SIP/100-00000001"})
	sim.AddChannel(amisim.Channel{Name: "SIP/101-00000002"})
	c := newClient(t, sim.Addr())
	sim.DropNextList()
	_, err := c.CoreShowChannels(t.Context())
	var ne *NetError
	if !errors.As(err, &ne) || ne.Timeout {
		t.Fatalf("err = %v, want connection lost", err)
	}
	chans, err := c.CoreShowChannels(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(chans) != 2 {
		t.Fatalf("got %d channels after reconnect, want 2", len(chans))
	}
	if sim.Logins() != 2 {
		t.Errorf("logins = %d, want 2", sim.Logins())
	}
}

func TestKeepalive(t *testing.T) {
	sim := amisim.Start(t, amisim.Config{})
	c := newClient(t, sim.Addr(), func(cfg *Config) { cfg.Keepalive = 10 * time.Millisecond })
	if err := c.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "keepalive pings", func() bool { return len(sim.ActionsNamed("Ping")) >= 3 })
}

func TestKeepaliveFindsSilentServer(t *testing.T) {
	sim := amisim.Start(t, amisim.Config{})
	c := newClient(t, sim.Addr(), func(cfg *Config) {
		cfg.Keepalive = 10 * time.Millisecond
		cfg.ActionTimeout = 200 * time.Millisecond
	})
	if err := c.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	sim.SetSilent(true)
	// The unanswered keepalive closes the connection; the client redials.
	eventually(t, "a new connection", func() bool { return sim.Connections() >= 2 })
	sim.SetSilent(false)
	eventually(t, "ping after recovery", func() bool { return c.Ping(t.Context()) == nil })
}

func TestConcurrentActionsAreCorrelated(t *testing.T) {
	sim := amisim.Start(t, amisim.Config{})
	sim.AddChannel(amisim.Channel{Name: "SIP/100-00000001"})
	const n = 100
	for i := range n {
		sim.SetCommand(fmt.Sprintf("echo %d", i), fmt.Sprintf("line %d\nsecond %d\n", i, i))
	}
	c := newClient(t, sim.Addr())
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			switch i % 3 {
			case 0, 1:
				out, err := c.Command(t.Context(), fmt.Sprintf("echo %d", i))
				if want := fmt.Sprintf("line %d\nsecond %d", i, i); err != nil || out != want {
					errs <- fmt.Errorf("echo %d: %q, %v", i, out, err)
				}
			case 2:
				chans, err := c.CoreShowChannels(t.Context())
				if err != nil || len(chans) != 1 {
					errs <- fmt.Errorf("CoreShowChannels: %v, %v", chans, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if sim.Connections() != 1 {
		t.Errorf("connections = %d, want 1", sim.Connections())
	}
}

func TestEventFloodDoesNotBlockAnswers(t *testing.T) {
	sim := amisim.Start(t, amisim.Config{})
	c := newClient(t, sim.Addr(), func(cfg *Config) { cfg.EventBuffer = 8 })
	if err := c.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	const flood = 5000
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range flood {
			sim.Inject(amisim.Msg("Event", "Newstate", "Privilege", "call,all", "Seq", fmt.Sprint(i)))
		}
	})
	for range 50 {
		wg.Go(func() {
			if err := c.Ping(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// Answers come in order after the events sent before them, so once this
	// Ping is answered every event has been handled.
	if err := c.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := c.EventsDropped(); got != flood-8 {
		t.Errorf("dropped = %d, want %d (buffer of 8, nobody reading)", got, flood-8)
	}
	// The newest events are the ones kept.
	select {
	case ev := <-c.Events():
		if ev.Get("Seq") != fmt.Sprint(flood-8) {
			t.Errorf("oldest kept event = %v, want Seq %d", ev, flood-8)
		}
	default:
		t.Error("no event kept")
	}
}

func TestNoiseBetweenAnswers(t *testing.T) {
	sim := amisim.Start(t, amisim.Config{})
	sim.SetNoise(3)
	sim.AddChannel(amisim.Channel{Name: "SIP/100-00000001"})
	c := newClient(t, sim.Addr())
	for range 3 {
		chans, err := c.CoreShowChannels(t.Context())
		if err != nil || len(chans) != 1 {
			t.Fatalf("CoreShowChannels = %v, %v", chans, err)
		}
	}
	select {
	case ev := <-c.Events():
		if ev.Get("Event") != "Newstate" {
			t.Errorf("event = %v, want Newstate noise", ev)
		}
	default:
		t.Error("no noise event reached Events()")
	}
}

func TestCRLFRefused(t *testing.T) {
	sim := amisim.Start(t, amisim.Config{})
	c := newClient(t, sim.Addr())
	ctx := t.Context()
	calls := map[string]func() error{
		"Command": func() error { _, err := c.Command(ctx, "core show version\r\nAction: Logoff"); return err },
		"Hangup":  func() error { return c.Hangup(ctx, "SIP/100-1\nAction: Logoff") },
		"Hangup regex": func() error {
			_, err := c.HangupMatching(ctx, "x\r")
			return err
		},
		"Originate CallerID": func() error {
			_, err := c.Originate(ctx, OriginateRequest{Channel: "Local/1@cb", Context: "cb", Exten: "2", CallerID: "a\r\nAction: Hangup"})
			return err
		},
		"Originate variable": func() error {
			_, err := c.Originate(ctx, OriginateRequest{Channel: "Local/1@cb", Context: "cb", Exten: "2", Variables: map[string]string{"A": "1\n2"}})
			return err
		},
		"Originate variable name": func() error {
			_, err := c.Originate(ctx, OriginateRequest{Channel: "Local/1@cb", Context: "cb", Exten: "2", Variables: map[string]string{"A=B": "1"}})
			return err
		},
		"too long": func() error { _, err := c.Command(ctx, strings.Repeat("x", 2000)); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ErrInvalidValue) {
			t.Errorf("%s: err = %v, want ErrInvalidValue", name, err)
		}
	}
	if acts := sim.Actions(); len(acts) != 0 {
		t.Errorf("simulator received %v, want nothing", acts)
	}
}

func TestEvents(t *testing.T) {
	sim := amisim.Start(t, amisim.Config{})
	c := newClient(t, sim.Addr(), func(cfg *Config) { cfg.Events = "on" })
	if err := c.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ev := <-c.Events(); ev.Get("Event") != "FullyBooted" {
		t.Fatalf("first event = %v, want FullyBooted", ev)
	}
	sim.Inject(amisim.Msg("Event", "PeerStatus", "Privilege", "system,all", "Peer", "SIP/100", "PeerStatus", "Reachable"))
	if ev := <-c.Events(); ev.Get("Peer") != "SIP/100" {
		t.Fatalf("event = %v", ev)
	}
}

func TestClosedClient(t *testing.T) {
	sim := amisim.Start(t, amisim.Config{})
	c := newClient(t, sim.Addr())
	if err := c.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := c.Ping(t.Context()); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
	eventually(t, "Logoff", func() bool { return len(sim.ActionsNamed("Logoff")) == 1 })
}

func TestManager(t *testing.T) {
	sim := amisim.Start(t, amisim.Config{})
	m := NewManager(WithActionTimeout(5*time.Second), WithKeepalive(-1))
	defer m.Close()
	sc := ServerConfig{Name: "sip1", Address: sim.Addr(), Username: "admin", Secret: "secret"}
	a, b := m.Server(sc), m.Server(sc)
	if a != b {
		t.Fatal("same server gave two clients")
	}
	if err := a.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if a.cfg.ActionTimeout != 5*time.Second {
		t.Errorf("option not applied: %v", a.cfg.ActionTimeout)
	}
	sc.Secret = "changed"
	c := m.Server(sc)
	if c == a {
		t.Fatal("changed secret kept the old client")
	}
	if err := a.Ping(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("replaced client: err = %v, want ErrClosed", err)
	}
	m.Close()
	if err := c.Ping(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("after Manager.Close: err = %v, want ErrClosed", err)
	}
}

func TestDefaults(t *testing.T) {
	cfg := Config{}.withDefaults()
	// DECISIONS §7: a silent Asterisk is answered within 10 s by the API.
	if cfg.ActionTimeout >= 10*time.Second {
		t.Errorf("default ActionTimeout %v leaves the API no room", cfg.ActionTimeout)
	}
	if cfg.Events != "call" || cfg.Keepalive <= 0 || cfg.EventBuffer <= 0 {
		t.Errorf("defaults = %+v", cfg)
	}
}

func TestBackoff(t *testing.T) {
	c := New(Config{ReconnectMin: 100 * time.Millisecond, ReconnectMax: time.Second})
	var got []time.Duration
	for c.failures = 1; c.failures <= 6; c.failures++ {
		got = append(got, c.backoff())
	}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("backoff = %v, want %v ms", got, want)
		}
	}
}

func TestReconnectAfterRestart(t *testing.T) {
	sim := amisim.Start(t, amisim.Config{})
	addr := sim.Addr()
	c := newClient(t, addr)
	if err := c.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	sim.Close()
	// Down: callers get an unreachable error, not a hang.
	eventually(t, "unreachable error", func() bool {
		var ne *NetError
		return errors.As(c.Ping(t.Context()), &ne) && !ne.Timeout
	})
	// Back up: the background reconnect logs in without any caller.
	sim2 := amisim.Start(t, amisim.Config{Address: addr})
	eventually(t, "login after restart", func() bool { return sim2.Logins() == 1 })
	if err := c.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
}
