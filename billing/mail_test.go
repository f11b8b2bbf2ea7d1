package billing

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/db/dbtest"
)

// mailbox is what a real SMTP server (go-smtp) on loopback received.
type mailbox struct {
	mu   sync.Mutex
	msgs []gotMail
}

type gotMail struct {
	From string
	To   []string
	Data []byte
	TLS  bool // the message came over TLS (STARTTLS or implicit)
}

func (b *mailbox) all() []gotMail {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]gotMail(nil), b.msgs...)
}

type smtpBackend struct{ box *mailbox }

func (be smtpBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &smtpSession{box: be.box, conn: c}, nil
}

type smtpSession struct {
	box  *mailbox
	conn *smtp.Conn
	cur  gotMail
}

func (s *smtpSession) Reset()        { s.cur = gotMail{} }
func (s *smtpSession) Logout() error { return nil }
func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	s.cur.From = from
	return nil
}
func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.To = append(s.cur.To, to)
	return nil
}
func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, s.cur.TLS = s.conn.TLSConnectionState()
	s.cur.Data = b
	s.box.mu.Lock()
	s.box.msgs = append(s.box.msgs, s.cur)
	s.box.mu.Unlock()
	return nil
}

// selfSigned makes a certificate for 127.0.0.1 and writes it as the CA file the daemon
// trusts (smtp_ca_file).
func selfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smtp test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	kb, _ := x509.MarshalECPrivateKey(key)
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return cert, file
}

// smtpTest is a test SMTP server: mode none (plain), starttls (offers STARTTLS) or tls
// (implicit TLS on the port).
type smtpTest struct {
	box    *mailbox
	addr   string
	cert   tls.Certificate
	caFile string
	srv    *smtp.Server
}

// newSMTPTest reserves a loopback port for a server that is not yet up.
func newSMTPTest(t *testing.T) *smtpTest {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	st := &smtpTest{box: &mailbox{}, addr: addr}
	st.cert, st.caFile = selfSigned(t)
	t.Cleanup(st.stop)
	return st
}

func (st *smtpTest) start(t *testing.T, mode string) {
	t.Helper()
	srv := smtp.NewServer(smtpBackend{st.box})
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port was just freed by a stopped server
		if ln, err = net.Listen("tcp", st.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{st.cert}}
	switch mode {
	case "starttls":
		srv.TLSConfig = tlsCfg
	case "tls":
		srv.TLSConfig = tlsCfg
		ln = tls.NewListener(ln, tlsCfg)
	}
	st.srv = srv
	go srv.Serve(ln)
}

func (st *smtpTest) stop() {
	if st.srv != nil {
		st.srv.Close()
		st.srv = nil
	}
}

// configure points cfg at the test server.
func (st *smtpTest) configure(cfg *Config, mode string) {
	host, port, _ := net.SplitHostPort(st.addr)
	cfg.SMTPHost = host
	cfg.SMTPPort, _ = strconv.Atoi(port)
	cfg.SMTPTLS = mode
	cfg.SMTPFrom = "billing@operator.example"
	cfg.SMTPCAFile = st.caFile
}

