package billing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// TestOpenAPI: GET /openapi.json, through the real router, answers the committed
// docs/openapi.json; kin-openapi loads it as OpenAPI 3.1 and finds it valid; and it holds
// every method of the table with its level and its arguments' types, defaults and
// obligatory flags.
func TestOpenAPI(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("GET /openapi.json: %d %q", rec.Code, rec.Header().Get("Content-Type"))
		}
		committed, err := os.ReadFile("../docs/openapi.json")
		if err != nil {
			t.Fatal(err)
		}
		if rec.Body.String() != string(committed) {
			t.Fatal("GET /openapi.json differs from docs/openapi.json: run UPDATE_DOCS=1 go test ./billing -run TestGeneratedDocs")
		}

		doc, err := openapi3.NewLoader().LoadFromData(rec.Body.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if !doc.IsOpenAPI31OrLater() {
			t.Fatalf("openapi %q: want 3.1", doc.OpenAPI)
		}
		if err := doc.Validate(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got, want := doc.Paths.Len(), len(e.s.Methods); got != want {
			t.Errorf("%d paths for %d methods", got, want)
		}
		for _, m := range e.s.Methods.Sorted() {
			item := doc.Paths.Value("/billing/api/2.2/{apikey}/" + m.Name)
			if item == nil || item.Get == nil || item.Post == nil {
				t.Errorf("%s: no GET and POST path", m.Name)
				continue
			}
			for _, op := range []*openapi3.Operation{item.Get, item.Post} {
				if lvl, _ := op.Extensions["x-access-level"].(float64); int(lvl) != m.Level || op.Summary != m.Summary {
					t.Errorf("%s: x-access-level %v, summary %q; want %d, %q", m.Name, op.Extensions["x-access-level"],
						op.Summary, m.Level, m.Summary)
				}
				checkOpenAPIArgs(t, m, op)
			}
		}
	})
}

func checkOpenAPIArgs(t *testing.T, m *Method, op *openapi3.Operation) {
	t.Helper()
	types := map[ArgType]string{String: "string", UString: "string", Num: "number", Int: "integer",
		Money: "number", Bool: "boolean"}
	if len(op.Parameters) != len(m.Args) {
		t.Errorf("%s: %d parameters for %d arguments", m.Name, len(op.Parameters), len(m.Args))
		return
	}
	for i, a := range m.Args {
		p := op.Parameters[i].Value
		s := p.Schema.Value
		if p.Name != a.Name || p.In != "query" || p.Required != a.Required || !s.Type.Is(types[a.Type]) ||
			len(s.Enum) != len(a.Values) || (s.Default != nil) != a.HasDefault {
			t.Errorf("%s: parameter %+v (schema %v, default %v) does not match argument %+v", m.Name, p, s.Type,
				s.Default, a)
		}
		if a.Type == Money && (s.Min == nil || *s.Min != 0 || s.Max == nil || *s.Max != 100_000_000) {
			t.Errorf("%s: %s: money is a number from 0 to 100000000", m.Name, a.Name)
		}
	}
}
