package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPackaging runs `make install` into a staging folder and `make deb`, inspects the
// package and installs it with dpkg into a throwaway root, checks the systemd unit with
// systemd-analyze where the machine has them, and checks the Dockerfile's shape and the
// healthcheck command its HEALTHCHECK runs.
func TestPackaging(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and the package")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make on this machine")
	}
	stage := t.TempDir()
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	run("make", "install", "DESTDIR="+stage)
	for _, f := range []string{"usr/bin/narayanad", "etc/narayana/narayana.conf", "lib/systemd/system/narayanad.service",
		"usr/share/doc/narayanad/OPERATIONS.md", "usr/share/doc/narayanad/grafana-dashboard.json"} {
		if _, err := os.Stat(filepath.Join(stage, f)); err != nil {
			t.Errorf("make install: %v", err)
		}
	}
	if out := run(filepath.Join(stage, "usr/bin/narayanad"), "version"); !strings.HasPrefix(out, "narayanad ") {
		t.Fatalf("installed binary: %q", out)
	}
	unit, _ := os.ReadFile(filepath.Join(stage, "lib/systemd/system/narayanad.service"))
	for _, want := range []string{"ExecStart=/usr/bin/narayanad serve --config /etc/narayana/narayana.conf",
		"DynamicUser=yes", "StateDirectory=narayana", "ProtectSystem=strict", "NoNewPrivileges=yes"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("the unit lacks %q", want)
		}
	}
	// A second install keeps an operator's settings.
	conf := filepath.Join(stage, "etc/narayana/narayana.conf")
	os.WriteFile(conf, []byte("listen = 0.0.0.0:8080\n"), 0o644)
	run("make", "install", "DESTDIR="+stage)
	if b, _ := os.ReadFile(conf); string(b) != "listen = 0.0.0.0:8080\n" {
		t.Fatalf("make install replaced the settings: %q", b)
	}
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		// The unit as installed, pointed at the staged binary (verify wants it to exist).
		u := filepath.Join(t.TempDir(), "narayanad.service")
		os.WriteFile(u, []byte(strings.ReplaceAll(string(unit), "/usr/bin/narayanad", filepath.Join(stage, "usr/bin/narayanad"))), 0o644)
		if out, err := exec.Command("systemd-analyze", "verify", u).CombinedOutput(); err != nil {
			t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
		}
	} else {
		t.Log("no systemd-analyze: the unit is not verified")
	}

	checkDockerfile(t, filepath.Join(root, "Dockerfile"))

	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("no dpkg-deb: the .deb is not built")
	}
	dist := t.TempDir()
	run("make", "deb", "DIST="+dist)
	debs, _ := filepath.Glob(filepath.Join(dist, "narayanad_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb made %v", debs)
	}
	info := run("dpkg-deb", "-I", debs[0])
	for _, want := range []string{"Package: narayanad", "Depends: libc6", "conffiles"} {
		if !strings.Contains(info, want) {
			t.Errorf("dpkg-deb -I lacks %q:\n%s", want, info)
		}
	}
	contents := run("dpkg-deb", "-c", debs[0])
	for _, want := range []string{"./usr/bin/narayanad", "./lib/systemd/system/narayanad.service", "./etc/narayana/narayana.conf"} {
		if !strings.Contains(contents, want) {
			t.Errorf("the package lacks %s:\n%s", want, contents)
		}
	}
	// Installed by dpkg into a root of its own: the files land and the binary runs.
	r := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		os.MkdirAll(filepath.Join(r, d), 0o755)
	}
	os.WriteFile(filepath.Join(r, "var/lib/dpkg/status"), nil, 0o644)
	run("dpkg", "--root="+r, "--force-depends", "--force-not-root", "-i", debs[0])
	if out := run(filepath.Join(r, "usr/bin/narayanad"), "version"); !strings.HasPrefix(out, "narayanad ") {
		t.Fatalf("the packaged binary: %q", out)
	}
	if !strings.Contains(run("dpkg", "--root="+r, "-s", "narayanad"), "Status: install ok installed") {
		t.Fatal("dpkg does not see the package installed")
	}
}

// checkDockerfile checks what docker build cannot be run here to show: two stages, a
// user that is not root, a HEALTHCHECK that runs `narayanad healthcheck`, the database on
// a volume.
func checkDockerfile(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var froms int
	var user, health, volume string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			froms++
		case "USER":
			user = fields[1]
		case "HEALTHCHECK":
			health = sc.Text()
		case "VOLUME":
			volume = sc.Text()
		}
	}
	if froms < 2 {
		t.Errorf("Dockerfile: %d stages, want a build stage and a runtime stage", froms)
	}
	if user == "" || strings.HasPrefix(user, "root") || strings.HasPrefix(user, "0") {
		t.Errorf("Dockerfile: runs as %q", user)
	}
	if !strings.Contains(health, `"healthcheck"`) {
		t.Errorf("Dockerfile: HEALTHCHECK %q does not run narayanad healthcheck", health)
	}
	if !strings.Contains(volume, "/var/lib/narayana") {
		t.Errorf("Dockerfile: no volume for the database")
	}
}

// TestHealthcheck: the command the container's HEALTHCHECK runs answers 0 for a healthy
// daemon and non-zero when none answers.
func TestHealthcheck(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	dsn := initSQLite(t, bin, dir)
	addr, stop := serveBin(t, bin, dsn)
	cmd := exec.Command(bin, "healthcheck")
	cmd.Env = append(os.Environ(), "NARAYANA_LISTEN="+addr)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("healthcheck of a healthy daemon: %v %s", err, out)
	}
	stop()
	if out, err := exec.Command(bin, "healthcheck", "--url", "http://"+addr+"/healthz").CombinedOutput(); err == nil {
		t.Fatalf("healthcheck with no daemon: %s", out)
	}
}
