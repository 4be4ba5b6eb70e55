package shadow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// normalizePatch returns a deep copy of patch holding only the types
// encoding/json decodes into (nil, bool, float64, string, []any,
// map[string]any), so a document is the same in memory and after a reload.
// Other Go values are converted through their JSON encoding. The top-level
// object is depth 1.
func normalizePatch(patch map[string]any, maxDepth int) (map[string]any, error) {
	out, err := normalizeMap(patch, 1, maxDepth)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return out, nil
}

func normalizeMap(m map[string]any, depth, maxDepth int) (map[string]any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nesting deeper than %d levels", maxDepth)
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		nv, err := normalizeValue(v, depth, maxDepth)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[validUTF8(k)] = nv
	}
	return out, nil
}

func normalizeValue(v any, depth, maxDepth int) (any, error) {
	switch x := v.(type) {
	case nil, bool:
		return x, nil
	case string:
		return validUTF8(x), nil
	case float64:
		return checkFloat(x)
	case float32:
		return checkFloat(float64(x))
	case int:
		return float64(x), nil
	case int8:
		return float64(x), nil
	case int16:
		return float64(x), nil
	case int32:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case uint:
		return float64(x), nil
	case uint8:
		return float64(x), nil
	case uint16:
		return float64(x), nil
	case uint32:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return nil, fmt.Errorf("number %q: %w", string(x), err)
		}
		return checkFloat(f)
	case map[string]any:
		return normalizeMap(x, depth+1, maxDepth)
	case []any:
		if depth+1 > maxDepth {
			return nil, fmt.Errorf("nesting deeper than %d levels", maxDepth)
		}
		out := make([]any, len(x))
		for i, e := range x {
			ne, err := normalizeValue(e, depth+1, maxDepth)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = ne
		}
		return out, nil
	default:
		// Any other Go value: use its JSON form.
		b, err := json.Marshal(x)
		if err != nil {
			return nil, fmt.Errorf("value of type %T is not JSON: %w", x, err)
		}
		var generic any
		if err := json.Unmarshal(b, &generic); err != nil {
			return nil, fmt.Errorf("value of type %T: %w", x, err)
		}
		return normalizeValue(generic, depth, maxDepth)
	}
}

func checkFloat(f float64) (any, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("number %v cannot be represented in JSON", f)
	}
	return f, nil
}

// validUTF8 replaces invalid UTF-8 the way encoding/json does when encoding.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// merge returns doc with patch applied; neither argument is modified, and
// unchanged subtrees are shared with doc (documents are never mutated once
// stored). patch must be normalized and is owned by the result.
func merge(doc, patch map[string]any) map[string]any {
	out := make(map[string]any, len(doc)+len(patch))
	maps.Copy(out, doc)
	for k, pv := range patch {
		switch p := pv.(type) {
		case nil:
			delete(out, k)
		case map[string]any:
			if d, ok := out[k].(map[string]any); ok {
				out[k] = merge(d, p)
			} else {
				out[k] = stripNulls(p)
			}
		default:
			out[k] = pv
		}
	}
	return out
}

// stripNulls deletes nil-valued keys from m and its nested objects, in place
// (m is a normalized patch owned by the caller). Nulls inside arrays are
// values and stay.
func stripNulls(m map[string]any) map[string]any {
	for k, v := range m {
		switch x := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			stripNulls(x)
		}
	}
	return m
}

// encode is the canonical encoding of a document: sorted keys, no HTML
// escaping (it only costs bytes here), no trailing newline.
func encode(doc map[string]any) ([]byte, error) {
	if doc == nil {
		return []byte("{}"), nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func decode(raw []byte) (map[string]any, error) {
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	return doc, nil
}

func cloneMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneValue(v)
	}
	return out
}

func cloneValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return cloneMap(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cloneValue(e)
		}
		return out
	default:
		return v
	}
}

// Document is one shadow: desired and reported state with per-field
// metadata, as AWS IoT keeps it.
type Document struct {
	Thing string
	// Name is the named shadow's name; empty for the classic shadow.
	Name     string
	Desired  map[string]any
	Reported map[string]any
	// DesiredMetadata and ReportedMetadata mirror Desired and Reported:
	// every leaf (scalar or array) is {"timestamp": unix seconds of its
	// last update}, objects hold their members' metadata.
	DesiredMetadata  map[string]any
	ReportedMetadata map[string]any
	// Version counts accepted updates since the shadow was created; 0
	// means the shadow does not exist.
	Version int64
	// UpdatedAt is the server time of the last update.
	UpdatedAt time.Time
	// Timestamp is the device's timestamp of the last report through
	// devices/{id}/state, zero if none.
	Timestamp time.Time
}

