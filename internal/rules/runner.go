package rules

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewise-iot/edgewise/internal/rules/action"
	"github.com/edgewise-iot/edgewise/internal/rules/stream"
)

// runner runs one enabled rule: a goroutine that owns the compiled rule
// (stream rules are not safe for concurrent use), fed by a bounded queue.
type runner struct {
	m         *Manager
	def       Rule
	rule      *stream.Rule
	actions   []*action.Action
	errAction *action.Action
	durable   []*action.Action // actions (error action included) with a spool

	maxQueued int64
	queued    atomic.Int64

	mu      sync.Mutex // guards pending and stopped
	pending []inMsg    // messages waiting, at most maxQueued
	stopped bool
	wake    chan struct{} // capacity 1: pending is not empty, or stopped
	done    chan struct{}
	state   []byte // window state taken by the goroutine when it stops

	matched, passed, errors, dropped, errReports atomic.Uint64
	lat                                          histogram
	lastErr                                      atomic.Pointer[string]
	engine                                       atomic.Pointer[stream.RuleStats] // snapshot taken by the goroutine
}

func newRunner(m *Manager, def Rule, cr *stream.Rule) (*runner, error) {
	rr := &runner{
		m: m, def: def, rule: cr, maxQueued: int64(m.opts.QueueSize),
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	ao := m.actionOptions()
	ao.Logger = m.log.With("rule", def.Name)
	var dirs []string
	spoolDir := func(spec action.Spec, name string) string {
		if m.opts.SpoolDir == "" || !action.IsDurable(spec) {
			return ""
		}
		dirs = append(dirs, name)
		return filepath.Join(m.opts.SpoolDir, def.Name, name)
	}
	for i, spec := range def.Actions {
		ao.SpoolDir = spoolDir(spec, fmt.Sprintf("%d-%s", i, spec.Type))
		a, err := action.New(fmt.Sprintf("%s#%d", spec.Type, i), def.Name, spec, ao, rr.actionFailed)
		if err != nil {
			rr.closeActions(context.Background())
			return nil, fmt.Errorf("%w: actions[%d]: %w", ErrInvalid, i, err)
		}
		rr.actions = append(rr.actions, a)
	}
	if def.ErrorAction != nil {
		ao.SpoolDir = spoolDir(*def.ErrorAction, "error-"+def.ErrorAction.Type)
		a, err := action.New("error:"+def.ErrorAction.Type, def.Name, *def.ErrorAction, ao, rr.errorActionFailed)
		if err != nil {
			rr.closeActions(context.Background())
			return nil, fmt.Errorf("%w: error_action: %w", ErrInvalid, err)
		}
		rr.errAction = a
	}
	for _, a := range append(slices.Clip(rr.actions), rr.errAction) {
		if a != nil && a.Durable() {
			rr.durable = append(rr.durable, a)
		}
	}
	if m.opts.SpoolDir != "" {
		m.pruneSpools(def.Name, dirs)
	}
	go rr.run()
	return rr, nil
}

// pruneSpools removes the spools of a rule's actions that no longer exist
// (the rule was updated with other actions), discarding their items.
func (m *Manager) pruneSpools(rule string, keep []string) {
	dir := filepath.Join(m.opts.SpoolDir, rule)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if slices.Contains(keep, e.Name()) {
			continue
		}
		m.log.Warn("rule action spool discarded: the action was removed or is no longer durable", "rule", rule, "spool", e.Name())
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			m.log.Error("rule action spool not removed", "rule", rule, "err", err)
		}
	}
}

