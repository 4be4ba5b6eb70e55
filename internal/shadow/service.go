package shadow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edgewise-iot/edgewise/internal/broker"
)

// Topic prefixes of the shadow protocol. Requests are accepted under both;
// replies (/accepted, /rejected) go to the prefix of the request; /delta
// and /documents are published under both.
const (
	AWSPrefix      = "$aws/things/"
	EdgewisePrefix = "$edgewise/things/"
)

// MaxRequestBytes bounds a shadow request payload before it is parsed.
const MaxRequestBytes = 64 << 10

// MaxClientTokenLen bounds clientToken (as in AWS IoT).
const MaxClientTokenLen = 64

// Publisher sends server-originated MQTT messages (the broker).
type Publisher interface {
	Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error
}

// ServiceOptions configure a Service.
type ServiceOptions struct {
	Logger *slog.Logger
	// Now is the clock of response timestamps; nil means time.Now.
	Now func() time.Time
}

// Service speaks the shadow protocol: it answers update, get and delete
// requests on the MQTT shadow topics (it is a broker.PublishHook) and from
// the HTTP API, and publishes /delta and /documents after every accepted
// change, whatever its source.
type Service struct {
	store *Store
	pub   Publisher
	log   *slog.Logger
	now   func() time.Time

	requests, rejected, published atomic.Uint64
}

// ServiceStats counts the protocol's traffic.
type ServiceStats struct {
	Requests  uint64 `json:"requests"`
	Rejected  uint64 `json:"rejected"`
	Published uint64 `json:"published"`
}

// NewService returns a Service over st that publishes through pub (which
// may be set later with SetPublisher, before the broker serves).
func NewService(st *Store, pub Publisher, opts ServiceOptions) *Service {
	sv := &Service{store: st, pub: pub, log: opts.Logger, now: opts.Now}
	if sv.log == nil {
		sv.log = slog.New(slog.DiscardHandler)
	}
	if sv.now == nil {
		sv.now = time.Now
	}
	return sv
}

// SetPublisher sets the publisher; call it before traffic flows.
func (sv *Service) SetPublisher(p Publisher) { sv.pub = p }

// Stats returns the counters.
func (sv *Service) Stats() ServiceStats {
	return ServiceStats{Requests: sv.requests.Load(), Rejected: sv.rejected.Load(), Published: sv.published.Load()}
}

// RequestError is a rejected request: Code is the HTTP-style status AWS IoT
// uses (400, 404, 409, 413, 500).
type RequestError struct {
	Code    int
	Message string
}

func (e *RequestError) Error() string { return e.Message }

// errorFor maps a store error to a RequestError.
func errorFor(err error) *RequestError {
	var re *RequestError
	switch {
	case errors.As(err, &re):
		return re
	case errors.Is(err, ErrVersionConflict):
		return &RequestError{409, "Version conflict"}
	case errors.Is(err, ErrTooLarge):
		return &RequestError{413, "The payload exceeds the maximum size allowed: " + err.Error()}
	case errors.Is(err, ErrNotFound):
		return &RequestError{404, err.Error()}
	case errors.Is(err, ErrInvalid):
		return &RequestError{400, err.Error()}
	case errors.Is(err, ErrClosed):
		return &RequestError{503, "the server is shutting down"}
	}
	return &RequestError{500, "Internal service failure"}
}

// UpdateRequest is a parsed update document.
type UpdateRequest struct {
	Update      Update
	ClientToken string
}

