package shadow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// FuzzUpdateReported feeds device-supplied JSON through the merge, limits
// and persistence path and checks the invariants: no panic, only documented
// errors, the document stays within its limits, and what is stored decodes
// to exactly what is in memory.
func FuzzUpdateReported(f *testing.F) {
	seeds := []struct {
		initial, patch string
		useNumber      bool
	}{
		{`{"temp":21.5}`, `{"temp":22}`, false},
		{`{"net":{"ip":"1.2.3.4","rssi":-60}}`, `{"net":{"ip":null,"x":{"y":[1,null,{"z":null}]}}}`, true},
		{`{}`, `{"a":null}`, false},
		{`{"a":{"b":{"c":{"d":1}}}}`, `{"a":{"b":{"c":{"d":{"e":{"f":1}}}}}}`, false},
		{`{"a":1}`, `{"a":1e308,"b":-0,"c":1e-320,"d":123456789012345678901234567890}`, true},
		{`{"s":"<html>&\u2028"}`, `{"k\u0000":"\ud800"}`, false},
		{`{}`, `{"big":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`, false},
		{`not json`, `[]`, false},
	}
	for _, s := range seeds {
		f.Add([]byte(s.initial), []byte(s.patch), s.useNumber)
	}
	f.Fuzz(func(t *testing.T, initial, patch []byte, useNumber bool) {
		decodeObj := func(b []byte) (map[string]any, bool) {
			d := json.NewDecoder(bytes.NewReader(b))
			if useNumber {
				d.UseNumber()
			}
			var m map[string]any
			if d.Decode(&m) != nil {
				return nil, false
			}
			return m, true
		}
		p, ok := decodeObj(patch)
		if !ok {
			return
		}
		ctx := context.Background()
		b := newMem()
		s, err := NewWithBackend(b, Options{MaxDocumentBytes: 256, MaxDepth: 5, FlushInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(ctx)
		var version int64
		if init, ok := decodeObj(initial); ok {
			if _, err := s.UpdateReported(ctx, "dev", init, time.Time{}); err == nil {
				version = 1
			} else if !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("initial: undocumented error %v", err)
			}
		}
		st, err := s.UpdateReported(ctx, "dev", p, time.Time{})
		if err != nil {
			if !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("undocumented error %v", err)
			}
			return
		}
		if st.Version != version+1 {
			t.Fatalf("version %d after %d", st.Version, version)
		}
		for k, v := range p {
			if v == nil {
				if _, present := st.Reported[validUTF8(k)]; present {
					t.Fatalf("key %q set to null is still present", k)
				}
			}
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		r, ok := b.row("dev")
		if !ok {
			t.Fatal("nothing stored")
		}
		if len(r.Reported) > 256 {
			t.Fatalf("stored %d bytes over the limit", len(r.Reported))
		}
		reloaded, err := decode(r.Reported)
		if err != nil {
			t.Fatalf("stored document does not decode: %v", err)
		}
		a, _ := encode(reloaded)
		m, _ := encode(st.Reported)
		if !bytes.Equal(a, m) || !bytes.Equal(a, r.Reported) {
			t.Fatalf("memory and storage differ:\nmemory %s\nstored %s\nreload %s", m, r.Reported, a)
		}
	})
}
