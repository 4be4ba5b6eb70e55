package device

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// Command is a command received on devices/{thing}/command.
type Command struct {
	// ID is the server's command id ("" for untracked messages published
	// directly on the topic, which get no reply).
	ID string
	// Name is the "command" member, if any.
	Name string
	// Payload holds the other members of the message.
	Payload map[string]any
	// Raw is the message as received.
	Raw []byte
}

// CommandHandler runs a command. Its result (any JSON value) is sent back
// as "succeeded"; an error as "failed" with the error's text. ctx ends when
// the device closes.
type CommandHandler func(ctx context.Context, c Command) (result any, err error)

// OnCommand registers the command handler (before Start). Commands run
// concurrently, each in its own goroutine; the reply goes to the response
// topic the server set (devices/{thing}/command/response) with the
// command's correlation data, through the offline queue if disconnected.
func (d *Device) OnCommand(h CommandHandler) {
	d.mu.Lock()
	d.onCommand = h
	d.mu.Unlock()
}

func (d *Device) handleCommand(p *paho.Publish) {
	d.mu.Lock()
	h := d.onCommand
	d.mu.Unlock()
	if h == nil {
		return
	}
	var m map[string]any
	if err := json.Unmarshal(p.Payload, &m); err != nil {
		d.log.Warn("device: command is not a JSON object", "err", err)
		return
	}
	c := Command{Raw: append([]byte(nil), p.Payload...), Payload: m}
	c.ID, _ = m["command_id"].(string)
	c.Name, _ = m["command"].(string)
	delete(m, "command_id")
	if c.Name != "" {
		delete(m, "command")
	}
	respTopic := "devices/" + d.cfg.Thing + "/command/response"
	var corr []byte
	if p.Properties != nil {
		if p.Properties.ResponseTopic != "" {
			respTopic = p.Properties.ResponseTopic
		}
		corr = p.Properties.CorrelationData
	}
	go func() {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-d.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		result, err := h(ctx, c)
		if c.ID == "" && corr == nil {
			return
		}
		reply := map[string]any{"command_id": c.ID, "status": "succeeded"}
		if c.ID == "" {
			reply["command_id"] = string(corr)
		}
		if err != nil {
			reply["status"], reply["error"] = "failed", err.Error()
		}
		if result != nil {
			reply["result"] = result
		}
		b, jerr := json.Marshal(reply)
		if jerr != nil {
			b, _ = json.Marshal(map[string]any{"command_id": reply["command_id"], "status": "failed", "error": "result is not JSON: " + jerr.Error()})
		}
		if perr := d.Publish(ctx, respTopic, b); perr != nil {
			d.log.Warn("device: command reply not sent", "id", c.ID, "err", perr)
		}
	}()
}

// ShadowDocument is a shadow as the server returns it.
type ShadowDocument struct {
	State struct {
		Desired  map[string]any `json:"desired,omitempty"`
		Reported map[string]any `json:"reported,omitempty"`
		Delta    map[string]any `json:"delta,omitempty"`
	} `json:"state"`
	Metadata  map[string]any `json:"metadata,omitempty"`
	Version   int64          `json:"version"`
	Timestamp int64          `json:"timestamp"`
}

// ShadowDelta is desired state that differs from the reported state.
type ShadowDelta struct {
	Version int64          `json:"version"`
	State   map[string]any `json:"state"`
}

// ShadowUpdate is an update request: nil sections are left alone, a nil
// value deletes a field. Version, if not zero, must be the current version.
type ShadowUpdate struct {
	Desired  map[string]any
	Reported map[string]any
	Version  int64
}

// ShadowError is a rejected shadow request (Code 400, 404, 409 version
// conflict, 413 too large, ...).
type ShadowError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *ShadowError) Error() string {
	return fmt.Sprintf("shadow request rejected (%d): %s", e.Code, e.Message)
}

type response struct {
	ok   bool
	body []byte
}

// OnShadowDelta registers the delta handler of the shadow name ("" = the
// classic shadow), before Start. It is also called after each
// (re)connection when the shadow has a delta, so desired state set while
// the device was offline is not missed. Handlers run one at a time.
func (d *Device) OnShadowDelta(name string, h func(ShadowDelta)) {
	d.mu.Lock()
	d.deltaHandlers[name] = h
	d.mu.Unlock()
}

func (d *Device) dispatchDelta(name string, delta ShadowDelta) {
	d.mu.Lock()
	h := d.deltaHandlers[name]
	d.mu.Unlock()
	if h != nil {
		d.serial(func() { h(delta) })
	}
}

// serial runs f after the previously scheduled callbacks.
func (d *Device) serial(f func()) {
	d.mu.Lock()
	prev := d.lastCallback
	done := make(chan struct{})
	d.lastCallback = done
	d.mu.Unlock()
	go func() {
		defer close(done)
		if prev != nil {
			<-prev
		}
		f()
	}()
}

func shadowBase(thing, name string) string {
	if name == "" {
		return "$aws/things/" + thing + "/shadow/"
	}
	return "$aws/things/" + thing + "/shadow/name/" + name + "/"
}

