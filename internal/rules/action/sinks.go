package action

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

// PointWriter stores points; *tsdb.DB satisfies it.
type PointWriter interface {
	Write(ctx context.Context, points []tsdb.Point) error
}

// Republisher publishes a message produced by a rule back into the broker
// (to subscribers, storage and other rules). origin.Hops is the number of
// republish steps that led to the message being republished; the
// implementation uses it to break loops.
type Republisher interface {
	Republish(ctx context.Context, topic string, payload []byte, qos byte, retain bool, origin *Origin) error
}

// HTTPDoer sends HTTP requests; *http.Client satisfies it.
type HTTPDoer interface {
	Do(*http.Request) (*http.Response, error)
}

type tsdbSink struct{ w PointWriter }

func (s *tsdbSink) deliver(ctx context.Context, batch []*Item) error {
	pts := make([]tsdb.Point, 0, len(batch))
	for _, it := range batch {
		if it.Point != nil {
			pts = append(pts, *it.Point)
		}
	}
	if len(pts) == 0 {
		return nil
	}
	if err := s.w.Write(ctx, pts); err != nil {
		if errors.Is(err, tsdb.ErrInvalidPoint) || errors.Is(err, tsdb.ErrFieldTypeConflict) {
			return Permanent(fmt.Errorf("tsdb: %w", err))
		}
		return fmt.Errorf("tsdb: %w", err)
	}
	return nil
}

func (s *tsdbSink) close(context.Context) error { return nil }

type republishSink struct {
	r      Republisher
	qos    byte
	retain bool
}

func (s *republishSink) deliver(ctx context.Context, batch []*Item) error {
	for _, it := range batch {
		if err := s.r.Republish(ctx, it.Key, it.Body, s.qos, s.retain, it.Origin); err != nil {
			return fmt.Errorf("republish %q: %w", it.Key, err)
		}
	}
	return nil
}

func (s *republishSink) close(context.Context) error { return nil }

type webhookSink struct {
	client  HTTPDoer
	method  string
	timeout time.Duration
	bearer  string
	user    string
	pass    string
}

func (s *webhookSink) deliver(ctx context.Context, batch []*Item) error {
	for i, it := range batch {
		if err := s.send(ctx, it); err != nil {
			if i > 0 && !IsPermanent(err) {
				return &progressError{done: i, err: err}
			}
			if i > 0 {
				return Permanent(&progressError{done: i, err: err})
			}
			return err
		}
	}
	return nil
}

func (s *webhookSink) send(ctx context.Context, it *Item) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, s.method, it.Key, bytes.NewReader(it.Body))
	if err != nil {
		return Permanent(fmt.Errorf("webhook: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "edgewise-rules")
	if it.ID != "" {
		req.Header.Set("Idempotency-Key", it.ID)
	}
	for k, v := range it.Headers {
		req.Header.Set(k, v)
	}
	switch {
	case s.bearer != "":
		req.Header.Set("Authorization", "Bearer "+s.bearer)
	case s.user != "":
		req.SetBasicAuth(s.user, s.pass)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %s %s: %w", s.method, redactURL(it.Key), err)
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	err = fmt.Errorf("webhook %s %s: HTTP %d: %s", s.method, redactURL(it.Key), resp.StatusCode, strings.TrimSpace(string(msg)))
	if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
		return Permanent(err)
	}
	return err
}

func (s *webhookSink) close(context.Context) error { return nil }

// redactURL drops user info and the query from a URL for error messages.
func redactURL(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	if i := strings.Index(u, "://"); i >= 0 {
		if j := strings.LastIndex(u[i+3:], "@"); j >= 0 && !strings.Contains(u[i+3:i+3+j], "/") {
			u = u[:i+3] + u[i+3+j+1:]
		}
	}
	return u
}
