package asterisk

import (
	"log/slog"
	"sync"
	"time"
)

// ServerConfig names one SIP server's manager interface.
type ServerConfig struct {
	Name     string
	Address  string // host:port
	Username string
	Secret   string
}

// Option sets a Config field for every Client a Manager creates.
type Option func(*Config)

// WithActionTimeout bounds connecting plus one answer (default 8s).
func WithActionTimeout(d time.Duration) Option { return func(c *Config) { c.ActionTimeout = d } }

// WithKeepalive sets the Ping interval (default 30s; negative disables).
func WithKeepalive(d time.Duration) Option { return func(c *Config) { c.Keepalive = d } }

// WithReconnect sets the reconnect backoff bounds (default 500ms to 30s).
func WithReconnect(minDelay, maxDelay time.Duration) Option {
	return func(c *Config) { c.ReconnectMin, c.ReconnectMax = minDelay, maxDelay }
}

// WithEvents sets the Login Events header (default "call").
func WithEvents(events string) Option { return func(c *Config) { c.Events = events } }

// WithEventBuffer sets how many unsolicited events each Client keeps.
func WithEventBuffer(n int) Option { return func(c *Config) { c.EventBuffer = n } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(c *Config) { c.Logger = l } }

// Manager holds one lazily opened, shared Client per SIP server, keyed by
// server name. It is safe for concurrent use.
type Manager struct {
	opts []Option

	mu      sync.Mutex
	clients map[string]*Client
	closed  bool
}

// NewManager returns a Manager whose Clients are configured by opts.
func NewManager(opts ...Option) *Manager {
	return &Manager{opts: opts, clients: make(map[string]*Client)}
}

// Server returns the Client of the named server, creating it on first use.
// When the address or credentials changed (the server was edited), the old
// Client is closed and replaced. After Close it returns a closed Client.
func (m *Manager) Server(sc ServerConfig) *Client {
	m.mu.Lock()
	old := m.clients[sc.Name]
	if old != nil && old.cfg.Address == sc.Address && old.cfg.Username == sc.Username && old.cfg.Secret == sc.Secret {
		m.mu.Unlock()
		return old
	}
	cfg := Config{Address: sc.Address, Username: sc.Username, Secret: sc.Secret}
	for _, o := range m.opts {
		o(&cfg)
	}
	c := New(cfg)
	if m.closed {
		c.Close()
	} else {
		m.clients[sc.Name] = c
	}
	m.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return c
}

// Close closes every Client.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.closed = true
	clients := m.clients
	m.clients = make(map[string]*Client)
	m.mu.Unlock()
	for _, c := range clients {
		c.Close()
	}
	return nil
}

// Connected reports, for each server a Client was made for, whether its manager session
// is up (for the daemon's metrics).
func (m *Manager) Connected() map[string]bool {
	m.mu.Lock()
	clients := make(map[string]*Client, len(m.clients))
	for name, c := range m.clients {
		clients[name] = c
	}
	m.mu.Unlock()
	up := make(map[string]bool, len(clients))
	for name, c := range clients {
		up[name] = c.Connected()
	}
	return up
}
