package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/edgewise-iot/edgewise/internal/policy"
)

// Policies stores policies; *policy.Store satisfies it.
type Policies interface {
	Create(ctx context.Context, name string, doc []byte) (policy.Policy, error)
	Update(ctx context.Context, name string, doc []byte) (policy.Policy, error)
	Get(ctx context.Context, name string) (policy.Policy, error)
	List(ctx context.Context, o policy.ListOptions) ([]policy.Policy, string, error)
	Delete(ctx context.Context, name string) error
	Attach(ctx context.Context, name string, t policy.Target) error
	Detach(ctx context.Context, name string, t policy.Target) error
	Attached(ctx context.Context, t policy.Target) ([]string, error)
	Targets(ctx context.Context, name string) ([]policy.Target, error)
}

func (a *API) policyRoutes() {
	if a.opts.Policies == nil {
		return
	}
	a.handle("POST /api/v1/policies", a.policiesErr(a.createPolicy))
	a.handle("GET /api/v1/policies", a.policiesErr(a.listPolicies))
	a.handle("GET /api/v1/policies/{name}", a.policiesErr(a.getPolicy))
	a.handle("PUT /api/v1/policies/{name}", a.policiesErr(a.updatePolicy))
	a.handle("DELETE /api/v1/policies/{name}", a.policiesErr(a.deletePolicy))
	a.handle("GET /api/v1/policies/{name}/targets", a.policiesErr(a.policyTargets))
	a.handle("POST /api/v1/policies/{name}/targets", a.policiesErr(a.attachPolicy))
	a.handle("DELETE /api/v1/policies/{name}/targets", a.policiesErr(a.detachPolicy))
}

func (a *API) policiesErr(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		err := h(w, r)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, policy.ErrNotFound):
			return notFound("%v", err)
		case errors.Is(err, policy.ErrExists), errors.Is(err, policy.ErrInUse):
			return &httpError{http.StatusConflict, "conflict", err.Error()}
		case errors.Is(err, policy.ErrInvalid):
			return badRequest("%v", err)
		}
		return err
	}
}

type policyJSON struct {
	policy.Policy
	Targets []policy.Target `json:"targets"`
}

func (a *API) createPolicy(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name     string          `json:"name"`
		Document json.RawMessage `json:"document"`
	}
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	if len(req.Document) == 0 {
		return badRequest("document is required (an AWS IoT policy document object)")
	}
	p, err := a.opts.Policies.Create(r.Context(), req.Name, req.Document)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, policyJSON{p, []policy.Target{}})
	return nil
}

func (a *API) updatePolicy(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Document json.RawMessage `json:"document"`
	}
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	if len(req.Document) == 0 {
		return badRequest("document is required")
	}
	if _, err := a.opts.Policies.Update(r.Context(), r.PathValue("name"), req.Document); err != nil {
		return err
	}
	return a.getPolicy(w, r)
}

func (a *API) listPolicies(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if kind := q.Get("target_kind"); kind != "" {
		names, err := a.opts.Policies.Attached(r.Context(), policy.Target{Kind: kind, Name: q.Get("target_name")})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"names": names})
		return nil
	}
	o := policy.ListOptions{After: q.Get("after")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return badRequest("limit %q must be a non-negative integer", s)
		}
		o.Limit = n
	}
	list, next, err := a.opts.Policies.List(r.Context(), o)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"policies": list, "next": next})
	return nil
}

func (a *API) getPolicy(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	p, err := a.opts.Policies.Get(r.Context(), name)
	if err != nil {
		return err
	}
	tg, err := a.opts.Policies.Targets(r.Context(), name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, policyJSON{p, tg})
	return nil
}

func (a *API) deletePolicy(w http.ResponseWriter, r *http.Request) error {
	if err := a.opts.Policies.Delete(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) policyTargets(w http.ResponseWriter, r *http.Request) error {
	tg, err := a.opts.Policies.Targets(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"targets": tg})
	return nil
}

// target reads {"kind", "name"} from the body, or kind and name from the
// query (DELETE requests often carry no body).
func target(w http.ResponseWriter, r *http.Request) (policy.Target, error) {
	q := r.URL.Query()
	if q.Get("kind") != "" {
		return policy.Target{Kind: q.Get("kind"), Name: q.Get("name")}, nil
	}
	var t policy.Target
	if err := decodeBody(w, r, &t); err != nil {
		return t, err
	}
	return t, nil
}

func (a *API) attachPolicy(w http.ResponseWriter, r *http.Request) error {
	t, err := target(w, r)
	if err != nil {
		return err
	}
	if err := a.opts.Policies.Attach(r.Context(), r.PathValue("name"), t); err != nil {
		return err
	}
	return a.getPolicy(w, r)
}

func (a *API) detachPolicy(w http.ResponseWriter, r *http.Request) error {
	t, err := target(w, r)
	if err != nil {
		return err
	}
	if err := a.opts.Policies.Detach(r.Context(), r.PathValue("name"), t); err != nil {
		return err
	}
	return a.getPolicy(w, r)
}
