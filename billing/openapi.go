package billing

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/narayana/narayanad/money"
)

// The OpenAPI 3.1 document of the API (DECISIONS §8), written from the method table like
// docs/METHODS.md: one path per method, GET and POST alike, with its access level
// (x-access-level) and its arguments as query parameters. Methods added by Lua scripts
// are not in it (docs/EXTENSIONS.md).

// OpenAPIJSON is docs/openapi.json: the document of the built-in method table.
func OpenAPIJSON() []byte {
	return New(nil, DefaultConfig(), nil).Methods.OpenAPI()
}

// serveOpenAPI answers GET /openapi.json.
func (s *Service) serveOpenAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, s.Methods.OpenAPI())
}

type (
	oaDoc struct {
		OpenAPI    string            `json:"openapi"`
		Info       oaInfo            `json:"info"`
		Paths      map[string]oaPath `json:"paths"`
		Components oaComponents      `json:"components"`
	}
	oaInfo struct {
		Title       string `json:"title"`
		Version     string `json:"version"`
		Description string `json:"description"`
	}
	oaPath struct {
		Parameters []oaParam `json:"parameters"`
		Get        oaOp      `json:"get"`
		Post       oaOp      `json:"post"`
	}
	oaOp struct {
		OperationID string           `json:"operationId"`
		Summary     string           `json:"summary"`
		Description string           `json:"description"`
		Parameters  []oaParam        `json:"parameters,omitempty"`
		Responses   map[string]oaRef `json:"responses"`
		Level       int              `json:"x-access-level"`
		AllowLocked bool             `json:"x-allow-locked,omitempty"`
	}
	oaParam struct {
		Ref         string   `json:"$ref,omitempty"`
		Name        string   `json:"name,omitempty"`
		In          string   `json:"in,omitempty"`
		Description string   `json:"description,omitempty"`
		Required    bool     `json:"required,omitempty"`
		Schema      *oaSchem `json:"schema,omitempty"`
	}
	oaSchem struct {
		Type    string   `json:"type,omitempty"`
		Enum    []string `json:"enum,omitempty"`
		Minimum *int64   `json:"minimum,omitempty"`
		Maximum *int64   `json:"maximum,omitempty"`
		Default any      `json:"default,omitempty"`
	}
	oaRef struct {
		Ref string `json:"$ref"`
	}
	oaComponents struct {
		Parameters map[string]oaParam `json:"parameters"`
		Responses  map[string]any     `json:"responses"`
		Schemas    map[string]any     `json:"schemas"`
	}
)

// apiPath is the route of a method in the document; the daemon also serves version 2.3.
func apiPath(method string) string { return "/billing/api/2.2/{apikey}/" + method }

// OpenAPI writes the table as an OpenAPI 3.1 document (JSON, indented, sorted keys).
func (t Table) OpenAPI() []byte {
	doc := oaDoc{
		OpenAPI: "3.1.0",
		Info: oaInfo{
			Title:   "Narayana Billing API",
			Version: "2.2",
			Description: "Every method answers GET and POST alike, with its arguments in the query string " +
				"or, for POST, in a form, multipart or JSON body. A session's access token (login) stands in for login and password: " +
				"`token` in a POST body or an `Authorization: Bearer` header, never in the query string. The answer is the Envelope; x-access-level " +
				"is the lowest effective access level that may call the method. Conventions: docs/API.md.",
		},
		Paths: map[string]oaPath{},
		Components: oaComponents{
			Parameters: map[string]oaParam{
				"apikey": {Name: "apikey", In: "path", Required: true, Schema: &oaSchem{Type: "string"},
					Description: "the API key"},
				"login": {Name: "login", In: "query", Schema: &oaSchem{Type: "string"},
					Description: "who asks: matched on the key's auth_by (a server key needs no password)"},
				"password": {Name: "password", In: "query", Schema: &oaSchem{Type: "string"},
					Description: "the md5 hex of the user's web password (client keys)"},
				"username": {Name: "username", In: "query", Schema: &oaSchem{Type: "string"},
					Description: "the user the call is made for, one the caller manages (default: the caller)"},
			},
			Responses: map[string]any{
				"Answer": oaResponse("the answer: result true and the method's response, or result false " +
					"and an error code"),
				"BadRequest": oaResponse("E_INCORRECT_API_VERSION, E_UNKNOWN_METHOD, E_MISSING_ARGUMENT or " +
					"E_INVALID_ARGUMENT"),
				"Unauthorized": oaResponse("E_UNAUTHORIZED: an unknown, disabled or revoked key"),
				"Forbidden": oaResponse("E_FORBIDDEN: a banned address, one the key does not allow, or " +
					"plain HTTP for a secure_only key"),
			},
			Schemas: map[string]any{
				"Envelope": map[string]any{
					"type":     "object",
					"required": []string{"result", "response"},
					"properties": map[string]any{
						"result":      map[string]any{"type": "boolean"},
						"response":    map[string]any{"description": "the method's answer, or the error code when result is false"},
						"description": map[string]any{"type": "string", "description": "why, on errors only"},
					},
				},
			},
		},
	}
	shared := []oaParam{{Ref: "#/components/parameters/apikey"}, {Ref: "#/components/parameters/login"},
		{Ref: "#/components/parameters/password"}, {Ref: "#/components/parameters/username"}}
	responses := map[string]oaRef{
		"200": {"#/components/responses/Answer"}, "400": {"#/components/responses/BadRequest"},
		"401": {"#/components/responses/Unauthorized"}, "403": {"#/components/responses/Forbidden"},
	}
	for _, m := range t.Sorted() {
		op := oaOp{OperationID: m.Name, Summary: m.Summary, Description: "Answers " + m.Answers + ".",
			Responses: responses, Level: m.Level, AllowLocked: m.AllowLocked}
		for _, a := range m.Args {
			// An argument named like a shared parameter (deleteTicket's username) overrides it.
			op.Parameters = append(op.Parameters, oaParam{Name: a.Name, In: "query", Required: a.Required,
				Schema: a.schema()})
		}
		post := op
		post.OperationID = m.Name + "Post"
		doc.Paths[apiPath(m.Name)] = oaPath{Parameters: shared, Get: op, Post: post}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		panic("billing: the OpenAPI document does not encode: " + err.Error())
	}
	return b.Bytes()
}

func oaResponse(description string) map[string]any {
	envelope := map[string]any{"schema": oaRef{"#/components/schemas/Envelope"}}
	return map[string]any{
		"description": description,
		"content": map[string]any{
			"application/json": envelope,
			// keys whose auth_by is in api_plain_answer get the response alone
			"text/plain": map[string]any{"schema": map[string]string{"type": "string"}},
		},
	}
}

// schema is the argument's JSON Schema: its type, a ustring's values, money's bounds and
// the default as a value of that type.
func (a Arg) schema() *oaSchem {
	s := &oaSchem{}
	switch a.Type {
	case String:
		s.Type = "string"
	case UString:
		s.Type, s.Enum = "string", a.Values
	case Num:
		s.Type = "number"
	case Int:
		s.Type = "integer"
	case Money:
		lo, hi := int64(0), int64(money.MaxAmount/money.One)
		s.Type, s.Minimum, s.Maximum = "number", &lo, &hi
	case Bool:
		s.Type = "boolean"
	}
	if !a.HasDefault {
		return s
	}
	switch a.Type {
	case Num, Int, Money:
		s.Default = json.Number(a.Default)
	case Bool:
		s.Default, _ = parseBool(a.Default)
	default:
		s.Default = a.Default
	}
	return s
}