// ParseUpdate parses an AWS update document:
//
//	{"state": {"desired": {...}|null, "reported": {...}|null}|null,
//	 "clientToken": "...", "version": N}
//
// "state": null clears both sections. Errors are *RequestError with code
// 400 (or 413 for oversized bodies); the clientToken is returned when it
// could be read.
func ParseUpdate(body []byte) (UpdateRequest, error) {
	if len(body) > MaxRequestBytes {
		return UpdateRequest{}, &RequestError{413, fmt.Sprintf("The payload exceeds the maximum size allowed (%d bytes)", MaxRequestBytes)}
	}
	var raw struct {
		State       json.RawMessage `json:"state"`
		ClientToken json.RawMessage `json:"clientToken"`
		Version     json.RawMessage `json:"version"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return UpdateRequest{}, &RequestError{400, "Payload contains invalid json"}
	}
	var req UpdateRequest
	tok, err := clientToken(raw.ClientToken)
	req.ClientToken = tok
	if err != nil {
		return req, err
	}
	if len(raw.Version) > 0 && string(raw.Version) != "null" {
		var v int64
		if err := json.Unmarshal(raw.Version, &v); err != nil || v < 1 {
			return req, &RequestError{400, "Invalid version: must be a positive integer"}
		}
		req.Update.Version = v
	}
	if len(raw.State) == 0 {
		return req, &RequestError{400, "Missing required node: state"}
	}
	if string(raw.State) == "null" {
		req.Update.ClearDesired, req.Update.ClearReported = true, true
		return req, nil
	}
	var state map[string]json.RawMessage
	if err := json.Unmarshal(raw.State, &state); err != nil {
		return req, &RequestError{400, "State node must be an object"}
	}
	for k := range state {
		if k != "desired" && k != "reported" {
			return req, &RequestError{400, fmt.Sprintf("State contains an invalid node: '%s'", k)}
		}
	}
	if len(state) == 0 {
		return req, &RequestError{400, "State node must have at least one of desired or reported"}
	}
	section := func(name string, clear *bool) (map[string]any, error) {
		r, ok := state[name]
		if !ok {
			return nil, nil
		}
		if string(r) == "null" {
			*clear = true
			return nil, nil
		}
		var m map[string]any
		if err := json.Unmarshal(r, &m); err != nil || m == nil {
			return nil, &RequestError{400, fmt.Sprintf("%s node must be an object", strings.ToUpper(name[:1])+name[1:])}
		}
		return m, nil
	}
	if req.Update.Desired, err = section("desired", &req.Update.ClearDesired); err != nil {
		return req, err
	}
	if req.Update.Reported, err = section("reported", &req.Update.ClearReported); err != nil {
		return req, err
	}
	return req, nil
}

// clientToken reads an optional clientToken value.
func clientToken(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var tok string
	if err := json.Unmarshal(raw, &tok); err != nil {
		return "", &RequestError{400, "clientToken must be a string"}
	}
	if len(tok) > MaxClientTokenLen {
		return tok[:MaxClientTokenLen], &RequestError{400, fmt.Sprintf("clientToken longer than %d bytes", MaxClientTokenLen)}
	}
	return tok, nil
}

// Update applies an AWS update document to the shadow (thing, name),
// publishes /delta and /documents, and returns the /update/accepted
// payload. Errors are *RequestError.
func (sv *Service) Update(ctx context.Context, thing, name string, body []byte) ([]byte, error) {
	req, err := ParseUpdate(body)
	if err != nil {
		return nil, err
	}
	acc, err := sv.apply(ctx, thing, name, req, time.Time{})
	if err != nil {
		return nil, errorFor(err)
	}
	return acc, nil
}

// ReportState merges a device's report from devices/{id}/state into the
// reported section of its classic shadow and publishes /delta and
// /documents like any update. It implements the ingest pipeline's
// StateUpdater.
func (sv *Service) ReportState(ctx context.Context, thing string, patch map[string]any, deviceTime time.Time) error {
	if patch == nil {
		patch = map[string]any{}
	}
	_, err := sv.apply(ctx, thing, "", UpdateRequest{Update: Update{Reported: patch}}, deviceTime)
	return err
}

func (sv *Service) apply(ctx context.Context, thing, name string, req UpdateRequest, deviceTime time.Time) ([]byte, error) {
	res, err := sv.store.Update(ctx, thing, name, req.Update, deviceTime)
	if err != nil {
		return nil, err
	}
	ts := sv.now().Unix()
	u := req.Update
	state, meta := map[string]any{}, map[string]any{}
	if u.Desired != nil {
		state["desired"], meta["desired"] = u.Desired, PatchMetadata(u.Desired, ts)
	} else if u.ClearDesired {
		state["desired"] = nil
	}
	if u.Reported != nil {
		state["reported"], meta["reported"] = u.Reported, PatchMetadata(u.Reported, ts)
	} else if u.ClearReported {
		state["reported"] = nil
	}
	acc := map[string]any{"state": state, "metadata": meta, "version": res.Current.Version, "timestamp": ts}
	if u.ClearDesired && u.ClearReported && u.Desired == nil && u.Reported == nil {
		acc["state"] = nil
	}
	withToken(acc, req.ClientToken)
	accepted, err := json.Marshal(acc)
	if err != nil {
		return nil, fmt.Errorf("shadow: encode accepted: %w", err)
	}

	// /documents: the shadow before and after.
	docs := map[string]any{"current": docView(res.Current, false), "timestamp": ts}
	if res.Existed {
		docs["previous"] = docView(res.Previous, false)
	}
	withToken(docs, req.ClientToken)
	sv.publishBoth(ctx, thing, name, "/update/documents", docs)

	// /delta: when desired and reported disagree and the update touched
	// desired or changed the disagreement.
	cur := res.Current.Delta()
	if len(cur) > 0 && (u.Desired != nil || !jsonEqual(anyMap(cur), anyMap(res.Previous.Delta()))) {
		d := map[string]any{"version": res.Current.Version, "timestamp": ts, "state": cur,
			"metadata": res.Current.DeltaMetadata(cur)}
		withToken(d, req.ClientToken)
		sv.publishBoth(ctx, thing, name, "/update/delta", d)
	}
	return accepted, nil
}

func anyMap(m map[string]any) any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// Get returns the /get/accepted payload of the shadow (without clientToken):
// state (desired, reported, delta), metadata, version and timestamp.
func (sv *Service) Get(ctx context.Context, thing, name string) ([]byte, error) {
	d, err := sv.store.GetShadow(ctx, thing, name)
	if err != nil {
		return nil, errorFor(notFoundMessage(err, thing, name))
	}
	v := docView(d, true)
	v["timestamp"] = sv.now().Unix()
	return json.Marshal(v)
}

// Delete deletes the shadow and returns the /delete/accepted payload
// (without clientToken).
func (sv *Service) Delete(ctx context.Context, thing, name string) ([]byte, error) {
	d, err := sv.store.DeleteShadow(ctx, thing, name)
	if err != nil {
		return nil, errorFor(notFoundMessage(err, thing, name))
	}
	return json.Marshal(map[string]any{"version": d.Version, "timestamp": sv.now().Unix()})
}

func notFoundMessage(err error, thing, name string) error {
	if !errors.Is(err, ErrNotFound) {
		return err
	}
	if name == "" {
		name = "classic"
	}
	return &RequestError{404, fmt.Sprintf("No shadow exists with name: '%s' for thing '%s'", name, thing)}
}

// docView is the AWS view of a shadow: {"state": {...}, "metadata": {...},
// "version": N}, with delta when withDelta is set.
func docView(d Document, withDelta bool) map[string]any {
	state, meta := map[string]any{}, map[string]any{}
	if len(d.Desired) > 0 {
		state["desired"], meta["desired"] = d.Desired, nonNil(d.DesiredMetadata)
	}
	if len(d.Reported) > 0 {
		state["reported"], meta["reported"] = d.Reported, nonNil(d.ReportedMetadata)
	}
	if withDelta {
		if dl := d.Delta(); len(dl) > 0 {
			state["delta"] = dl
		}
	}
	return map[string]any{"state": state, "metadata": meta, "version": d.Version}
}

func nonNil(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func withToken(m map[string]any, tok string) {
	if tok != "" {
		m["clientToken"] = tok
	}
}

// Names lists thing's named shadows.
func (sv *Service) Names(ctx context.Context, thing string) ([]string, error) {
	return sv.store.Names(ctx, thing)
}

// Topic returns the topic of a shadow message: prefix (AWSPrefix or
// EdgewisePrefix), thing, shadow name ("" = classic) and suffix such as
// "/update/delta".
func Topic(prefix, thing, name, suffix string) string {
	if name == "" {
		return prefix + thing + "/shadow" + suffix
	}
	return prefix + thing + "/shadow/name/" + name + suffix
}

func (sv *Service) publishBoth(ctx context.Context, thing, name, suffix string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		sv.log.Error("shadow: encode message", "err", err)
		return
	}
	sv.publish(ctx, Topic(AWSPrefix, thing, name, suffix), b)
	sv.publish(ctx, Topic(EdgewisePrefix, thing, name, suffix), b)
}

func (sv *Service) publish(ctx context.Context, topic string, payload []byte) {
	if sv.pub == nil {
		return
	}
	if err := sv.pub.Publish(ctx, topic, payload, 1, false); err != nil {
		sv.log.Warn("shadow: publish failed", "topic", topic, "err", err)
		return
	}
	sv.published.Add(1)
}

// ParseTopic splits a shadow request topic
// PREFIX{thing}/shadow[/name/{name}]/{update|get|delete}. ok is false for
// anything else (replies included).
func ParseTopic(topic string) (prefix, thing, name, op string, ok bool) {
	switch {
	case strings.HasPrefix(topic, AWSPrefix):
		prefix = AWSPrefix
	case strings.HasPrefix(topic, EdgewisePrefix):
		prefix = EdgewisePrefix
	default:
		return "", "", "", "", false
	}
	parts := strings.Split(topic[len(prefix):], "/")
	switch {
	case len(parts) == 3 && parts[1] == "shadow":
		thing, op = parts[0], parts[2]
	case len(parts) == 5 && parts[1] == "shadow" && parts[2] == "name" && parts[3] != "":
		thing, name, op = parts[0], parts[3], parts[4]
	default:
		return "", "", "", "", false
	}
	if thing == "" || (op != "update" && op != "get" && op != "delete") {
		return "", "", "", "", false
	}
	return prefix, thing, name, op, true
}

// OnPublish implements broker.PublishHook: it answers the shadow requests of
// a batch. It never fails the batch; bad requests get /rejected replies.
func (sv *Service) OnPublish(ctx context.Context, batch []*broker.Message) error {
	for _, m := range batch {
		prefix, thing, name, op, ok := ParseTopic(m.Topic)
		if !ok {
			continue
		}
		sv.handle(ctx, prefix, thing, name, op, m.Payload)
	}
	return nil
}

func (sv *Service) handle(ctx context.Context, prefix, thing, name, op string, payload []byte) {
	sv.requests.Add(1)
	base := Topic(prefix, thing, name, "/"+op)
	var tok string
	var out []byte
	var err error
	if verr := ValidName(name); verr != nil {
		err = &RequestError{400, verr.Error()}
	} else if op == "update" {
		var req UpdateRequest
		if req, err = ParseUpdate(payload); err == nil {
			if out, err = sv.apply(ctx, thing, name, req, time.Time{}); err != nil {
				err = errorFor(err)
			}
		}
		tok = req.ClientToken
	} else {
		// get and delete take an empty payload or {"clientToken": "..."}.
		if len(payload) > 0 {
			var raw struct {
				ClientToken json.RawMessage `json:"clientToken"`
			}
			if jerr := json.Unmarshal(payload, &raw); jerr != nil {
				err = &RequestError{400, "Payload contains invalid json"}
			} else {
				tok, err = clientToken(raw.ClientToken)
			}
		}
		if err == nil {
			if op == "get" {
				out, err = sv.Get(ctx, thing, name)
			} else {
				out, err = sv.Delete(ctx, thing, name)
			}
		}
		if err == nil && tok != "" {
			out = appendToken(out, tok)
		}
	}
	if err != nil {
		sv.rejected.Add(1)
		re := errorFor(err)
		rej := map[string]any{"code": re.Code, "message": re.Message, "timestamp": sv.now().Unix()}
		withToken(rej, tok)
		b, _ := json.Marshal(rej)
		sv.publish(ctx, base+"/rejected", b)
		return
	}
	sv.publish(ctx, base+"/accepted", out)
}

// appendToken adds "clientToken" to an encoded JSON object.
func appendToken(obj []byte, tok string) []byte {
	t, _ := json.Marshal(tok)
	out := make([]byte, 0, len(obj)+len(t)+16)
	out = append(out, obj[:len(obj)-1]...)
	out = append(out, `,"clientToken":`...)
	out = append(out, t...)
	return append(out, '}')
}
