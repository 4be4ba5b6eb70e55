package apiclient

import (
	"context"
	"encoding/json"
	"net/url"
)

// Do performs an authenticated request against path (with query) and
// decodes the JSON answer into out (a *json.RawMessage keeps it verbatim).
// API errors are *Error.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	return c.do(ctx, method, path, body, out)
}

// ShadowPath is the API path of a thing's shadow (name "" = classic).
func ShadowPath(thing, name string) string {
	p := "/api/v1/things/" + url.PathEscape(thing) + "/shadow"
	if name != "" {
		p += "?name=" + url.QueryEscape(name)
	}
	return p
}

// Shadow returns a shadow document verbatim.
func (c *Client) Shadow(ctx context.Context, thing, name string) (json.RawMessage, error) {
	var raw json.RawMessage
	err := c.do(ctx, "GET", ShadowPath(thing, name), nil, &raw)
	return raw, err
}

// UpdateShadow sends an AWS update document and returns the accepted one.
func (c *Client) UpdateShadow(ctx context.Context, thing, name string, doc json.RawMessage) (json.RawMessage, error) {
	var raw json.RawMessage
	err := c.do(ctx, "POST", ShadowPath(thing, name), doc, &raw)
	return raw, err
}

// DeleteShadow deletes a shadow.
func (c *Client) DeleteShadow(ctx context.Context, thing, name string) (json.RawMessage, error) {
	var raw json.RawMessage
	err := c.do(ctx, "DELETE", ShadowPath(thing, name), nil, &raw)
	return raw, err
}
