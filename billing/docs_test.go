package billing

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strings"
	"testing"
)

// TestGeneratedDocs fails when a committed document generated from a table is stale.
// UPDATE_DOCS=1 rewrites them.
func TestGeneratedDocs(t *testing.T) {
	for path, want := range map[string]string{
		"../contrib/narayana.conf": SampleConfig(),
		"../docs/METHODS.md":       MethodsMarkdown(),
		"../docs/openapi.json":     string(OpenAPIJSON()),
	} {
		if os.Getenv("UPDATE_DOCS") != "" {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s is stale: run UPDATE_DOCS=1 go test ./billing -run TestGeneratedDocs", path)
		}
	}
}

// TestMethodsDocumented: every built-in method says in one line what it does and what it
// answers (the docs and the OpenAPI document print them), and every handler has a doc
// comment.
func TestMethodsDocumented(t *testing.T) {
	for _, m := range New(nil, DefaultConfig(), nil).Methods.Sorted() {
		if strings.TrimSpace(m.Summary) == "" || strings.TrimSpace(m.Answers) == "" {
			t.Errorf("%s has no summary or answer: declare it with .Doc(what it does, what it answers)", m.Name)
		}
		if strings.Contains(m.Summary+m.Answers, "\n") {
			t.Errorf("%s: the summary and the answer are one line each", m.Name)
		}
	}
	files, err := parser.ParseDir(token.NewFileSet(), ".", func(fi os.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	handlers := 0
	for _, pkg := range files {
		for name, f := range pkg.Files {
			for _, d := range f.Decls {
				fn, ok := d.(*ast.FuncDecl)
				if !ok || !isHandler(fn) {
					continue
				}
				handlers++
				if fn.Doc == nil {
					t.Errorf("%s: handler %s has no doc comment", name, fn.Name.Name)
				}
			}
		}
	}
	if handlers < 100 {
		t.Fatalf("found %d handlers: the test no longer recognises them", handlers)
	}
}

// isHandler reports whether fn is a method of Service with the Handler signature.
func isHandler(fn *ast.FuncDecl) bool {
	if fn.Recv == nil || len(fn.Recv.List) != 1 || fn.Type.Params.NumFields() != 1 || fn.Type.Results.NumFields() != 2 {
		return false
	}
	recv, ok := fn.Recv.List[0].Type.(*ast.StarExpr)
	if !ok || !isIdent(recv.X, "Service") {
		return false
	}
	param, ok := fn.Type.Params.List[0].Type.(*ast.StarExpr)
	res := fn.Type.Results.List
	return ok && isIdent(param.X, "Request") && isIdent(res[0].Type, "any") && isIdent(res[len(res)-1].Type, "error")
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}

// TestSampleConfigReads: the sample, with every setting uncommented, is a configuration
// narayanad accepts and gives the defaults.
func TestSampleConfigReads(t *testing.T) {
	text := strings.ReplaceAll(SampleConfig(), "\n#", "\n")
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		// A setting without a default stays unset: "tls_listen =" would set it empty.
		if strings.HasSuffix(l, " =") || strings.HasPrefix(l, " ") {
			continue
		}
		lines = append(lines, l)
	}
	c := DefaultConfig()
	c.Currency = "USD"
	if err := c.ReadConfig(strings.NewReader(strings.Join(lines, "\n")), "narayana.conf"); err != nil {
		t.Fatal(err)
	}
	if c.Currency != DefaultConfig().Currency || c.MaxCallTime != DefaultConfig().MaxCallTime {
		t.Fatalf("the sample does not set the defaults: %+v", c)
	}
	for _, o := range Options {
		if !strings.Contains(SampleConfig(), "\n#"+o.Name+" =") {
			t.Errorf("the sample lacks %s", o.Name)
		}
	}
}

// TestDialplanTimeouts: every context of the sample dialplan that calls the billing sets
// CURL's connect and response timeouts first (func_curl waits 180 s by default), and the
// fallback is a [globals] setting.
func TestDialplanTimeouts(t *testing.T) {
	b, err := os.ReadFile("../contrib/asterisk/extensions.conf")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, want := range []string{"\nBILLING_FALLBACK=deny\n", "\nBILLING_CONNECT_TIMEOUT=", "\nBILLING_TIMEOUT="} {
		if !strings.Contains(text, want) {
			t.Errorf("the dialplan's [globals] lack %q", strings.TrimSpace(want))
		}
	}
	// Each extension ("exten =>" and its "same =>" lines) that reaches CURL() sets both
	// options first; billing-finish runs on the channel billing-outbound set them on.
	var conn, resp, inherited bool
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			inherited = line == "[billing-finish]"
		}
		if strings.HasPrefix(line, "[") || strings.HasPrefix(line, "exten =>") {
			conn, resp = inherited, inherited
		}
		conn = conn || strings.Contains(line, "Set(CURLOPT(conntimeout)=")
		resp = resp || strings.Contains(line, "Set(CURLOPT(httptimeout)=")
		if strings.Contains(line, "${CURL(") && !(conn && resp) {
			t.Errorf("extensions.conf:%d calls CURL() without conntimeout and httptimeout set", n+1)
		}
	}
}
