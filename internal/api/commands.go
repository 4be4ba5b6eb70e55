package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/edgewise-iot/edgewise/internal/commands"
)

// Commands sends and tracks commands (internal/commands.Service).
type Commands interface {
	Send(ctx context.Context, r commands.Request) (commands.Command, error)
	Get(ctx context.Context, id string) (commands.Command, error)
	Wait(ctx context.Context, id string) (commands.Command, error)
	List(ctx context.Context, thing string, o commands.ListOptions) ([]commands.Command, string, error)
}

// MaxCommandWait bounds how long one request waits for a command's reply.
const MaxCommandWait = 5 * time.Minute

func (a *API) commandRoutes() {
	a.handle("POST /api/v1/things/{name}/commands", a.sendCommand)
	a.handle("GET /api/v1/things/{name}/commands", a.listCommands)
	a.handle("GET /api/v1/things/{name}/commands/{id}", a.getCommand)
}

type sendCommandRequest struct {
	Command string            `json:"command"`
	Payload map[string]any    `json:"payload"`
	Timeout commands.Duration `json:"timeout"`
	TTL     commands.Duration `json:"ttl"`
	Wait    bool              `json:"wait"`
}

func commandError(err error) error {
	switch {
	case errors.Is(err, commands.ErrNotFound):
		return notFound("%v", err)
	case errors.Is(err, commands.ErrInvalid):
		return badRequest("%v", err)
	case errors.Is(err, commands.ErrClosed):
		return &httpError{http.StatusServiceUnavailable, "unavailable", "the server is shutting down"}
	}
	return err
}

// waitParam reads ?wait=DURATION (0 when absent).
func waitParam(r *http.Request) (time.Duration, error) {
	s := r.URL.Query().Get("wait")
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, badRequest("wait %q must be a duration such as 30s", s)
	}
	return min(d, MaxCommandWait), nil
}

func (a *API) sendCommand(w http.ResponseWriter, r *http.Request) error {
	thing := r.PathValue("name")
	var req sendCommandRequest
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	wait, err := waitParam(r)
	if err != nil {
		return err
	}
	if _, err := a.opts.Registry.GetThing(r.Context(), thing); err != nil {
		return err
	}
	c, err := a.opts.Commands.Send(r.Context(), commands.Request{Thing: thing, Command: req.Command, Payload: req.Payload,
		Timeout: time.Duration(req.Timeout), TTL: time.Duration(req.TTL)})
	if err != nil {
		return commandError(err)
	}
	w.Header().Set("Location", fmt.Sprintf("/api/v1/things/%s/commands/%s", thing, c.ID))
	if req.Wait && wait == 0 {
		wait = min(time.Duration(c.TTL)+time.Duration(c.Timeout), MaxCommandWait)
	}
	if wait == 0 {
		writeJSON(w, http.StatusCreated, c)
		return nil
	}
	return a.waitCommand(w, r, c.ID, wait)
}

// waitCommand answers 200 with the final command, or 202 with its current
// state when wait passes first.
func (a *API) waitCommand(w http.ResponseWriter, r *http.Request, id string, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	c, err := a.opts.Commands.Wait(ctx, id)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return commandError(err)
	}
	status := http.StatusOK
	if !c.Status.Final() {
		status = http.StatusAccepted
	}
	writeJSON(w, status, c)
	return nil
}

func (a *API) getCommand(w http.ResponseWriter, r *http.Request) error {
	thing, id := r.PathValue("name"), r.PathValue("id")
	wait, err := waitParam(r)
	if err != nil {
		return err
	}
	c, err := a.opts.Commands.Get(r.Context(), id)
	if err != nil {
		return commandError(err)
	}
	if c.Thing != thing {
		return notFound("thing %q has no command %q", thing, id)
	}
	if wait > 0 {
		return a.waitCommand(w, r, id, wait)
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (a *API) listCommands(w http.ResponseWriter, r *http.Request) error {
	thing := r.PathValue("name")
	q := r.URL.Query()
	o := commands.ListOptions{Status: commands.Status(q.Get("status")), After: q.Get("after")}
	switch o.Status {
	case "", commands.Queued, commands.Delivered, commands.Succeeded, commands.Failed, commands.TimedOut, commands.Expired:
	default:
		return badRequest("status %q is not one of queued, delivered, succeeded, failed, timed_out, expired", o.Status)
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return badRequest("limit %q must be an integer from 1 to 1000", s)
		}
		o.Limit = n
	}
	if _, err := a.opts.Registry.GetThing(r.Context(), thing); err != nil {
		return err
	}
	cs, next, err := a.opts.Commands.List(r.Context(), thing, o)
	if err != nil {
		return commandError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"commands": cs, "next": next})
	return nil
}
