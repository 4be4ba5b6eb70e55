package api

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"

	"github.com/edgewise-iot/edgewise/internal/fleet"
	"github.com/edgewise-iot/edgewise/internal/registry"
)

// Fleet is what the API needs of the registry for types, groups and
// attribute updates (internal/registry.Registry).
type Fleet interface {
	UpdateThing(ctx context.Context, name string, u registry.ThingUpdate) (registry.Thing, error)
	CreateType(ctx context.Context, t registry.ThingType) (registry.ThingType, error)
	GetType(ctx context.Context, name string) (registry.ThingType, error)
	ListTypes(ctx context.Context, p registry.ListPage) ([]registry.ThingType, string, error)
	UpdateType(ctx context.Context, name string, u registry.TypeUpdate) (registry.ThingType, error)
	DeleteType(ctx context.Context, name string) error
	CreateGroup(ctx context.Context, g registry.Group) (registry.Group, error)
	GetGroup(ctx context.Context, name string) (registry.Group, error)
	ListGroups(ctx context.Context, p registry.ListPage, parent string) ([]registry.Group, string, error)
	UpdateGroup(ctx context.Context, name string, u registry.GroupUpdate) (registry.Group, error)
	DeleteGroup(ctx context.Context, name string) error
	AddToGroup(ctx context.Context, group, thing string) error
	RemoveFromGroup(ctx context.Context, group, thing string) error
	GroupMembers(ctx context.Context, group string, p registry.ListPage) ([]string, string, error)
}

// Search is the fleet index (internal/fleet.Index).
type Search interface {
	Search(ctx context.Context, q string, limit int, after string) ([]fleet.ThingDoc, string, error)
	Count(ctx context.Context, q string) (int, error)
	Aggregate(ctx context.Context, q, field, typ string, size int) (fleet.Aggregation, error)
	GroupMembers(ctx context.Context, group string, limit int, after string) ([]fleet.ThingDoc, string, error)
	GroupsOf(ctx context.Context, thing string) ([]string, error)
}

func (a *API) fleetRoutes() {
	if a.opts.Fleet != nil {
		a.handle("PATCH /api/v1/things/{name}", a.patchThing)
		a.handle("GET /api/v1/thing-types", a.listTypes)
		a.handle("POST /api/v1/thing-types", a.createType)
		a.handle("GET /api/v1/thing-types/{name}", a.getType)
		a.handle("PATCH /api/v1/thing-types/{name}", a.patchType)
		a.handle("POST /api/v1/thing-types/{name}/deprecate", a.deprecateType(true))
		a.handle("POST /api/v1/thing-types/{name}/undeprecate", a.deprecateType(false))
		a.handle("DELETE /api/v1/thing-types/{name}", a.deleteType)
		a.handle("GET /api/v1/thing-groups", a.listGroups)
		a.handle("POST /api/v1/thing-groups", a.createGroup)
		a.handle("GET /api/v1/thing-groups/{name}", a.getGroup)
		a.handle("PATCH /api/v1/thing-groups/{name}", a.patchGroup)
		a.handle("DELETE /api/v1/thing-groups/{name}", a.deleteGroup)
		a.handle("GET /api/v1/thing-groups/{name}/children", a.groupChildren)
		a.handle("GET /api/v1/thing-groups/{name}/things", a.groupThings)
		a.handle("PUT /api/v1/thing-groups/{name}/things/{thing}", a.addToGroup)
		a.handle("DELETE /api/v1/thing-groups/{name}/things/{thing}", a.removeFromGroup)
	}
	if a.opts.Search != nil {
		a.handle("GET /api/v1/things/{name}/groups", a.thingGroups)
		a.handle("GET /api/v1/search/things", a.searchThings)
		a.handle("GET /api/v1/search/count", a.searchCount)
		a.handle("GET /api/v1/search/aggregate", a.searchAggregate)
	}
}

// encodeCursor and decodeCursor make list cursors opaque: clients pass
// back the "next" value they got, never build one.
func encodeCursor(s string) string {
	if s == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

func decodeCursor(s string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", badRequest("next %q is not a cursor returned by this API", s)
	}
	return string(b), nil
}

