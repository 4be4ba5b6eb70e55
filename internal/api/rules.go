package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/edgewise-iot/edgewise/internal/rules"
)

// Rules manages rules; *rules.Manager satisfies it.
type Rules interface {
	Create(ctx context.Context, r rules.Rule) (rules.Rule, error)
	Update(ctx context.Context, r rules.Rule) (rules.Rule, error)
	Delete(ctx context.Context, name string) error
	Get(ctx context.Context, name string) (rules.Rule, error)
	List(ctx context.Context) []rules.Rule
	SetEnabled(ctx context.Context, name string, enabled bool) (rules.Rule, error)
	Stats(ctx context.Context, name string) (rules.RuleStats, error)
	Apply(ctx context.Context, defs []rules.Definition) (rules.ApplyResult, error)
}

func (a *API) rulesRoutes() {
	if a.opts.Rules == nil {
		return
	}
	a.handle("POST /api/v1/rules", a.rulesErr(a.createRule))
	a.handle("GET /api/v1/rules", a.rulesErr(a.listRules))
	a.handle("POST /api/v1/rules/apply", a.rulesErr(a.applyRules))
	a.handle("GET /api/v1/rules/{name}", a.rulesErr(a.getRule))
	a.handle("PUT /api/v1/rules/{name}", a.rulesErr(a.updateRule))
	a.handle("DELETE /api/v1/rules/{name}", a.rulesErr(a.deleteRule))
	a.handle("POST /api/v1/rules/{name}/enable", a.rulesErr(a.enableRule(true)))
	a.handle("POST /api/v1/rules/{name}/disable", a.rulesErr(a.enableRule(false)))
	a.handle("GET /api/v1/rules/{name}/stats", a.rulesErr(a.ruleStats))
}

// rulesErr maps the rule manager's errors to HTTP errors; SQL errors
// carry their line and column.
func (a *API) rulesErr(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		err := h(w, r)
		var se *rules.SQLError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &se):
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{
				"code": "invalid_sql", "message": se.Error(), "line": se.Line, "column": se.Column}})
			return nil
		case errors.Is(err, rules.ErrNotFound):
			return notFound("%v", err)
		case errors.Is(err, rules.ErrExists):
			return &httpError{http.StatusConflict, "conflict", err.Error()}
		case errors.Is(err, rules.ErrInvalid):
			return badRequest("%v", err)
		case errors.Is(err, rules.ErrClosed):
			return &httpError{http.StatusServiceUnavailable, "unavailable", "the server is shutting down"}
		}
		return err
	}
}

func (a *API) createRule(w http.ResponseWriter, r *http.Request) error {
	var d rules.Definition
	if err := decodeBody(w, r, &d); err != nil {
		return err
	}
	rule, err := a.opts.Rules.Create(r.Context(), d.Rule())
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/rules/"+rule.Name)
	writeJSON(w, http.StatusCreated, rule.Redact())
	return nil
}

func (a *API) listRules(w http.ResponseWriter, r *http.Request) error {
	list := a.opts.Rules.List(r.Context())
	for i := range list {
		list[i] = list[i].Redact()
	}
	writeJSON(w, http.StatusOK, map[string]any{"rules": list})
	return nil
}

func (a *API) getRule(w http.ResponseWriter, r *http.Request) error {
	rule, err := a.opts.Rules.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rule.Redact()) // secrets are never sent back
	return nil
}

func (a *API) updateRule(w http.ResponseWriter, r *http.Request) error {
	var d rules.Definition
	if err := decodeBody(w, r, &d); err != nil {
		return err
	}
	name := r.PathValue("name")
	if d.Name != "" && d.Name != name {
		return badRequest("the body names rule %q but the URL %q (rules cannot be renamed)", d.Name, name)
	}
	d.Name = name
	rule, err := a.opts.Rules.Update(r.Context(), d.Rule())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rule.Redact()) // secrets are never sent back
	return nil
}

func (a *API) deleteRule(w http.ResponseWriter, r *http.Request) error {
	if err := a.opts.Rules.Delete(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) enableRule(enabled bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		rule, err := a.opts.Rules.SetEnabled(r.Context(), r.PathValue("name"), enabled)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, rule.Redact()) // secrets are never sent back
		return nil
	}
}

func (a *API) ruleStats(w http.ResponseWriter, r *http.Request) error {
	st, err := a.opts.Rules.Stats(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (a *API) applyRules(w http.ResponseWriter, r *http.Request) error {
	var f rules.File
	if err := decodeBody(w, r, &f); err != nil {
		return err
	}
	res, err := a.opts.Rules.Apply(r.Context(), f.Rules)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
