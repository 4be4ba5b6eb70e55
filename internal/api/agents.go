package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/edgewise-iot/edgewise/internal/edge/agents"
	"github.com/edgewise-iot/edgewise/internal/rules"
)

// Agents manages edge agents' central rule sets; *agents.Service satisfies
// it.
type Agents interface {
	List(ctx context.Context) ([]agents.Agent, error)
	Get(ctx context.Context, name string) (agents.Agent, error)
	PutRules(ctx context.Context, name string, defs []rules.Definition, ifVersion int64) (agents.Agent, error)
	Delete(ctx context.Context, name string) error
}

func (a *API) agentRoutes() {
	if a.opts.Agents == nil {
		return
	}
	a.handle("GET /api/v1/agents", a.agentsErr(a.listAgents))
	a.handle("GET /api/v1/agents/{name}", a.agentsErr(a.getAgent))
	a.handle("DELETE /api/v1/agents/{name}", a.agentsErr(a.deleteAgent))
	a.handle("GET /api/v1/agents/{name}/rules", a.agentsErr(a.getAgentRules))
	a.handle("PUT /api/v1/agents/{name}/rules", a.agentsErr(a.putAgentRules))
}

func (a *API) agentsErr(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		err := h(w, r)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, agents.ErrNotFound):
			return notFound("%v", err)
		case errors.Is(err, agents.ErrInvalid):
			return badRequest("%v", err)
		case errors.Is(err, agents.ErrConflict):
			return &httpError{http.StatusConflict, "conflict", err.Error()}
		}
		return err
	}
}

func (a *API) listAgents(w http.ResponseWriter, r *http.Request) error {
	agents, err := a.opts.Agents.List(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"agents": agents})
	return nil
}

func (a *API) getAgent(w http.ResponseWriter, r *http.Request) error {
	ag, err := a.opts.Agents.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ag)
	return nil
}

func (a *API) deleteAgent(w http.ResponseWriter, r *http.Request) error {
	if err := a.opts.Agents.Delete(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// agentRules is the body of GET and PUT /api/v1/agents/{name}/rules: the
// rules file shape plus the version (ignored on PUT; if_version, when
// given, must match the current version).
type agentRules struct {
	Agent     string             `json:"agent,omitempty"`
	Version   int64              `json:"version,omitempty"`
	IfVersion *int64             `json:"if_version,omitempty"`
	Rules     []rules.Definition `json:"rules"`
}

func (a *API) getAgentRules(w http.ResponseWriter, r *http.Request) error {
	ag, err := a.opts.Agents.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	if ag.Rules == nil {
		ag.Rules = []rules.Definition{}
	}
	writeJSON(w, http.StatusOK, agentRules{Agent: ag.Name, Version: ag.RulesVersion, Rules: ag.Rules})
	return nil
}

func (a *API) putAgentRules(w http.ResponseWriter, r *http.Request) error {
	var req agentRules
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	if req.Rules == nil {
		return badRequest("body needs \"rules\": a list of rule definitions (an empty list removes every central rule)")
	}
	ifVersion := int64(-1)
	if req.IfVersion != nil {
		ifVersion = *req.IfVersion
	}
	ag, err := a.opts.Agents.PutRules(r.Context(), r.PathValue("name"), req.Rules, ifVersion)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ag)
	return nil
}
