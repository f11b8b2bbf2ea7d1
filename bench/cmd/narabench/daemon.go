package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// daemon is a running `narayanad serve`.
type daemon struct {
	cmd     *exec.Cmd
	pid     int
	addr    string
	logPath string
	exited  chan error
}

// startDaemon starts `bin serve` on a free loopback port, its log going to a file, and
// waits until /healthz answers.
func startDaemon(ctx context.Context, bin, dsn, logPath string) (*daemon, time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, 0, err
	}
	addr := ln.Addr().String()
	ln.Close()
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, 0, err
	}
	cmd := exec.Command(bin, "serve", "--db", dsn, "--listen", addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, 0, err
	}
	d := &daemon{cmd: cmd, pid: cmd.Process.Pid, addr: addr, logPath: logPath, exited: make(chan error, 1)}
	go func() { d.exited <- cmd.Wait(); logf.Close() }()
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case err := <-d.exited:
			d.exited <- err
			return nil, 0, fmt.Errorf("narayanad serve exited: %v\n%s", err, tail(logPath, 20))
		case <-ctx.Done():
			d.stop()
			return nil, 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if resp, err := client.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d, time.Since(t0), nil
			}
		}
		if time.Since(t0) > 3*time.Minute {
			d.stop()
			return nil, 0, errors.New("narayanad serve never became healthy")
		}
	}
}

// stop sends SIGTERM and waits for the exit (killing the process after 30 s).
func (d *daemon) stop() error {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		d.exited <- err
		return err
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		return errors.New("narayanad did not stop within 30 s of SIGTERM; killed")
	}
}

func (d *daemon) base() string { return "http://" + d.addr }

// errorLines counts the daemon log's ERROR lines and returns the first.
func (d *daemon) errorLines() (int, string) {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return 0, ""
	}
	n, first := 0, ""
	for _, l := range bytes.Split(b, []byte("\n")) {
		if bytes.Contains(l, []byte("level=ERROR")) {
			if n == 0 {
				first = string(l)
			}
			n++
		}
	}
	return n, first
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// userHZ is the kernel's clock tick for /proc times (USER_HZ, 100 on Linux).
const userHZ = 100

// procCPU is the process's user + system CPU time, from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; the fields after it are plain.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * time.Second / userHZ, nil
}

// procMem is the process's resident set and its peak, in KiB, from /proc/PID/status.
func procMem(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		name, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch name {
		case "VmRSS":
			rss, _ = strconv.ParseInt(f[0], 10, 64)
		case "VmHWM":
			hwm, _ = strconv.ParseInt(f[0], 10, 64)
		}
	}
	return rss, hwm, nil
}

// selfCPU is this process's own CPU time (the load generator's share of the cores).
// postgresCPU is the CPU time of every process named postgres on this machine: the
// server's backends, writers and WAL writer (and any other user's of the same server).
func postgresCPU() time.Duration {
	procs, _ := filepath.Glob("/proc/[0-9]*/comm")
	var sum time.Duration
	for _, f := range procs {
		if b, err := os.ReadFile(f); err != nil || strings.TrimSpace(string(b)) != "postgres" {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		if err != nil {
			continue
		}
		if c, err := procCPU(pid); err == nil {
			sum += c
		}
	}
	return sum
}

// cpuMark is the CPU used so far by this process (the load generator) and PostgreSQL's.
type cpuMark struct{ self, server time.Duration }

func markCPU() cpuMark { return cpuMark{selfCPU(), postgresCPU()} }

// since sets p's load-generator and server CPU per operation since m.
func (m cpuMark) since(p *phase) {
	if p.Ops > 0 {
		p.GenCPU = (selfCPU() - m.self) / time.Duration(p.Ops)
		p.ServerCPU = (postgresCPU() - m.server) / time.Duration(p.Ops)
	}
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countLines counts the lines of a file that contain s.
func countLines(path, s string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte(s))
}