// mailEnv is newEnv with settings changed (mail, rates, invoices).
func mailEnv(t *testing.T, d *db.DB, set func(*Config)) *env {
	t.Helper()
	cfg := testConfig()
	set(&cfg)
	if err := Bootstrap(context.Background(), d, cfg, adminName, md5hex("adminpw"), webKey); err != nil {
		t.Fatal(err)
	}
	s := New(d, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return &env{t: t, s: s, h: s.Handler(), web: webKey}
}

// readMail is a received message: its recipients, subject, text and attachments.
type readMail struct {
	To, Subject, Text, MessageID string
	Attachments                  map[string][]byte
	TLS                          bool
}

func parseMail(t *testing.T, g gotMail) readMail {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(g.Data))
	if err != nil {
		t.Fatal(err)
	}
	var dec mime.WordDecoder
	subj, err := dec.DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	out := readMail{To: strings.Join(g.To, ","), Subject: subj, MessageID: m.Header.Get("Message-Id"),
		Attachments: map[string][]byte{}, TLS: g.TLS}
	mt, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	decode := func(enc string, r io.Reader) []byte {
		switch strings.ToLower(enc) {
		case "base64":
			r = base64.NewDecoder(base64.StdEncoding, r)
		case "quoted-printable":
			r = quotedprintable.NewReader(r)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if !strings.HasPrefix(mt, "multipart/") {
		out.Text = string(decode(m.Header.Get("Content-Transfer-Encoding"), m.Body))
		return out
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		body := decode(p.Header.Get("Content-Transfer-Encoding"), p)
		if name := p.FileName(); name != "" {
			out.Attachments[name] = body
		} else {
			out.Text += string(body)
		}
	}
	return out
}

// pdfText renders a PDF to text with poppler's pdftotext; ok is false when it is not
// installed (Debian: poppler-utils; .ci/run installs it).
func pdfText(t *testing.T, pdf []byte) (string, bool) {
	t.Helper()
	bin, err := exec.LookPath("pdftotext")
	if err != nil {
		return "", false
	}
	file := filepath.Join(t.TempDir(), "doc.pdf")
	if err := os.WriteFile(file, pdf, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-layout", file, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	return string(out), true
}

func outboxCount(t *testing.T, e *env, status int) int {
	t.Helper()
	var n int
	if err := e.s.DB.Q().Get(context.Background(), &n, `SELECT COUNT(*) FROM outbox WHERE status = ?`, status); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestMailServerDownThenUp: a message queued while the SMTP server is down is kept,
// retried with backoff, and sent once after the server comes back, by a daemon started
// afterwards (a restart); a further restart sends nothing again. STARTTLS with a
// self-signed certificate trusted through smtp_ca_file.
func TestMailServerDownThenUp(t *testing.T) {
	dbtest.EachEmpty(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		st := newSMTPTest(t)
		e := mailEnv(t, d, func(c *Config) { st.configure(c, "starttls") })
		e.register(admin(), "ivan", 11, "language", "russian", "balance", "10")
		e.ok(e.do(e.web, "updateAccount", admin("username", "ivan", "billing_email", "ivan@example.com",
			"billing_name", "Иван Петров")))
		clock := time.Now()
		e.s.Now = func() time.Time { return clock }

		pdfOf(t, e, "monthlyInvoice", user("ivan")) // email defaults to true
		if n := outboxCount(t, e, outboxQueued); n != 1 {
			t.Fatalf("%d queued, want 1", n)
		}
		res, err := e.s.SendMail(ctx) // the server is down
		if err != nil || res.Sent != 0 || res.Retry != 1 {
			t.Fatalf("send while down: %+v %v", res, err)
		}
		// Not due again before its backoff.
		if res, _ := e.s.SendMail(ctx); res.Retry != 0 {
			t.Fatalf("retried before the backoff: %+v", res)
		}
		st2, err := e.s.Status(ctx)
		if err != nil || st2.Outbox.Queued != 1 || st2.Outbox.Sent != 0 {
			t.Fatalf("status: %+v %v", st2, err)
		}

		// The server comes back; a new daemon on the same database (a restart) sends it.
		st.start(t, "starttls")
		again := New(d, e.s.Config, e.s.Log)
		again.Now = func() time.Time { return clock.Add(mailBackoff(1) + time.Second) }
		if res, err := again.SendMail(ctx); err != nil || res.Sent != 1 {
			t.Fatalf("send after the server came back: %+v %v", res, err)
		}
		third := New(d, e.s.Config, e.s.Log)
		third.Now = func() time.Time { return clock.Add(time.Hour) }
		if res, err := third.SendMail(ctx); err != nil || res.Sent != 0 {
			t.Fatalf("a second restart sent again: %+v %v", res, err)
		}
		got := st.box.all()
		if len(got) != 1 {
			t.Fatalf("%d messages arrived, want 1", len(got))
		}
		m := parseMail(t, got[0])
		if m.To != "ivan@example.com" || !m.TLS || got[0].From != "billing@operator.example" {
			t.Fatalf("message: to %q from %q tls %v", m.To, got[0].From, m.TLS)
		}
		if !strings.HasPrefix(m.Subject, "Счёт ") || !strings.Contains(m.Text, "Здравствуйте, Иван Петров") {
			t.Fatalf("not in russian: %q %q", m.Subject, m.Text)
		}
		var pdf []byte
		for name, b := range m.Attachments {
			if strings.HasSuffix(name, ".pdf") {
				pdf = b
			}
		}
		if !bytes.HasPrefix(pdf, []byte("%PDF")) {
			t.Fatalf("no PDF attached: %v", m.Attachments)
		}
		if text, ok := pdfText(t, pdf); ok && !strings.Contains(text, "Иван Петров") {
			t.Fatalf("the attached PDF lacks the billing name:\n%s", text)
		}
		if st3, _ := e.s.Status(ctx); st3.Outbox.Sent != 1 || st3.Outbox.Queued != 0 {
			t.Fatalf("status after: %+v", st3.Outbox)
		}
	})
}

// TestMailImplicitTLSAndTickets: smtp_tls = tls talks TLS from the first byte (port 465
// style); a ticket answer reaches a user with notify_ticket 1, in english, once.
func TestMailImplicitTLSAndTickets(t *testing.T) {
	dbtest.EachEmpty(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		st := newSMTPTest(t)
		st.start(t, "tls")
		e := mailEnv(t, d, func(c *Config) { st.configure(c, "tls") })
		e.register(admin(), "alice", 11)
		e.updateUser("alice", "notify_email", "alice@example.com", "notify_ticket", "1")
		id := e.ok(e.do(e.web, "createTicket", user("alice", "subject", "No sound", "message", "help")))
		ticket := fmt.Sprint(id.Response)
		e.ok(e.do(e.web, "createTicket", admin("ticket", ticket, "message", "Fixed it")))
		// alice writing in her own ticket tells her nothing.
		e.ok(e.do(e.web, "createTicket", user("alice", "ticket", ticket, "message", "thanks")))
		if res, err := e.s.SendMail(ctx); err != nil || res.Sent != 1 {
			t.Fatalf("send: %+v %v", res, err)
		}
		got := st.box.all()
		if len(got) != 1 {
			t.Fatalf("%d messages, want 1", len(got))
		}
		m := parseMail(t, got[0])
		if m.To != "alice@example.com" || !m.TLS || !strings.HasPrefix(m.Subject, "New answer in ticket #"+ticket) ||
			!strings.Contains(m.Text, "Fixed it") {
			t.Fatalf("ticket notice: %+v", m)
		}
	})
}

// TestMailOff: without smtp_host nothing is queued or mailed, and the daemon says once
// that mail is off.
func TestMailOff(t *testing.T) {
	dbtest.EachEmpty(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d)
		e.register(admin(), "alice", 11)
		e.updateUser("alice", "notify_email", "alice@example.com", "notify_ticket", "1",
			"notify_balance", "1", "notify_balance_limit", "100")
		pdfOf(t, e, "monthlyInvoice", user("alice", "email", "true"))
		if _, err := e.s.RunMaintenance(context.Background(), "test"); err != nil {
			t.Fatal(err)
		}
		if n := outboxCount(t, e, outboxQueued); n != 0 {
			t.Fatalf("%d messages queued with mail off", n)
		}
		var log bytes.Buffer
		cfg := testConfig()
		cfg.MaintenanceInterval = 0
		s, err := Start(context.Background(), d, cfg, slog.New(slog.NewTextHandler(&log, nil)))
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if n := strings.Count(log.String(), "mail is off"); n != 1 {
			t.Fatalf("mail-off lines: %d\n%s", n, log.String())
		}
	})
}
