package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker"
)

// Topic prefixes of the device protocol.
const (
	AWSPrefix      = "$aws/things/"
	EdgewisePrefix = "$edgewise/things/"
)

// Topic returns PREFIX{thing}/jobs/{suffix}.
func Topic(prefix, thing, suffix string) string { return prefix + thing + "/jobs/" + suffix }

// wireExecution is an execution on the device topics (AWS JobExecution).
func wireExecution(x *exec, withDoc bool) map[string]any {
	m := map[string]any{
		"jobId":           x.e.JobID,
		"thingName":       x.e.Thing,
		"status":          x.e.Status.aws(),
		"queuedAt":        x.e.QueuedAt.Unix(),
		"lastUpdatedAt":   x.e.UpdatedAt.Unix(),
		"versionNumber":   x.e.Version,
		"executionNumber": 1,
	}
	if len(x.e.StatusDetails) > 0 {
		m["statusDetails"] = x.e.StatusDetails
	}
	if x.e.StartedAt != nil {
		m["startedAt"] = x.e.StartedAt.Unix()
	}
	if withDoc {
		m["jobDocument"] = x.job.j.Document
	}
	return m
}

func summary(x *exec) map[string]any {
	m := map[string]any{"jobId": x.e.JobID, "queuedAt": x.e.QueuedAt.Unix(), "lastUpdatedAt": x.e.UpdatedAt.Unix(),
		"versionNumber": x.e.Version, "executionNumber": 1}
	if x.e.StartedAt != nil {
		m["startedAt"] = x.e.StartedAt.Unix()
	}
	return m
}

// notifyThings publishes notify-next and notify to each thing (deduplicated).
func (s *Service) notifyThings(ctx context.Context, things []string) {
	if len(things) == 0 || s.pub == nil {
		return
	}
	seen := make(map[string]struct{}, len(things))
	for _, t := range things {
		if _, ok := seen[t]; ok {
			continue
		}
		seen[t] = struct{}{}
		ts := s.now().Unix()
		s.mu.Lock()
		next := map[string]any{"timestamp": ts}
		xs := s.byThing[t]
		if len(xs) > 0 {
			next["execution"] = wireExecution(xs[0], true)
		}
		list := listBody(xs)
		s.mu.Unlock()
		nb, _ := json.Marshal(next)
		lb, _ := json.Marshal(map[string]any{"timestamp": ts, "jobs": list})
		for _, p := range []string{AWSPrefix, EdgewisePrefix} {
			s.publish(ctx, Topic(p, t, "notify-next"), nb)
			s.publish(ctx, Topic(p, t, "notify"), lb)
		}
	}
}

func listBody(xs []*exec) map[string]any {
	queued, running := []any{}, []any{}
	for _, x := range xs {
		if x.e.Status == ExecInProgress {
			running = append(running, summary(x))
		} else {
			queued = append(queued, summary(x))
		}
	}
	out := map[string]any{}
	if len(queued) > 0 {
		out["QUEUED"] = queued
	}
	if len(running) > 0 {
		out["IN_PROGRESS"] = running
	}
	return out
}

func (s *Service) publish(ctx context.Context, topic string, payload []byte) {
	if err := s.pub.Publish(ctx, topic, payload, 1, false); err != nil {
		s.log.Warn("jobs: publish failed", "topic", topic, "err", err)
	}
}

// request is the union of the device requests' fields.
type request struct {
	ClientToken        string            `json:"clientToken"`
	Status             string            `json:"status"`
	StatusDetails      map[string]string `json:"statusDetails"`
	ExpectedVersion    *int64            `json:"expectedVersion"`
	IncludeJobDocument *bool             `json:"includeJobDocument"`
	IncludeState       bool              `json:"includeJobExecutionState"`
}

// rejection is an AWS jobs error.
type rejection struct{ code, msg string }

// ParseTopic splits a device request topic: op is "get", "start-next",
// "job-get" or "job-update" (jobID set for the last two; "$next" allowed
// for job-get).
func ParseTopic(topic string) (prefix, thing, op, jobID string, ok bool) {
	switch {
	case strings.HasPrefix(topic, AWSPrefix):
		prefix = AWSPrefix
	case strings.HasPrefix(topic, EdgewisePrefix):
		prefix = EdgewisePrefix
	default:
		return "", "", "", "", false
	}
	parts := strings.Split(topic[len(prefix):], "/")
	if len(parts) < 3 || parts[1] != "jobs" || parts[0] == "" {
		return "", "", "", "", false
	}
	thing = parts[0]
	switch {
	case len(parts) == 3 && (parts[2] == "get" || parts[2] == "start-next"):
		return prefix, thing, parts[2], "", true
	case len(parts) == 4 && parts[3] == "get" && (parts[2] == "$next" || validID(parts[2])):
		return prefix, thing, "job-get", parts[2], true
	case len(parts) == 4 && parts[3] == "update" && validID(parts[2]):
		return prefix, thing, "job-update", parts[2], true
	}
	return "", "", "", "", false
}

// OnPublish implements broker.PublishHook for the device requests. It
// never fails the batch.
func (s *Service) OnPublish(ctx context.Context, batch []*broker.Message) error {
	for _, m := range batch {
		prefix, thing, op, jobID, ok := ParseTopic(m.Topic)
		if !ok {
			continue
		}
		s.handle(ctx, prefix, thing, op, jobID, m.Payload)
	}
	return nil
}

