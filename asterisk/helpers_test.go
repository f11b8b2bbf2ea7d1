package asterisk

import (
	"testing"
	"time"

	"github.com/narayana/narayanad/asterisk/amisim"
)

// newClient returns a Client for addr with test-sized timeouts; edit tweaks
// the config. The client is closed when the test ends.
func newClient(t *testing.T, addr string, edit ...func(*Config)) *Client {
	t.Helper()
	cfg := Config{
		Address:       addr,
		Username:      amisim.DefaultUsername,
		Secret:        amisim.DefaultSecret,
		ActionTimeout: 5 * time.Second, // generous: -race on 2 cores is slow
		Keepalive:     -1,
		ReconnectMin:  10 * time.Millisecond,
		ReconnectMax:  100 * time.Millisecond,
	}
	for _, e := range edit {
		e(&cfg)
	}
	c := New(cfg)
	t.Cleanup(func() { c.Close() })
	return c
}

// eventually polls cond until it holds, failing after a generous bound. It
// waits for things that happen in the background (a reconnect, a keepalive);
// it does not assert how long they take.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("never happened: %s", what)
}
