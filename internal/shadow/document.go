package shadow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"strings"
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
