package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/edgewise-iot/edgewise/internal/jobs"
)

// Jobs runs fleet jobs (internal/jobs.Service).
type Jobs interface {
	Create(ctx context.Context, spec jobs.Spec) (jobs.Job, error)
	Get(ctx context.Context, id string) (jobs.Job, error)
	List(ctx context.Context, status jobs.Status, limit int, after string) ([]jobs.Job, string, error)
	Executions(ctx context.Context, id string, status jobs.ExecStatus) ([]jobs.Execution, error)
	Cancel(ctx context.Context, id, reason string) (jobs.Job, error)
}

func (a *API) jobRoutes() {
	a.handle("POST /api/v1/jobs", a.createJob)
	a.handle("GET /api/v1/jobs", a.listJobs)
	a.handle("GET /api/v1/jobs/{id}", a.getJob)
	a.handle("GET /api/v1/jobs/{id}/executions", a.jobExecutions)
	a.handle("POST /api/v1/jobs/{id}/cancel", a.cancelJob)
}

func jobError(err error) error {
	switch {
	case errors.Is(err, jobs.ErrNotFound):
		return notFound("%v", err)
	case errors.Is(err, jobs.ErrInvalid), errors.Is(err, jobs.ErrGroupsUnavailable):
		return badRequest("%v", err)
	case errors.Is(err, jobs.ErrExists), errors.Is(err, jobs.ErrConflict):
		return &httpError{http.StatusConflict, "conflict", err.Error()}
	case errors.Is(err, jobs.ErrClosed):
		return &httpError{http.StatusServiceUnavailable, "unavailable", "the server is shutting down"}
	}
	return err
}

func (a *API) createJob(w http.ResponseWriter, r *http.Request) error {
	var spec jobs.Spec
	if err := decodeBody(w, r, &spec); err != nil {
		return err
	}
	j, err := a.opts.Jobs.Create(r.Context(), spec)
	if err != nil {
		return jobError(err)
	}
	w.Header().Set("Location", "/api/v1/jobs/"+j.ID)
	writeJSON(w, http.StatusCreated, j)
	return nil
}

func (a *API) listJobs(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	st := jobs.Status(q.Get("status"))
	switch st {
	case "", jobs.InProgress, jobs.Completed, jobs.Canceled, jobs.Aborted:
	default:
		return badRequest("status %q is not one of in_progress, completed, canceled, aborted", st)
	}
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return badRequest("limit %q must be an integer from 1 to 1000", s)
		}
		limit = n
	}
	js, next, err := a.opts.Jobs.List(r.Context(), st, limit, q.Get("after"))
	if err != nil {
		return jobError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": js, "next": next})
	return nil
}

func (a *API) getJob(w http.ResponseWriter, r *http.Request) error {
	j, err := a.opts.Jobs.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return jobError(err)
	}
	writeJSON(w, http.StatusOK, j)
	return nil
}

func (a *API) jobExecutions(w http.ResponseWriter, r *http.Request) error {
	st := jobs.ExecStatus(r.URL.Query().Get("status"))
	switch st {
	case "", jobs.ExecQueued, jobs.ExecInProgress, jobs.ExecSucceeded, jobs.ExecFailed, jobs.ExecRejected, jobs.ExecTimedOut, jobs.ExecCanceled:
	default:
		return badRequest("status %q is not an execution status", st)
	}
	xs, err := a.opts.Jobs.Executions(r.Context(), r.PathValue("id"), st)
	if err != nil {
		return jobError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"executions": xs})
	return nil
}

func (a *API) cancelJob(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Reason string `json:"reason"`
	}
	if r.ContentLength != 0 {
		if err := decodeBody(w, r, &req); err != nil {
			return err
		}
	}
	j, err := a.opts.Jobs.Cancel(r.Context(), r.PathValue("id"), req.Reason)
	if err != nil {
		return jobError(err)
	}
	writeJSON(w, http.StatusOK, j)
	return nil
}
