package api

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/edgewise-iot/edgewise/internal/shadow"
)

// Shadows reads and writes device shadows in the AWS IoT document shapes
// (internal/shadow.Service). Errors are *shadow.RequestError.
type Shadows interface {
	Get(ctx context.Context, thing, name string) ([]byte, error)
	Update(ctx context.Context, thing, name string, body []byte) ([]byte, error)
	Delete(ctx context.Context, thing, name string) ([]byte, error)
}

// NamedShadows lists a thing's named shadows (internal/shadow.Store).
type NamedShadows interface {
	Names(ctx context.Context, thing string) ([]string, error)
}

// deviceRoutes registers the shadow, command and job routes whose
// subsystems are configured.
func (a *API) deviceRoutes() {
	if a.opts.Shadows != nil {
		a.handle("GET /api/v1/things/{name}/shadow", a.getShadow)
		a.handle("POST /api/v1/things/{name}/shadow", a.updateShadow)
		a.handle("DELETE /api/v1/things/{name}/shadow", a.deleteShadow)
		a.handle("GET /api/v1/things/{name}/shadows", a.listShadows)
	}
	if a.opts.Commands != nil {
		a.commandRoutes()
	}
	if a.opts.Jobs != nil {
		a.jobRoutes()
	}
}

// shadowTarget validates the thing (it must exist) and the ?name= of a
// shadow request.
func (a *API) shadowTarget(r *http.Request) (thing, name string, err error) {
	thing = r.PathValue("name")
	name = r.URL.Query().Get("name")
	if err := shadow.ValidName(name); err != nil {
		return "", "", badRequest("%v", err)
	}
	if _, err := a.opts.Registry.GetThing(r.Context(), thing); err != nil {
		return "", "", err
	}
	return thing, name, nil
}

func (a *API) getShadow(w http.ResponseWriter, r *http.Request) error {
	thing, name, err := a.shadowTarget(r)
	if err != nil {
		return err
	}
	out, err := a.opts.Shadows.Get(r.Context(), thing, name)
	if err != nil {
		return shadowError(err)
	}
	writeRaw(w, http.StatusOK, out)
	return nil
}

func (a *API) updateShadow(w http.ResponseWriter, r *http.Request) error {
	thing, name, err := a.shadowTarget(r)
	if err != nil {
		return err
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/json" && !startsWith(ct, "application/json;") {
		return &httpError{http.StatusUnsupportedMediaType, "unsupported_media_type", "send the body as application/json"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, shadow.MaxRequestBytes))
	if err != nil {
		return err
	}
	out, err := a.opts.Shadows.Update(r.Context(), thing, name, body)
	if err != nil {
		return shadowError(err)
	}
	writeRaw(w, http.StatusOK, out)
	return nil
}

func (a *API) deleteShadow(w http.ResponseWriter, r *http.Request) error {
	thing, name, err := a.shadowTarget(r)
	if err != nil {
		return err
	}
	out, err := a.opts.Shadows.Delete(r.Context(), thing, name)
	if err != nil {
		return shadowError(err)
	}
	writeRaw(w, http.StatusOK, out)
	return nil
}

func (a *API) listShadows(w http.ResponseWriter, r *http.Request) error {
	thing := r.PathValue("name")
	if _, err := a.opts.Registry.GetThing(r.Context(), thing); err != nil {
		return err
	}
	ns, ok := a.opts.Shadows.(NamedShadows)
	if !ok {
		return notFound("named shadows are not listable on this server")
	}
	names, err := ns.Names(r.Context(), thing)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"thing": thing, "names": names})
	return nil
}

// shadowError maps a shadow protocol rejection to an API error.
func shadowError(err error) error {
	var re *shadow.RequestError
	if !errors.As(err, &re) {
		return err
	}
	code := map[int]string{400: "bad_request", 404: "not_found", 409: "conflict", 413: "payload_too_large", 503: "unavailable"}[re.Code]
	if code == "" {
		return err
	}
	return &httpError{re.Code, code, re.Message}
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

func startsWith(s, prefix string) bool { return len(s) >= len(prefix) && s[:len(prefix)] == prefix }
