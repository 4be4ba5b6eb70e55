package shadow

import (
	"context"
	"fmt"
)

// View calls fn with the desired and reported sections of the shadow
// (thing, name) without copying them, and reports whether the shadow exists
// (fn is not called when it does not). fn runs with the shadow locked: it
// must be quick, must not keep or modify the maps, and must not call the
// Store. The fleet index uses it to evaluate shadow terms over many things.
func (s *Store) View(ctx context.Context, thing, name string, fn func(desired, reported map[string]any)) (bool, error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return false, fmt.Errorf("shadow: view %s: %w", quote(thing), ErrClosed)
	}
	if validKey(thing, name) != nil {
		return false, nil
	}
	e := s.lockEntry(key{thing, name})
	defer e.mu.Unlock()
	if err := s.load(ctx, e); err != nil {
		return false, fmt.Errorf("shadow: view %q: %w", thing, err)
	}
	if !e.exists {
		return false, nil
	}
	fn(e.desired, e.doc)
	return true, nil
}
