package tsdb

import (
	"strings"
	"sync"
	"unsafe"
)

// names interns field names process-wide. The index keeps these strings
// as a series' field names, and writers that name fields with them (the
// line protocol handler does) make every key comparison on the write path
// a pointer comparison instead of a byte comparison. The table is bounded:
// past maxNames distinct names, new ones are returned as plain copies,
// which are equally correct.
var names struct {
	sync.RWMutex
	m map[string]string
}

const maxNames = 1 << 16

// InternName returns the process' shared string equal to b (a new one
// when b is new), never aliasing b.
func InternName(b []byte) string {
	return internName(unsafe.String(unsafe.SliceData(b), len(b)))
}

// internName is InternName for a string that may alias a caller's buffer.
func internName(s string) string {
	names.RLock()
	t, ok := names.m[s]
	names.RUnlock()
	if ok {
		return t
	}
	t = strings.Clone(s)
	names.Lock()
	defer names.Unlock()
	if u, ok := names.m[t]; ok {
		return u
	}
	if names.m == nil {
		names.m = make(map[string]string)
	}
	if len(names.m) < maxNames {
		names.m[t] = t
	}
	return t
}
