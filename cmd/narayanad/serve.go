package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/narayana/narayanad/billing"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/panel"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	dsn := dsnFlag(fs)
	config := fs.String("config", "", "configuration file (`name = value` lines)")
	listen := fs.String("listen", "", "HTTP listen address (default from config, else 127.0.0.1:8080)")
	tlsListen := fs.String("tls-listen", "", "HTTPS listen address")
	tlsCert := fs.String("tls-cert", "", "TLS certificate file")
	tlsKey := fs.String("tls-key", "", "TLS key file")
	scripts := fs.String("scripts", "", "folder of Lua extension scripts")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*config)
	if err != nil {
		return err
	}
	// Flags win over the environment (read by loadConfig), which wins over the file.
	for name, v := range map[string]string{"listen": *listen, "tls_listen": *tlsListen, "tls_cert": *tlsCert,
		"tls_key": *tlsKey, "scripts_dir": *scripts} {
		if v != "" {
			if err := cfg.Set(name, v); err != nil {
				return err
			}
		}
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log, logw := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	defer logw.Close() // deferred first, so it runs last: every line written, nothing lost on exit

	d, err := openChecked(ctx, *dsn)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := cfg.CheckCurrency(ctx, d); err != nil {
		return err
	}
	svc, err := billing.Start(ctx, d, cfg, log)
	if err != nil {
		return err
	}
	defer svc.Close()

	// Listen before serving, so a busy port fails at once.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	handler := svc.Handler()
	if cfg.PanelKey != "" {
		handler = withPanel(handler, panel.New(svc, cfg.PanelKey))
	}
	servers := []*http.Server{newHTTPServer(handler, log)}
	listeners := []net.Listener{ln}
	if cfg.TLSListen != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("tls: %w", err)
		}
		tln, err := net.Listen("tcp", cfg.TLSListen)
		if err != nil {
			ln.Close()
			return err
		}
		listeners = append(listeners, tls.NewListener(tln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
		servers = append(servers, newHTTPServer(handler, log))
	}
	if cfg.PprofListen != "" {
		pln, err := net.Listen("tcp", cfg.PprofListen)
		if err != nil {
			return fmt.Errorf("pprof_listen: %w", err)
		}
		defer pln.Close()
		log.Info("profiling", "address", pln.Addr().String())
		go http.Serve(pln, pprofMux(d))
	}
	errc := make(chan error, len(servers))
	for i, srv := range servers {
		log.Info("listening", "address", listeners[i].Addr().String(), "tls", i > 0)
		go func(srv *http.Server, ln net.Listener) { errc <- srv.Serve(ln) }(srv, listeners[i])
	}
	fmt.Fprintf(stdout, "narayanad %s serving on http://%s\n", Version, ln.Addr())
	if cfg.PanelKey != "" {
		fmt.Fprintf(stdout, "web panel: http://%s%s\n", ln.Addr(), panel.Prefix)
	}

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// First signal: finish the requests in flight, for at most 30 s. A second signal
	// aborts them (litestream's rule): an operator who asks twice means it.
	log.Info("shutting down: finishing the requests in flight (a second signal aborts)")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	go func() {
		select {
		case <-again:
			log.Warn("second signal: aborting the requests in flight")
			cancel()
		case <-shutdownCtx.Done():
		}
	}()
	for _, srv := range servers {
		if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			for _, srv := range servers {
				srv.Close()
			}
			return fmt.Errorf("shutdown aborted: %w", err)
		}
	}
	return nil
}

// withPanel serves the web panel at /panel/ (and sends / there) beside the API.
func withPanel(api http.Handler, p http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(panel.Prefix, p)
	mux.Handle("GET /{$}", http.RedirectHandler(panel.Prefix, http.StatusSeeOther))
	mux.Handle("/", api)
	return mux
}

func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// pprofMux serves net/http/pprof's handlers, on their own listener rather than the API's,
// and /debug/groupcommit: the group commits so far and the jobs they held.
func pprofMux(d *db.DB) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/groupcommit", func(w http.ResponseWriter, _ *http.Request) {
		commits, jobs := d.GroupCommits()
		fmt.Fprintf(w, "commits %d\njobs %d\n", commits, jobs)
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
