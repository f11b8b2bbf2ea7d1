package lua

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// carrierRuntime loads the examples folder with an HTTP client whose every request for
// the examples' hosts (sms.example.com, hlr.example.com) reaches srv, a real TLS server
// on loopback: the scripts run unchanged.
func carrierRuntime(t *testing.T, srv *httptest.Server) *Runtime {
	t.Helper()
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}
	tr.TLSClientConfig.ServerName = "example.com" // the name httptest's certificate holds
	rt, err := New(Options{Dir: "examples", Logger: quietLogger(), PollInterval: -1, Timeout: 5 * time.Second,
		HTTPAllow: []string{"sms.example.com", "hlr.example.com"}, HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatalf("loading examples: %v", err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

func TestExampleHTTPSMSProvider(t *testing.T) {
	var mu sync.Mutex
	var got []url.Values
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		mu.Lock()
		got = append(got, r.PostForm)
		mu.Unlock()
		if r.Host != "sms.example.com" || r.URL.Path != "/v1/messages" || r.Method != http.MethodPost {
			http.Error(w, "ERR wrong place", http.StatusNotFound)
			return
		}
		if r.PostForm.Get("to") == "79990000000" {
			io.WriteString(w, "ERR blacklisted number")
			return
		}
		io.WriteString(w, "OK msg-"+r.PostForm.Get("to"))
	}))
	defer srv.Close()
	rt := carrierRuntime(t, srv)
	ctx := context.Background()

	v, err := rt.CallHandler(ctx, "sms", "webprovider", map[string]any{"method": "send", "to": "79010000001",
		"from": "Narayana", "text": "Grüße & 100% = ok"})
	if err != nil || !sameID(v, "msg-79010000001") {
		t.Fatalf("send = %v, %v", v, err)
	}
	if f := got[0]; f.Get("text") != "Grüße & 100% = ok" || f.Get("from") != "Narayana" || f.Get("key") != "CHANGE-ME" {
		t.Errorf("the provider got %v", f)
	}
	if _, err := rt.CallHandler(ctx, "sms", "webprovider", map[string]any{"method": "send", "to": "79990000000",
		"from": "x", "text": "x"}); Code(err) != "E_CARRIER_ERROR" || !strings.Contains(err.Error(), "blacklisted") {
		t.Errorf("refused send: %v", err)
	}
	v, err = rt.CallHandler(ctx, "sms", "webprovider", map[string]any{"method": "report",
		"params": map[string]any{"message_id": "msg-1", "state": "DELIVRD"}})
	if m, ok := v.(map[string]any); err != nil || !ok || m["id"] != "msg-1" || m["status"] != "DELIVRD" {
		t.Errorf("report = %v, %v", v, err)
	}
	srv.Close()
	if _, err := rt.CallHandler(ctx, "sms", "webprovider", map[string]any{"method": "send", "to": "1", "from": "x",
		"text": "x"}); Code(err) != "E_CARRIER_ERROR" {
		t.Errorf("provider down: %v", err)
	}
}

func sameID(v any, want string) bool {
	m, ok := v.(map[string]any)
	return ok && m["id"] == want
}

func TestExampleHLRLookup(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "hlr.example.com" || r.Header.Get("Authorization") != "Bearer CHANGE-ME" {
			http.Error(w, "{}", http.StatusUnauthorized)
			return
		}
		switch r.URL.Query().Get("number") {
		case "79010000001":
			io.WriteString(w, `{"status": "ok", "imsi": "250991234567890", "mcc": "250", "mnc": "99", "lac": 4021}`)
		case "79010000002":
			io.WriteString(w, `{"status": "unknown_subscriber"}`)
		default:
			http.Error(w, "{}", http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	rt := carrierRuntime(t, srv)
	ctx := context.Background()
	v, err := rt.CallHandler(ctx, "sms", "hlrlookup", map[string]any{"method": "hlr", "to": "79010000001"})
	if err != nil || v != "OK,250991234567890,250,99,4021" {
		t.Fatalf("hlr = %v, %v", v, err)
	}
	if _, err := rt.CallHandler(ctx, "sms", "hlrlookup", map[string]any{"method": "hlr", "to": "79010000002"}); Code(err) != "E_INVALID_SMS_TO" {
		t.Errorf("unknown subscriber: %v", err)
	}
	if _, err := rt.CallHandler(ctx, "sms", "hlrlookup", map[string]any{"method": "hlr", "to": "79010000003"}); Code(err) != "E_CARRIER_ERROR" {
		t.Errorf("service error: %v", err)
	}
	if _, err := rt.CallHandler(ctx, "sms", "hlrlookup", map[string]any{"method": "send", "to": "79010000001"}); Code(err) != "E_CARRIER_ERROR" {
		t.Errorf("send through the HLR handler: %v", err)
	}
}
