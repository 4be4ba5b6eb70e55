package apiclient

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/edgewise-iot/edgewise/internal/rules"
)

func rulePath(name string) string { return "/api/v1/rules/" + url.PathEscape(name) }

// CreateRule creates a rule.
func (c *Client) CreateRule(ctx context.Context, d rules.Definition) (rules.Rule, error) {
	var r rules.Rule
	err := c.do(ctx, http.MethodPost, "/api/v1/rules", d, &r)
	return r, err
}

// UpdateRule replaces a rule's definition.
func (c *Client) UpdateRule(ctx context.Context, d rules.Definition) (rules.Rule, error) {
	var r rules.Rule
	err := c.do(ctx, http.MethodPut, rulePath(d.Name), d, &r)
	return r, err
}

// GetRule reads one rule.
func (c *Client) GetRule(ctx context.Context, name string) (rules.Rule, error) {
	var r rules.Rule
	err := c.do(ctx, http.MethodGet, rulePath(name), nil, &r)
	return r, err
}

// ListRules lists all rules.
func (c *Client) ListRules(ctx context.Context) ([]rules.Rule, error) {
	var out struct {
		Rules []rules.Rule `json:"rules"`
	}
	err := c.do(ctx, http.MethodGet, "/api/v1/rules", nil, &out)
	return out.Rules, err
}

// DeleteRule deletes a rule.
func (c *Client) DeleteRule(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, rulePath(name), nil, nil)
}

// SetRuleEnabled enables or disables a rule.
func (c *Client) SetRuleEnabled(ctx context.Context, name string, enabled bool) (rules.Rule, error) {
	verb := "/disable"
	if enabled {
		verb = "/enable"
	}
	var r rules.Rule
	err := c.do(ctx, http.MethodPost, rulePath(name)+verb, nil, &r)
	return r, err
}

// RuleStats returns a rule's counters as the server sent them.
func (c *Client) RuleStats(ctx context.Context, name string) (json.RawMessage, error) {
	var raw json.RawMessage
	err := c.do(ctx, http.MethodGet, rulePath(name)+"/stats", nil, &raw)
	return raw, err
}

// ApplyRules creates or updates rules so they match defs.
func (c *Client) ApplyRules(ctx context.Context, defs []rules.Definition) (rules.ApplyResult, error) {
	var res rules.ApplyResult
	err := c.do(ctx, http.MethodPost, "/api/v1/rules/apply", rules.File{Rules: defs}, &res)
	return res, err
}
