package fleet

import (
	"context"

	"github.com/edgewise-iot/edgewise/internal/shadow"
)

// ShadowStore adapts the shadow store to Shadows: the classic shadow of
// each thing.
type ShadowStore struct{ Store *shadow.Store }

// View implements Shadows.
func (s ShadowStore) View(ctx context.Context, thing string, fn func(desired, reported map[string]any)) error {
	_, err := s.Store.View(ctx, thing, "", fn)
	return err
}