// page reads limit (1..1000) and next from the query string.
func page(r *http.Request) (limit int, after string, err error) {
	q := r.URL.Query()
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return 0, "", badRequest("limit %q must be an integer from 1 to 1000", s)
		}
		limit = n
	}
	if s := q.Get("next"); s != "" {
		if after, err = decodeCursor(s); err != nil {
			return 0, "", err
		}
	}
	return limit, after, nil
}

func fleetError(err error) error {
	switch {
	case errors.Is(err, registry.ErrConflict):
		return &httpError{http.StatusConflict, "conflict", err.Error()}
	case errors.Is(err, fleet.ErrInvalid):
		return badRequest("%v", err)
	case errors.Is(err, fleet.ErrNotFound):
		return notFound("%v", err)
	}
	return err
}

func (a *API) patchThing(w http.ResponseWriter, r *http.Request) error {
	var u registry.ThingUpdate
	if err := decodeBody(w, r, &u); err != nil {
		return err
	}
	t, err := a.opts.Fleet.UpdateThing(r.Context(), r.PathValue("name"), u)
	if err != nil {
		return fleetError(err)
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (a *API) listTypes(w http.ResponseWriter, r *http.Request) error {
	limit, after, err := page(r)
	if err != nil {
		return err
	}
	ts, next, err := a.opts.Fleet.ListTypes(r.Context(), registry.ListPage{Limit: limit, After: after})
	if err != nil {
		return err
	}
	if ts == nil {
		ts = []registry.ThingType{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"thing_types": ts, "next": encodeCursor(next)})
	return nil
}

func (a *API) createType(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name                 string   `json:"name"`
		Description          string   `json:"description"`
		SearchableAttributes []string `json:"searchable_attributes"`
	}
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	t, err := a.opts.Fleet.CreateType(r.Context(), registry.ThingType{Name: req.Name, Description: req.Description, SearchableAttributes: req.SearchableAttributes})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/thing-types/"+t.Name)
	writeJSON(w, http.StatusCreated, t)
	return nil
}

func (a *API) getType(w http.ResponseWriter, r *http.Request) error {
	t, err := a.opts.Fleet.GetType(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (a *API) patchType(w http.ResponseWriter, r *http.Request) error {
	var u registry.TypeUpdate
	if err := decodeBody(w, r, &u); err != nil {
		return err
	}
	t, err := a.opts.Fleet.UpdateType(r.Context(), r.PathValue("name"), u)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (a *API) deprecateType(dep bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		t, err := a.opts.Fleet.UpdateType(r.Context(), r.PathValue("name"), registry.TypeUpdate{Deprecated: &dep})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, t)
		return nil
	}
}

func (a *API) deleteType(w http.ResponseWriter, r *http.Request) error {
	if err := a.opts.Fleet.DeleteType(r.Context(), r.PathValue("name")); err != nil {
		return fleetError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listGroups(w http.ResponseWriter, r *http.Request) error {
	limit, after, err := page(r)
	if err != nil {
		return err
	}
	gs, next, err := a.opts.Fleet.ListGroups(r.Context(), registry.ListPage{Limit: limit, After: after}, r.URL.Query().Get("parent"))
	if err != nil {
		return err
	}
	if gs == nil {
		gs = []registry.Group{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"thing_groups": gs, "next": encodeCursor(next)})
	return nil
}

func (a *API) groupChildren(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if _, err := a.opts.Fleet.GetGroup(r.Context(), name); err != nil {
		return err
	}
	limit, after, err := page(r)
	if err != nil {
		return err
	}
	gs, next, err := a.opts.Fleet.ListGroups(r.Context(), registry.ListPage{Limit: limit, After: after}, name)
	if err != nil {
		return err
	}
	if gs == nil {
		gs = []registry.Group{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"thing_groups": gs, "next": encodeCursor(next)})
	return nil
}

func (a *API) createGroup(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name        string            `json:"name"`
		Parent      string            `json:"parent"`
		Description string            `json:"description"`
		Attributes  map[string]string `json:"attributes"`
		Query       string            `json:"query"`
	}
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	g, err := a.opts.Fleet.CreateGroup(r.Context(), registry.Group{Name: req.Name, Parent: req.Parent, Description: req.Description, Attributes: req.Attributes, Query: req.Query})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/thing-groups/"+g.Name)
	writeJSON(w, http.StatusCreated, g)
	return nil
}

func (a *API) getGroup(w http.ResponseWriter, r *http.Request) error {
	g, err := a.opts.Fleet.GetGroup(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, g)
	return nil
}

func (a *API) patchGroup(w http.ResponseWriter, r *http.Request) error {
	var u registry.GroupUpdate
	if err := decodeBody(w, r, &u); err != nil {
		return err
	}
	g, err := a.opts.Fleet.UpdateGroup(r.Context(), r.PathValue("name"), u)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, g)
	return nil
}

func (a *API) deleteGroup(w http.ResponseWriter, r *http.Request) error {
	if err := a.opts.Fleet.DeleteGroup(r.Context(), r.PathValue("name")); err != nil {
		return fleetError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// groupThings lists a group's things: a static group's direct members, or
// with recursive=true also those of its descendants; a dynamic group's
// current matches (with their connectivity).
func (a *API) groupThings(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	g, err := a.opts.Fleet.GetGroup(r.Context(), name)
	if err != nil {
		return err
	}
	limit, after, err := page(r)
	if err != nil {
		return err
	}
	recursive := false
	if s := r.URL.Query().Get("recursive"); s != "" {
		if recursive, err = strconv.ParseBool(s); err != nil {
			return badRequest("recursive %q must be true or false", s)
		}
	}
	if g.Dynamic() || recursive {
		if a.opts.Search == nil {
			return &httpError{http.StatusNotImplemented, "not_implemented", "fleet search is not enabled on this server"}
		}
		docs, next, err := a.opts.Search.GroupMembers(r.Context(), name, limit, after)
		if err != nil {
			return fleetError(err)
		}
		out := make([]string, len(docs))
		for i, d := range docs {
			out[i] = d.Name
		}
		writeJSON(w, http.StatusOK, map[string]any{"things": out, "next": encodeCursor(next)})
		return nil
	}
	ms, next, err := a.opts.Fleet.GroupMembers(r.Context(), name, registry.ListPage{Limit: limit, After: after})
	if err != nil {
		return err
	}
	if ms == nil {
		ms = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"things": ms, "next": encodeCursor(next)})
	return nil
}

func (a *API) addToGroup(w http.ResponseWriter, r *http.Request) error {
	if err := a.opts.Fleet.AddToGroup(r.Context(), r.PathValue("name"), r.PathValue("thing")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) removeFromGroup(w http.ResponseWriter, r *http.Request) error {
	if err := a.opts.Fleet.RemoveFromGroup(r.Context(), r.PathValue("name"), r.PathValue("thing")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) thingGroups(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if _, err := a.opts.Registry.GetThing(r.Context(), name); err != nil {
		return err
	}
	gs, err := a.opts.Search.GroupsOf(r.Context(), name)
	if err != nil {
		return err
	}
	if gs == nil {
		gs = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"thing_groups": gs})
	return nil
}

func (a *API) searchThings(w http.ResponseWriter, r *http.Request) error {
	limit, after, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query().Get("q")
	docs, next, err := a.opts.Search.Search(r.Context(), q, limit, after)
	if err != nil {
		return fleetError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"things": docs, "next": encodeCursor(next)})
	return nil
}

func (a *API) searchCount(w http.ResponseWriter, r *http.Request) error {
	n, err := a.opts.Search.Count(r.Context(), r.URL.Query().Get("q"))
	if err != nil {
		return fleetError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"count": n})
	return nil
}

func (a *API) searchAggregate(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	field, typ := q.Get("field"), q.Get("type")
	if field == "" {
		return badRequest("field is required (for example attributes.location or shadow.reported.temperature)")
	}
	if typ == "" {
		typ = fleet.AggStats
	}
	size := 0
	if s := q.Get("size"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return badRequest("size %q must be an integer", s)
		}
		size = n
	}
	agg, err := a.opts.Search.Aggregate(r.Context(), q.Get("q"), field, typ, size)
	if err != nil {
		return fleetError(err)
	}
	writeJSON(w, http.StatusOK, agg)
	return nil
}