// State returns the reported view of d.
func (d Document) State() State {
	rep := d.Reported
	if rep == nil {
		rep = map[string]any{}
	}
	return State{Thing: d.Thing, Reported: rep, Version: d.Version, UpdatedAt: d.UpdatedAt, Timestamp: d.Timestamp}
}

// Delta returns the desired fields that differ from the reported ones (nil
// when they agree): a desired object is compared member by member, any
// other value (arrays included) as a whole.
func (d Document) Delta() map[string]any { return delta(d.Desired, d.Reported) }

// DeltaMetadata returns the desired metadata of the fields in delta.
func (d Document) DeltaMetadata(delta map[string]any) map[string]any {
	return projectMeta(delta, d.DesiredMetadata)
}

// Update is a change to a shadow. A nil map leaves its section alone; a
// value of nil inside a map deletes that field.
type Update struct {
	Desired  map[string]any
	Reported map[string]any
	// ClearDesired and ClearReported empty a section first (an update's
	// "desired": null or "reported": null).
	ClearDesired  bool
	ClearReported bool
	// Version, when not zero, must equal the current version (optimistic
	// locking); otherwise the update fails with ErrVersionConflict.
	Version int64
}

// Result is the outcome of an accepted update.
type Result struct {
	// Previous is the shadow before the update; Existed reports whether it
	// existed (Previous.Version > 0).
	Previous Document
	Existed  bool
	Current  Document
}

// delta returns the members of desired that reported lacks or holds a
// different value for.
func delta(desired, reported map[string]any) map[string]any {
	var out map[string]any
	for k, dv := range desired {
		rv, ok := reported[k]
		if dm, isObj := dv.(map[string]any); isObj && ok {
			if rm, isObj := rv.(map[string]any); isObj {
				if sub := delta(dm, rm); len(sub) > 0 {
					if out == nil {
						out = map[string]any{}
					}
					out[k] = sub
				}
				continue
			}
		}
		if ok && jsonEqual(dv, rv) {
			continue
		}
		if out == nil {
			out = map[string]any{}
		}
		out[k] = cloneValue(dv)
	}
	return out
}

func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !jsonEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	default:
		return a == b
	}
}

// leafMeta is the metadata of one field.
func leafMeta(ts float64) map[string]any { return map[string]any{"timestamp": ts} }

func isLeafMeta(m map[string]any) bool {
	_, ok := m["timestamp"].(float64)
	return ok && len(m) == 1
}

// mergeMeta returns meta updated for a (normalized) patch applied at ts,
// following the merge rules of the state itself. meta is not modified.
func mergeMeta(meta, patch map[string]any, ts float64) map[string]any {
	out := make(map[string]any, len(meta)+len(patch))
	maps.Copy(out, meta)
	for k, pv := range patch {
		switch p := pv.(type) {
		case nil:
			delete(out, k)
		case map[string]any:
			if d, ok := out[k].(map[string]any); ok && !isLeafMeta(d) {
				out[k] = mergeMeta(d, p, ts)
			} else {
				out[k] = mergeMeta(nil, p, ts)
			}
		default:
			out[k] = leafMeta(ts)
		}
	}
	return out
}

// PatchMetadata returns the metadata an update's accepted response carries
// for patch: every field in it, nulls included, stamped with ts.
func PatchMetadata(patch map[string]any, ts int64) map[string]any {
	out := make(map[string]any, len(patch))
	for k, v := range patch {
		if m, ok := v.(map[string]any); ok {
			out[k] = PatchMetadata(m, ts)
			continue
		}
		out[k] = map[string]any{"timestamp": ts}
	}
	return out
}

// projectMeta returns the parts of meta that correspond to the fields of doc.
func projectMeta(doc, meta map[string]any) map[string]any {
	out := make(map[string]any, len(doc))
	for k, v := range doc {
		mv, ok := meta[k].(map[string]any)
		if !ok {
			continue
		}
		if sub, isObj := v.(map[string]any); isObj && !isLeafMeta(mv) {
			out[k] = projectMeta(sub, mv)
			continue
		}
		out[k] = mv
	}
	return out
}

func encodeMeta(des, rep map[string]any) ([]byte, error) {
	m := map[string]any{}
	if len(des) > 0 {
		m["desired"] = des
	}
	if len(rep) > 0 {
		m["reported"] = rep
	}
	return encode(m)
}

// decodeOptional decodes a stored object column, empty meaning none.
func decodeOptional(raw []byte) (map[string]any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	return decode(raw)
}