// commit makes what the durable actions queued durable.
func (rr *runner) commit() error {
	var errs []error
	for _, a := range rr.durable {
		if err := a.Sync(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		msg := err.Error()
		rr.lastErr.Store(&msg)
		rr.m.log.Error("rule action spool not written", "rule", rr.def.Name, "err", err)
		return fmt.Errorf("rules: rule %q: %w", rr.def.Name, err)
	}
	return nil
}

// offer queues msgs without blocking; what does not fit is dropped.
// Messages whose publisher waits for them (ack set) are always taken: the
// publisher's wait bounds them.
func (rr *runner) offer(msgs []inMsg) {
	n := int64(len(msgs))
	rr.mu.Lock()
	if rr.stopped || int64(len(rr.pending))+n > rr.maxQueued && !waited(msgs) {
		rr.mu.Unlock()
		rr.dropped.Add(uint64(n))
		for _, im := range msgs {
			if im.ack != nil {
				im.ack.done(nil)
			}
		}
		return
	}
	rr.pending = append(rr.pending, msgs...)
	rr.queued.Add(n)
	rr.mu.Unlock()
	rr.signal()
}

func (rr *runner) signal() {
	select {
	case rr.wake <- struct{}{}:
	default:
	}
}

func (rr *runner) run() {
	defer close(rr.done)
	t := time.NewTicker(rr.m.opts.TickInterval)
	defer t.Stop()
	rr.snapshot()
	var spare []inMsg
	for {
		select {
		case <-rr.wake:
			rr.mu.Lock()
			msgs, stopped := rr.pending, rr.stopped
			rr.pending = spare[:0]
			rr.mu.Unlock()
			for _, im := range msgs {
				rr.process(im)
			}
			// Outputs are on disk before the publishers' hooks return.
			var err error
			if len(rr.durable) > 0 {
				err = rr.commit()
			}
			for _, im := range msgs {
				if im.ack != nil {
					im.ack.done(err)
				}
			}
			rr.queued.Add(-int64(len(msgs)))
			clear(msgs) // drop references to processed messages
			spare = msgs
			if stopped {
				rr.snapshot()
				if rr.rule.Windowed() {
					st, err := rr.rule.State()
					if err != nil {
						rr.m.log.Error("rule window state not saved", "rule", rr.def.Name, "err", err)
					}
					rr.state = st
				}
				return
			}
		case now := <-t.C:
			if rr.rule.Windowed() {
				if outs := rr.rule.Tick(now); len(outs) > 0 {
					rr.emit(outs, nil)
					if len(rr.durable) > 0 {
						_ = rr.commit()
					}
				}
			}
			rr.snapshot()
		}
	}
}

// snapshot publishes the engine's counters for Stats (the rule itself may
// be read only by its goroutine).
func (rr *runner) snapshot() {
	s := rr.rule.Stats()
	rr.engine.Store(&s)
}

func originOf(rule string, im inMsg) *action.Origin {
	return &action.Origin{
		Rule: rule, Topic: im.m.Topic, ClientID: im.m.ClientID, Principal: im.m.Principal,
		Payload: im.m.Payload, Hops: im.hops,
	}
}

func (rr *runner) process(im inMsg) {
	rr.matched.Add(1)
	outs, err := rr.rule.Process(rr.m.ctx, im.m)
	rr.lat.observe(rr.m.opts.Now().Sub(im.m.Received))
	if err != nil {
		rr.errors.Add(1)
		msg := err.Error()
		rr.lastErr.Store(&msg)
		rr.report(originOf(rr.def.Name, im), msg, nil)
		return
	}
	if len(outs) == 0 {
		return
	}
	rr.emit(outs, originOf(rr.def.Name, im))
}

// emit hands outputs to every action; origin is nil for window outputs
// closed by the clock.
func (rr *runner) emit(outs []stream.Output, origin *action.Origin) {
	for i := range outs {
		out := &outs[i]
		rr.passed.Add(1)
		o := origin
		if o == nil {
			o = &action.Origin{Rule: rr.def.Name, Topic: out.Topic, ClientID: out.ClientID, Principal: out.Principal}
			if out.Source != nil {
				o.Payload = out.Source.Payload
			}
		}
		for _, a := range rr.actions {
			if err := a.Do(out, o); err != nil && err != action.ErrQueueFull && err != action.ErrClosed {
				// A template that cannot render is the rule's error; the
				// queue-full case was reported through actionFailed.
				msg := err.Error()
				rr.lastErr.Store(&msg)
				rr.report(o, "", []action.Failure{{Action: a.Stats().Name, Error: msg}})
			}
		}
	}
}

func (rr *runner) actionFailed(it *action.Item, f action.Failure) {
	msg := f.Error
	rr.lastErr.Store(&msg)
	rr.report(it.Origin, "", []action.Failure{f})
	// The failing action forgets the item once this returns: the report
	// must be on disk first.
	if rr.errAction != nil {
		if err := rr.errAction.Sync(); err != nil {
			rr.m.log.Error("rule error report not written", "rule", rr.def.Name, "err", err)
		}
	}
}

func (rr *runner) errorActionFailed(it *action.Item, f action.Failure) {
	rr.m.log.Error("rule error action failed; error report lost", "rule", rr.def.Name, "action", f.Action, "err", f.Error)
}

// report sends the documented error payload to the error action (if any).
func (rr *runner) report(o *action.Origin, evalErr string, failures []action.Failure) {
	rr.errReports.Add(1)
	if rr.errAction == nil {
		return
	}
	now := rr.m.opts.Now()
	out := &stream.Output{Rule: rr.def.Name, Row: errorRow(rr.def.Name, o, evalErr, failures, now), EventTime: now}
	if o != nil {
		out.Topic, out.ClientID, out.Principal = o.Topic, o.ClientID, o.Principal
	}
	if err := rr.errAction.Do(out, o); err != nil && err != action.ErrQueueFull && err != action.ErrClosed {
		rr.m.log.Error("rule error action cannot render the error report", "rule", rr.def.Name, "err", err)
	}
}

// close stops the rule: queued messages are processed, the window state is
// taken, then the actions deliver what they hold (bounded by ctx).
func (rr *runner) close(ctx context.Context) []byte {
	rr.mu.Lock()
	rr.stopped = true
	rr.mu.Unlock()
	rr.signal()
	<-rr.done
	rr.closeActions(ctx)
	return rr.state
}

func (rr *runner) closeActions(ctx context.Context) {
	for _, a := range rr.actions {
		if err := a.Close(ctx); err != nil {
			rr.m.log.Warn("rule action closed with errors", "rule", rr.def.Name, "err", err)
		}
	}
	// The error action closes last: the others may still report to it.
	if rr.errAction != nil {
		if err := rr.errAction.Close(ctx); err != nil {
			rr.m.log.Warn("rule error action closed with errors", "rule", rr.def.Name, "err", err)
		}
	}
}

func (rr *runner) fill(st *RuleStats) {
	st.Running = true
	st.Matched, st.Passed, st.Errors = rr.matched.Load(), rr.passed.Load(), rr.errors.Load()
	st.Dropped, st.Queued, st.ErrorReports = rr.dropped.Load(), rr.queued.Load(), rr.errReports.Load()
	st.LatencyP50, st.LatencyP99 = rr.lat.quantile(0.5), rr.lat.quantile(0.99)
	if p := rr.lastErr.Load(); p != nil {
		st.LastError = *p
	}
	st.Engine = rr.engine.Load()
	for _, a := range rr.actions {
		st.Actions = append(st.Actions, a.Stats())
	}
	if rr.errAction != nil {
		s := rr.errAction.Stats()
		st.ErrorAction = &s
	}
}

// waiter lets a publisher wait until the rules that took its QoS 1
// messages have processed them and spooled their outputs.
type waiter struct {
	n   atomic.Int64
	ch  chan struct{}
	mu  sync.Mutex
	err error
}

func newWaiter() *waiter { return &waiter{ch: make(chan struct{})} }

func (w *waiter) add() { w.n.Add(1) }

func (w *waiter) done(err error) {
	if err != nil {
		w.mu.Lock()
		if w.err == nil {
			w.err = err
		}
		w.mu.Unlock()
	}
	if w.n.Add(-1) == 0 {
		close(w.ch)
	}
}

// wait returns when every message was processed, with the first error.
func (w *waiter) wait(ctx context.Context) error {
	if w.n.Load() == 0 {
		return nil
	}
	select {
	case <-w.ch:
	case <-ctx.Done():
		return fmt.Errorf("rules: waiting for durable actions: %w", ctx.Err())
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func waited(msgs []inMsg) bool {
	for _, im := range msgs {
		if im.ack != nil {
			return true
		}
	}
	return false
}