func (s *Service) handle(ctx context.Context, prefix, thing, op, jobID string, payload []byte) {
	s.requests.Add(1)
	var req request
	base := Topic(prefix, thing, op)
	if jobID != "" {
		base = Topic(prefix, thing, jobID+"/"+strings.TrimPrefix(op, "job-"))
	}
	var out map[string]any
	var rej *rejection
	var changed []string
	if len(payload) > 0 && json.Unmarshal(payload, &req) != nil {
		rej = &rejection{"InvalidRequest", "payload is not a valid request object"}
	} else if len(req.ClientToken) > 64 {
		rej = &rejection{"InvalidRequest", "clientToken longer than 64 bytes"}
	} else {
		now := s.now().UTC().Truncate(time.Millisecond)
		s.mu.Lock()
		out, changed, rej = s.requestLocked(thing, op, jobID, req, now)
		s.mu.Unlock()
	}
	ts := s.now().Unix()
	if rej != nil {
		s.rejected.Add(1)
		b, _ := json.Marshal(withToken(map[string]any{"code": rej.code, "message": rej.msg, "timestamp": ts}, req.ClientToken))
		s.publish(ctx, base+"/rejected", b)
		return
	}
	out["timestamp"] = ts
	b, _ := json.Marshal(withToken(out, req.ClientToken))
	s.publish(ctx, base+"/accepted", b)
	s.notifyThings(ctx, changed)
}

func withToken(m map[string]any, tok string) map[string]any {
	if tok != "" {
		m["clientToken"] = tok
	}
	return m
}

// requestLocked answers one request. s.mu is held.
func (s *Service) requestLocked(thing, op, jobID string, req request, now time.Time) (map[string]any, []string, *rejection) {
	xs := s.byThing[thing]
	withDoc := req.IncludeJobDocument == nil || *req.IncludeJobDocument
	switch op {
	case "get":
		l := listBody(xs)
		out := map[string]any{"queuedJobs": orEmpty(l["QUEUED"]), "inProgressJobs": orEmpty(l["IN_PROGRESS"])}
		return out, nil, nil
	case "start-next":
		if len(xs) == 0 {
			return map[string]any{}, nil, nil
		}
		x := xs[0]
		var changed []string
		if x.e.Status == ExecQueued {
			changed = s.setStatusLocked(x, ExecInProgress, req.StatusDetails, now)
		}
		return map[string]any{"execution": wireExecution(x, true)}, changed, nil
	case "job-get":
		x := s.findLocked(thing, jobID)
		if x == nil {
			if jobID == "$next" {
				return map[string]any{}, nil, nil
			}
			return nil, nil, &rejection{"ResourceNotFound", fmt.Sprintf("no execution of job %q for thing %q", jobID, thing)}
		}
		return map[string]any{"execution": wireExecution(x, withDoc)}, nil, nil
	case "job-update":
		x := s.findLocked(thing, jobID)
		if x == nil {
			return nil, nil, &rejection{"ResourceNotFound", fmt.Sprintf("no execution of job %q for thing %q", jobID, thing)}
		}
		var st ExecStatus
		switch req.Status {
		case "IN_PROGRESS":
			st = ExecInProgress
		case "SUCCEEDED":
			st = ExecSucceeded
		case "FAILED":
			st = ExecFailed
		case "REJECTED":
			st = ExecRejected
		default:
			return nil, nil, &rejection{"InvalidRequest", fmt.Sprintf("status %q must be IN_PROGRESS, SUCCEEDED, FAILED or REJECTED", req.Status)}
		}
		if len(req.StatusDetails) > 10 {
			return nil, nil, &rejection{"InvalidRequest", "statusDetails holds more than 10 entries"}
		}
		if req.ExpectedVersion != nil && *req.ExpectedVersion != x.e.Version {
			return nil, nil, &rejection{"VersionMismatch", fmt.Sprintf("expected version %d, current version %d", *req.ExpectedVersion, x.e.Version)}
		}
		if x.e.Status.Final() {
			return nil, nil, &rejection{"InvalidStateTransition", fmt.Sprintf("the execution is already %s", x.e.Status.aws())}
		}
		changed := s.setStatusLocked(x, st, req.StatusDetails, now)
		state := map[string]any{"status": x.e.Status.aws(), "versionNumber": x.e.Version}
		if len(x.e.StatusDetails) > 0 {
			state["statusDetails"] = x.e.StatusDetails
		}
		out := map[string]any{"executionState": state}
		if req.IncludeJobDocument != nil && *req.IncludeJobDocument {
			out["jobDocument"] = x.job.j.Document
		}
		return out, changed, nil
	}
	return nil, nil, &rejection{"InvalidRequest", "unknown operation"}
}

func orEmpty(v any) any {
	if v == nil {
		return []any{}
	}
	return v
}

// findLocked returns thing's released execution of jobID ("$next": the next
// one), unfinished or of a job still in memory. s.mu is held.
func (s *Service) findLocked(thing, jobID string) *exec {
	if jobID == "$next" {
		if xs := s.byThing[thing]; len(xs) > 0 {
			return xs[0]
		}
		return nil
	}
	jb, ok := s.jobs[jobID]
	if !ok {
		return nil
	}
	x := jb.index[thing]
	if x == nil || x.e.ReleasedAt == nil {
		return nil
	}
	return x
}
