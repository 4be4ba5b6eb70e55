package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/edgewise-iot/edgewise/internal/apply"
)

// Applier plans and applies fleet files (internal/apply.Applier).
type Applier interface {
	Plan(ctx context.Context, f *apply.File, prune bool) (*apply.Result, error)
	Apply(ctx context.Context, f *apply.File, prune bool, fingerprint string) (*apply.Result, error)
	Export(ctx context.Context) (*apply.File, error)
}

// MaxApplyBytes bounds a fleet file sent to POST /api/v1/apply.
const MaxApplyBytes = 32 << 20

func (a *API) applyRoutes() {
	if a.opts.Apply == nil {
		return
	}
	a.handle("POST /api/v1/apply", a.applyFile)
	a.handle("GET /api/v1/export", a.exportFile)
}

// applyFile plans (dry_run) or applies a fleet file. The body is JSON
// {"file": "<YAML>", "prune": bool, "dry_run": bool, "fingerprint": "..."}.
func (a *API) applyFile(w http.ResponseWriter, r *http.Request) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return &httpError{http.StatusUnsupportedMediaType, "unsupported_media_type", "send the body as application/json"}
	}
	var req struct {
		File        string `json:"file"`
		Prune       bool   `json:"prune"`
		DryRun      bool   `json:"dry_run"`
		Fingerprint string `json:"fingerprint"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxApplyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) || errors.Is(err, io.ErrUnexpectedEOF) && mbe != nil {
			return err
		}
		return badRequest("invalid JSON body: %v", err)
	}
	f, err := apply.Parse([]byte(req.File))
	if err != nil {
		return badRequest("%v", err)
	}
	var res *apply.Result
	if req.DryRun {
		res, err = a.opts.Apply.Plan(r.Context(), f, req.Prune)
	} else {
		res, err = a.opts.Apply.Apply(r.Context(), f, req.Prune, req.Fingerprint)
	}
	switch {
	case errors.Is(err, apply.ErrInvalid):
		return badRequest("%v", err)
	case errors.Is(err, apply.ErrStale):
		return &httpError{http.StatusConflict, "conflict", err.Error()}
	case err != nil && res != nil:
		// Part of the plan ran: report it with the error, so the caller
		// keeps the secrets of what was created.
		a.log.Warn("apply stopped", "err", err, "done", res.Done)
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": map[string]string{"code": "apply_failed", "message": res.Error}, "result": res})
		return nil
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (a *API) exportFile(w http.ResponseWriter, r *http.Request) error {
	f, err := a.opts.Apply.Export(r.Context())
	if err != nil {
		return err
	}
	b, err := apply.Marshal(f)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/yaml")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	return nil
}
