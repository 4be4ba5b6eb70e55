package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/edgewise-iot/edgewise/internal/registry"
)

// Error is an error answer of the API.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (HTTP %d %s)", e.Message, e.Status, e.Code)
}

// Client talks to one server.
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
}

// New returns a client for baseURL (e.g. http://127.0.0.1:8080).
func New(baseURL, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, HTTP: &http.Client{Timeout: 60 * time.Second}}
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return fmt.Errorf("apiclient: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the server at %s: %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("apiclient: read response: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error.Code == "" {
			return &Error{Status: resp.StatusCode, Code: "http_error", Message: strings.TrimSpace(string(data))}
		}
		return &Error{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = append((*raw)[:0], data...)
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("apiclient: decode response: %w", err)
	}
	return nil
}

// CreateThing creates a thing and returns its one-time credentials.
func (c *Client) CreateThing(ctx context.Context, t registry.Thing) (registry.Thing, registry.Credentials, error) {
	var out struct {
		Thing       registry.Thing       `json:"thing"`
		Credentials registry.Credentials `json:"credentials"`
	}
	body := map[string]any{"name": t.Name, "type": t.Type, "attributes": t.Attributes}
	err := c.do(ctx, http.MethodPost, "/api/v1/things", body, &out)
	return out.Thing, out.Credentials, err
}

// GetThing reads one thing.
func (c *Client) GetThing(ctx context.Context, name string) (registry.Thing, error) {
	var t registry.Thing
	err := c.do(ctx, http.MethodGet, "/api/v1/things/"+url.PathEscape(name), nil, &t)
	return t, err
}

// ListThings lists one page of things.
func (c *Client) ListThings(ctx context.Context, o registry.ListOptions) ([]registry.Thing, string, error) {
	q := url.Values{}
	if o.Limit > 0 {
		q.Set("limit", fmt.Sprint(o.Limit))
	}
	if o.After != "" {
		q.Set("next", o.After) // the opaque cursor returned as next
	}
	if o.Type != "" {
		q.Set("type", o.Type)
	}
	var out struct {
		Things []registry.Thing `json:"things"`
		Next   string           `json:"next"`
	}
	err := c.do(ctx, http.MethodGet, "/api/v1/things?"+q.Encode(), nil, &out)
	return out.Things, out.Next, err
}

// DeleteThing deletes a thing.
func (c *Client) DeleteThing(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/things/"+url.PathEscape(name), nil, nil)
}

// ResetCredentials rotates a thing's password.
func (c *Client) ResetCredentials(ctx context.Context, name string) (registry.Credentials, error) {
	var out struct {
		Credentials registry.Credentials `json:"credentials"`
	}
	err := c.do(ctx, http.MethodPost, "/api/v1/things/"+url.PathEscape(name)+"/credentials", nil, &out)
	return out.Credentials, err
}

// State returns the thing's reported state document as JSON.
func (c *Client) State(ctx context.Context, name string) (json.RawMessage, error) {
	var raw json.RawMessage
	err := c.do(ctx, http.MethodGet, "/api/v1/things/"+url.PathEscape(name)+"/state", nil, &raw)
	return raw, err
}

// TelemetryQuery selects telemetry of one thing.
type TelemetryQuery struct {
	Field, Start, Stop, Every, Fn string
	Limit                         int
}

// Point is one returned value.
type Point struct {
	Time  time.Time `json:"time"`
	Value any       `json:"value"`
}

// Series is one returned series.
type Series struct {
	Field  string            `json:"field"`
	Tags   map[string]string `json:"tags"`
	Points []Point           `json:"points"`
}

// TelemetryResult is the API's answer to a telemetry query.
type TelemetryResult struct {
	Thing       string    `json:"thing"`
	Measurement string    `json:"measurement"`
	Start       time.Time `json:"start"`
	Stop        time.Time `json:"stop"`
	Every       string    `json:"every"`
	Fn          string    `json:"fn"`
	Series      []Series  `json:"series"`
}

// Telemetry queries a thing's telemetry.
func (c *Client) Telemetry(ctx context.Context, name string, tq TelemetryQuery) (TelemetryResult, error) {
	q := url.Values{}
	for k, v := range map[string]string{"field": tq.Field, "start": tq.Start, "stop": tq.Stop, "every": tq.Every, "fn": tq.Fn} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if tq.Limit > 0 {
		q.Set("limit", fmt.Sprint(tq.Limit))
	}
	var out TelemetryResult
	err := c.do(ctx, http.MethodGet, "/api/v1/things/"+url.PathEscape(name)+"/telemetry?"+q.Encode(), nil, &out)
	return out, err
}