// handleShadow handles $aws/things/{thing}/shadow/{rest}.
func (d *Device) handleShadow(rest string, payload []byte) {
	name := ""
	if after, ok := strings.CutPrefix(rest, "name/"); ok {
		var found bool
		name, rest, found = strings.Cut(after, "/")
		if !found {
			return
		}
	}
	switch rest {
	case "update/delta":
		var delta ShadowDelta
		if json.Unmarshal(payload, &delta) == nil {
			d.dispatchDelta(name, delta)
		}
	case "get/accepted", "get/rejected", "update/accepted", "update/rejected", "delete/accepted", "delete/rejected":
		var tok struct {
			ClientToken string `json:"clientToken"`
		}
		if json.Unmarshal(payload, &tok) != nil || tok.ClientToken == "" {
			return
		}
		d.mu.Lock()
		ch := d.pending[tok.ClientToken]
		delete(d.pending, tok.ClientToken)
		d.mu.Unlock()
		if ch != nil {
			ch <- response{ok: strings.HasSuffix(rest, "/accepted"), body: append([]byte(nil), payload...)}
		}
	}
}

// request publishes a shadow request and waits for its reply.
func (d *Device) request(ctx context.Context, name, op string, body map[string]any) ([]byte, error) {
	if !d.connected.Load() {
		return nil, ErrNotConnected
	}
	tok := newToken()
	body["clientToken"] = tok
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("device: shadow %s: %w", op, err)
	}
	ch := make(chan response, 1)
	d.mu.Lock()
	d.pending[tok] = ch
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.pending, tok)
		d.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	if err := d.publishRaw(ctx, shadowBase(d.cfg.Thing, name)+op, b); err != nil {
		return nil, fmt.Errorf("device: shadow %s: %w", op, err)
	}
	select {
	case r := <-ch:
		if !r.ok {
			var se ShadowError
			if err := json.Unmarshal(r.body, &se); err != nil {
				return nil, fmt.Errorf("device: shadow %s rejected: %s", op, r.body)
			}
			return nil, &se
		}
		return r.body, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("device: shadow %s: no reply: %w", op, ctx.Err())
	}
}

// GetShadow returns the shadow name ("" = classic).
func (d *Device) GetShadow(ctx context.Context, name string) (ShadowDocument, error) {
	b, err := d.request(ctx, name, "get", map[string]any{})
	if err != nil {
		return ShadowDocument{}, err
	}
	var doc ShadowDocument
	if err := json.Unmarshal(b, &doc); err != nil {
		return ShadowDocument{}, fmt.Errorf("device: shadow get: %w", err)
	}
	return doc, nil
}

// UpdateShadow updates the shadow name and returns the new version.
// Rejections are *ShadowError (409 when u.Version is stale).
func (d *Device) UpdateShadow(ctx context.Context, name string, u ShadowUpdate) (int64, error) {
	state := map[string]any{}
	if u.Desired != nil {
		state["desired"] = u.Desired
	}
	if u.Reported != nil {
		state["reported"] = u.Reported
	}
	body := map[string]any{"state": state}
	if u.Version != 0 {
		body["version"] = u.Version
	}
	b, err := d.request(ctx, name, "update", body)
	if err != nil {
		return 0, err
	}
	var acc struct {
		Version int64 `json:"version"`
	}
	if err := json.Unmarshal(b, &acc); err != nil {
		return 0, fmt.Errorf("device: shadow update: %w", err)
	}
	return acc.Version, nil
}

// Job is a job execution handed to the device.
type Job struct {
	ID       string         `json:"jobId"`
	Document map[string]any `json:"jobDocument"`
	Status   string         `json:"status"`
	Version  int64          `json:"versionNumber"`
}

// JobHandler runs a job. Returning nil reports SUCCEEDED, an error FAILED
// (its text in statusDetails["error"]); details are reported either way.
type JobHandler func(ctx context.Context, j Job) (details map[string]string, err error)

// OnJob registers the job handler (before Start). The device takes its
// next job on connection and on every notify-next, reports IN_PROGRESS,
// runs the handler and reports the outcome; jobs run one at a time.
func (d *Device) OnJob(h JobHandler) {
	d.mu.Lock()
	d.onJob = h
	d.mu.Unlock()
}

func (d *Device) handleJobs(rest string, payload []byte) {
	if rest != "notify-next" && rest != "$next/get/accepted" {
		return
	}
	var msg struct {
		Execution *Job `json:"execution"`
	}
	if json.Unmarshal(payload, &msg) != nil || msg.Execution == nil {
		return
	}
	j := *msg.Execution
	if j.Status != "QUEUED" && j.Status != "IN_PROGRESS" {
		return
	}
	d.mu.Lock()
	h := d.onJob
	if h == nil || d.jobRunning[j.ID] {
		d.mu.Unlock()
		return
	}
	d.jobRunning[j.ID] = true
	d.mu.Unlock()
	d.serial(func() { d.runJob(h, j) })
}

func (d *Device) runJob(h JobHandler, j Job) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base := "$aws/things/" + d.cfg.Thing + "/jobs/" + j.ID + "/update"
	if j.Status == "QUEUED" {
		b, _ := json.Marshal(map[string]any{"status": "IN_PROGRESS", "expectedVersion": j.Version})
		if err := d.Publish(ctx, base, b); err != nil {
			d.log.Warn("device: job update not sent", "job", j.ID, "err", err)
		}
	}
	details, err := h(ctx, j)
	status := "SUCCEEDED"
	if err != nil {
		status = "FAILED"
		if details == nil {
			details = map[string]string{}
		}
		details["error"] = err.Error()
	}
	body := map[string]any{"status": status}
	if len(details) > 0 {
		body["statusDetails"] = details
	}
	b, _ := json.Marshal(body)
	if err := d.Publish(ctx, base, b); err != nil {
		d.log.Warn("device: job result not sent", "job", j.ID, "err", err)
	}
	tctx, tcancel := context.WithTimeout(ctx, 5*time.Second)
	defer tcancel()
	_ = d.publishRaw(tctx, "$aws/things/"+d.cfg.Thing+"/jobs/$next/get", []byte(`{}`))
}
