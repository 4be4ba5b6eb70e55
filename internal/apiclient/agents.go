package apiclient

import (
	"context"
	"net/http"
	"net/url"

	"github.com/edgewise-iot/edgewise/internal/edge/agents"
	"github.com/edgewise-iot/edgewise/internal/rules"
)

// AgentRules is an agent's central rule set.
type AgentRules struct {
	Agent     string             `json:"agent,omitempty"`
	Version   int64              `json:"version,omitempty"`
	IfVersion *int64             `json:"if_version,omitempty"`
	Rules     []rules.Definition `json:"rules"`
}

// ListAgents returns every edge agent the server knows.
func (c *Client) ListAgents(ctx context.Context) ([]agents.Agent, error) {
	var out struct {
		Agents []agents.Agent `json:"agents"`
	}
	err := c.do(ctx, http.MethodGet, "/api/v1/agents", nil, &out)
	return out.Agents, err
}

// GetAgent returns one agent: desired rule set and reported status.
func (c *Client) GetAgent(ctx context.Context, name string) (agents.Agent, error) {
	var out agents.Agent
	err := c.do(ctx, http.MethodGet, "/api/v1/agents/"+url.PathEscape(name), nil, &out)
	return out, err
}

// GetAgentRules returns an agent's central rule set.
func (c *Client) GetAgentRules(ctx context.Context, name string) (AgentRules, error) {
	var out AgentRules
	err := c.do(ctx, http.MethodGet, "/api/v1/agents/"+url.PathEscape(name)+"/rules", nil, &out)
	return out, err
}

// SetAgentRules stores a new version of an agent's rule set and pushes it
// to the agent; ifVersion (when not nil) must be the current version.
func (c *Client) SetAgentRules(ctx context.Context, name string, defs []rules.Definition, ifVersion *int64) (agents.Agent, error) {
	if defs == nil {
		defs = []rules.Definition{}
	}
	var out agents.Agent
	err := c.do(ctx, http.MethodPut, "/api/v1/agents/"+url.PathEscape(name)+"/rules", AgentRules{Rules: defs, IfVersion: ifVersion}, &out)
	return out, err
}

// DeleteAgent forgets an agent and clears its retained rule set.
func (c *Client) DeleteAgent(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/agents/"+url.PathEscape(name), nil, nil)
}
