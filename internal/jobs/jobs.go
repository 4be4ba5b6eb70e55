package jobs

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewise-iot/edgewise/internal/registry"
)

// Status of a job.
type Status string

// Job statuses.
const (
	InProgress Status = "in_progress"
	Completed  Status = "completed"
	Canceled   Status = "canceled"
	Aborted    Status = "aborted"
)

// ExecStatus of one thing's execution.
type ExecStatus string

// Execution statuses.
const (
	ExecQueued     ExecStatus = "queued"
	ExecInProgress ExecStatus = "in_progress"
	ExecSucceeded  ExecStatus = "succeeded"
	ExecFailed     ExecStatus = "failed"
	ExecRejected   ExecStatus = "rejected"
	ExecTimedOut   ExecStatus = "timed_out"
	ExecCanceled   ExecStatus = "canceled"
)

// Final reports whether s is terminal.
func (s ExecStatus) Final() bool { return s != ExecQueued && s != ExecInProgress }

func (s ExecStatus) failure() bool { return s == ExecFailed || s == ExecRejected || s == ExecTimedOut }

// aws is the status's name on the device topics.
func (s ExecStatus) aws() string { return strings.ToUpper(string(s)) }

// Sentinel errors.
var (
	ErrNotFound          = errors.New("jobs: no such job")
	ErrInvalid           = errors.New("jobs: invalid job")
	ErrExists            = errors.New("jobs: job id already used")
	ErrConflict          = errors.New("jobs: job is not in progress")
	ErrClosed            = errors.New("jobs: service closed")
	ErrGroupsUnavailable = errors.New("jobs: thing groups are not available yet; target things by name or by registry query")
)

// Limits and defaults.
const (
	MaxTargets           = 100_000
	MaxDocumentBytes     = 32 << 10
	DefaultFlushInterval = 100 * time.Millisecond
	DefaultTickInterval  = 250 * time.Millisecond
)

// Targets select the things of a job.
type Targets struct {
	// Things lists things by name.
	Things []string `json:"things,omitempty"`
	// Query selects things from the registry; all of its conditions must
	// hold.
	Query *Query `json:"query,omitempty"`
	// Group selects the things of a thing group: a static group's members
	// and those of its descendant groups, or a dynamic group's matches.
	Group string `json:"group,omitempty"`
}

// Query is a registry query: thing type and attribute equality.
type Query struct {
	Type       string            `json:"type,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

// Abort configures automatic abort.
type Abort struct {
	// FailurePercent (0 < p <= 100) of finished executions that failed,
	// were rejected or timed out aborts the job...
	FailurePercent float64 `json:"failure_percent"`
	// ...once at least MinExecuted executions have finished (>= 1).
	MinExecuted int `json:"min_executed"`
}

// Duration is a time.Duration written as "30s" in JSON.
type Duration time.Duration

// MarshalJSON writes a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"10m\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// Spec is a job to create.
type Spec struct {
	// ID is optional (generated when empty): 1 to 64 of a-z A-Z 0-9 _ -.
	ID          string         `json:"id,omitempty"`
	Description string         `json:"description,omitempty"`
	Document    map[string]any `json:"document"`
	Targets     Targets        `json:"targets"`
	// RolloutPerMinute limits how many executions are released per
	// minute; 0 releases all at once.
	RolloutPerMinute int    `json:"rollout_per_minute,omitempty"`
	Abort            *Abort `json:"abort,omitempty"`
	// InProgressTimeout bounds how long an execution may stay in progress
	// (0: no limit).
	InProgressTimeout Duration `json:"in_progress_timeout,omitempty"`
}

// Job is a job and its progress.
type Job struct {
	Spec
	Status      Status             `json:"status"`
	Reason      string             `json:"reason,omitempty"`
	CreatedAt   time.Time          `json:"created_at"`
	CompletedAt *time.Time         `json:"completed_at,omitempty"`
	Total       int                `json:"total"`
	Released    int                `json:"released"`
	Counts      map[ExecStatus]int `json:"counts"`
}

// Execution is one thing's run of a job.
type Execution struct {
	JobID         string            `json:"job_id"`
	Thing         string            `json:"thing"`
	Status        ExecStatus        `json:"status"`
	StatusDetails map[string]string `json:"status_details,omitempty"`
	QueuedAt      time.Time         `json:"queued_at"`
	ReleasedAt    *time.Time        `json:"released_at,omitempty"`
	StartedAt     *time.Time        `json:"started_at,omitempty"`
	UpdatedAt     time.Time         `json:"updated_at"`
	Version       int64             `json:"version"`
}

// Things is what jobs need of the registry.
type Things interface {
	GetThing(ctx context.Context, name string) (registry.Thing, error)
	ListThings(ctx context.Context, o registry.ListOptions) ([]registry.Thing, string, error)
}

// Groups resolves thing groups to thing names (internal/fleet.Index).
type Groups interface {
	// GroupThings returns the things of group, failing beyond max.
	GroupThings(ctx context.Context, group string, max int) ([]string, error)
}

// Publisher sends server-originated messages (the broker).
type Publisher interface {
	Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error
}

// Options configure a Service.
type Options struct {
	Logger        *slog.Logger
	FlushInterval time.Duration
	TickInterval  time.Duration // rollout, timeouts
	Now           func() time.Time
	// Groups enables group targets; nil refuses them with
	// ErrGroupsUnavailable.
	Groups Groups
}

// Service runs jobs. It is a broker.PublishHook for the device topics.
type Service struct {
	db   *sql.DB
	reg  Things
	pub  Publisher
	log  *slog.Logger
	opts Options
	now  func() time.Time

	mu      sync.Mutex
	jobs    map[string]*job    // active jobs, and finished ones until flushed
	byThing map[string][]*exec // released unfinished executions, oldest job first
	dirty   map[*exec]struct{}
	dirtyJ  map[*job]struct{}

	flushMu sync.Mutex
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	closed  atomic.Bool

	requests, rejected atomic.Uint64
}

type job struct {
	j     Job
	execs []*exec
	index map[string]*exec
}

type exec struct {
	job *job
	e   Execution
}

// New migrates the jobs schema, loads the jobs in progress and starts the
// background worker. pub may be set later with SetPublisher.
func New(ctx context.Context, db *sql.DB, reg Things, pub Publisher, opts Options) (*Service, error) {
	if db == nil || reg == nil {
		return nil, errors.New("jobs: database and registry are required")
	}
	if err := migrate(ctx, db); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.TickInterval <= 0 {
		opts.TickInterval = DefaultTickInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Service{db: db, reg: reg, pub: pub, log: opts.Logger, opts: opts, now: opts.Now,
		jobs: map[string]*job{}, byThing: map[string][]*exec{}, dirty: map[*exec]struct{}{}, dirtyJ: map[*job]struct{}{},
		stop: make(chan struct{}), done: make(chan struct{})}
	active, err := loadActive(ctx, db)
	if err != nil {
		return nil, err
	}
	for _, aj := range active {
		jb := &job{j: aj.job, index: map[string]*exec{}}
		for _, e := range aj.execs {
			x := &exec{job: jb, e: e}
			jb.execs = append(jb.execs, x)
			jb.index[e.Thing] = x
			if e.ReleasedAt != nil && !e.Status.Final() {
				s.byThing[e.Thing] = append(s.byThing[e.Thing], x)
			}
		}
		s.jobs[jb.j.ID] = jb
	}
	for t := range s.byThing {
		s.sortThing(t)
	}
	go s.run()
	return s, nil
}

// SetPublisher sets the publisher; call it before traffic flows.
func (s *Service) SetPublisher(p Publisher) { s.pub = p }

func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Create validates spec, resolves its targets and stores the job with one
// queued execution per target. Executions are released by the worker
// according to the rollout rate.
func (s *Service) Create(ctx context.Context, spec Spec) (Job, error) {
	if s.closed.Load() {
		return Job{}, ErrClosed
	}
	if spec.ID == "" {
		b := make([]byte, 8)
		if _, err := rand.Read(b); err != nil {
			return Job{}, fmt.Errorf("jobs: id: %w", err)
		}
		spec.ID = "job-" + hex.EncodeToString(b)
	}
	if !validID(spec.ID) {
		return Job{}, fmt.Errorf("%w: id %q must be 1 to 64 of a-z A-Z 0-9 _ -", ErrInvalid, spec.ID)
	}
	if spec.Document == nil {
		return Job{}, fmt.Errorf("%w: a job needs a document (a JSON object)", ErrInvalid)
	}
	if b, err := json.Marshal(spec.Document); err != nil || len(b) > MaxDocumentBytes {
		return Job{}, fmt.Errorf("%w: the document must be JSON of at most %d bytes", ErrInvalid, MaxDocumentBytes)
	}
	if spec.RolloutPerMinute < 0 {
		return Job{}, fmt.Errorf("%w: rollout_per_minute must not be negative", ErrInvalid)
	}
	if a := spec.Abort; a != nil && (a.FailurePercent <= 0 || a.FailurePercent > 100 || a.MinExecuted < 1) {
		return Job{}, fmt.Errorf("%w: abort needs 0 < failure_percent <= 100 and min_executed >= 1", ErrInvalid)
	}
	if spec.InProgressTimeout < 0 {
		return Job{}, fmt.Errorf("%w: in_progress_timeout must not be negative", ErrInvalid)
	}
	things, err := s.resolve(ctx, spec.Targets)
	if err != nil {
		return Job{}, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	jb := &job{j: Job{Spec: spec, Status: InProgress, CreatedAt: now, Total: len(things)}, index: map[string]*exec{}}
	for _, t := range things {
		x := &exec{job: jb, e: Execution{JobID: spec.ID, Thing: t, Status: ExecQueued, QueuedAt: now, UpdatedAt: now, Version: 1}}
		jb.execs = append(jb.execs, x)
		jb.index[t] = x
	}
	if err := insertJob(ctx, s.db, jb.j, jb.execs); err != nil {
		return Job{}, err
	}
	s.mu.Lock()
	s.jobs[spec.ID] = jb
	notify := s.releaseLocked(jb, now)
	out := s.viewLocked(jb)
	s.mu.Unlock()
	s.notifyThings(ctx, notify)
	return out, nil
}

// resolve returns the sorted, distinct thing names of t.
func (s *Service) resolve(ctx context.Context, t Targets) ([]string, error) {
	if t.Group != "" && s.opts.Groups == nil {
		return nil, ErrGroupsUnavailable
	}
	if len(t.Things) == 0 && t.Query == nil && t.Group == "" {
		return nil, fmt.Errorf("%w: targets need things, a query or a group", ErrInvalid)
	}
	set := map[string]struct{}{}
	if t.Group != "" {
		names, err := s.opts.Groups.GroupThings(ctx, t.Group, MaxTargets)
		if err != nil {
			return nil, fmt.Errorf("%w: target group: %v", ErrInvalid, err)
		}
		for _, n := range names {
			set[n] = struct{}{}
		}
	}
	for _, name := range t.Things {
		if _, err := s.reg.GetThing(ctx, name); err != nil {
			if errors.Is(err, registry.ErrNotFound) {
				return nil, fmt.Errorf("%w: target thing %q does not exist", ErrInvalid, name)
			}
			return nil, fmt.Errorf("jobs: resolve %q: %w", name, err)
		}
		set[name] = struct{}{}
		if len(set) > MaxTargets {
			return nil, fmt.Errorf("%w: more than %d targets", ErrInvalid, MaxTargets)
		}
	}
	if q := t.Query; q != nil {
		after := ""
		for {
			page, next, err := s.reg.ListThings(ctx, registry.ListOptions{Type: q.Type, After: after, Limit: registry.MaxListLimit})
			if err != nil {
				return nil, fmt.Errorf("jobs: query registry: %w", err)
			}
			for _, th := range page {
				ok := true
				for k, v := range q.Attributes {
					if th.Attributes[k] != v {
						ok = false
						break
					}
				}
				if ok {
					set[th.Name] = struct{}{}
				}
			}
			if len(set) > MaxTargets {
				return nil, fmt.Errorf("%w: more than %d targets", ErrInvalid, MaxTargets)
			}
			if next == "" {
				break
			}
			after = next
		}
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("%w: the targets match no thing", ErrInvalid)
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// releaseLocked releases the executions the rollout allows by now and
// returns the things whose next execution changed. s.mu is held.
func (s *Service) releaseLocked(jb *job, now time.Time) []string {
	if jb.j.Status != InProgress || jb.j.Released >= len(jb.execs) {
		return nil
	}
	allowed := len(jb.execs)
	if r := jb.j.RolloutPerMinute; r > 0 {
		allowed = min(allowed, 1+int(float64(r)*now.Sub(jb.j.CreatedAt).Minutes()))
	}
	var changed []string
	for jb.j.Released < allowed {
		x := jb.execs[jb.j.Released]
		jb.j.Released++
		if x.e.Status.Final() {
			continue
		}
		t := now
		x.e.ReleasedAt = &t
		s.markLocked(x)
		s.byThing[x.e.Thing] = append(s.byThing[x.e.Thing], x)
		s.sortThing(x.e.Thing)
		if s.byThing[x.e.Thing][0] == x {
			changed = append(changed, x.e.Thing)
		}
	}
	return changed
}

// sortThing orders a thing's executions: in progress first, then by job
// creation.
func (s *Service) sortThing(thing string) {
	xs := s.byThing[thing]
	sort.SliceStable(xs, func(i, j int) bool {
		a, b := xs[i], xs[j]
		if (a.e.Status == ExecInProgress) != (b.e.Status == ExecInProgress) {
			return a.e.Status == ExecInProgress
		}
		if !a.job.j.CreatedAt.Equal(b.job.j.CreatedAt) {
			return a.job.j.CreatedAt.Before(b.job.j.CreatedAt)
		}
		return a.job.j.ID < b.job.j.ID
	})
}

// unlinkLocked removes a finished execution from its thing's list and
// reports whether it was the thing's next one. s.mu is held.
func (s *Service) unlinkLocked(x *exec) bool {
	xs := s.byThing[x.e.Thing]
	for i, y := range xs {
		if y == x {
			xs = append(xs[:i:i], xs[i+1:]...)
			if len(xs) == 0 {
				delete(s.byThing, x.e.Thing)
			} else {
				s.byThing[x.e.Thing] = xs
			}
			return i == 0
		}
	}
	return false
}

func (s *Service) markLocked(x *exec) { s.dirty[x] = struct{}{} }

// setStatusLocked moves x to st and updates its job (abort, completion).
// It returns the things whose next execution changed. s.mu is held.
func (s *Service) setStatusLocked(x *exec, st ExecStatus, details map[string]string, now time.Time) []string {
	var changed []string
	if st == ExecInProgress && x.e.StartedAt == nil {
		t := now
		x.e.StartedAt = &t
	}
	prev := x.e.Status
	x.e.Status = st
	if details != nil {
		x.e.StatusDetails = details
	}
	x.e.UpdatedAt = now
	x.e.Version++
	s.markLocked(x)
	if st.Final() {
		if s.unlinkLocked(x) {
			changed = append(changed, x.e.Thing)
		}
	} else if prev != st {
		s.sortThing(x.e.Thing)
	}
	jb := x.job
	if st.Final() && jb.j.Status == InProgress {
		changed = append(changed, s.checkJobLocked(jb, now)...)
	}
	return changed
}

// checkJobLocked aborts or completes jb when due. s.mu is held.
func (s *Service) checkJobLocked(jb *job, now time.Time) []string {
	executed, failures, open := 0, 0, 0
	for _, y := range jb.execs {
		switch {
		case !y.e.Status.Final():
			open++
		case y.e.Status == ExecCanceled:
		default:
			executed++
			if y.e.Status.failure() {
				failures++
			}
		}
	}
	if a := jb.j.Abort; a != nil && open > 0 && executed >= a.MinExecuted && float64(failures)*100 >= a.FailurePercent*float64(executed) {
		reason := fmt.Sprintf("aborted: %d of %d finished executions failed (%.1f%%), threshold %.1f%% after %d",
			failures, executed, float64(failures)*100/float64(executed), a.FailurePercent, a.MinExecuted)
		return s.endJobLocked(jb, Aborted, reason, now)
	}
	if open == 0 {
		s.finishJobLocked(jb, Completed, "", now)
	}
	return nil
}

// endJobLocked cancels jb's unfinished executions and ends it.
func (s *Service) endJobLocked(jb *job, st Status, reason string, now time.Time) []string {
	var changed []string
	jb.j.Status = st // before canceling: no re-entry into checkJobLocked
	for _, y := range jb.execs {
		if !y.e.Status.Final() {
			changed = append(changed, s.setStatusLocked(y, ExecCanceled, nil, now)...)
		}
	}
	s.finishJobLocked(jb, st, reason, now)
	return changed
}

func (s *Service) finishJobLocked(jb *job, st Status, reason string, now time.Time) {
	t := now
	jb.j.Status, jb.j.Reason, jb.j.CompletedAt = st, reason, &t
	s.dirtyJ[jb] = struct{}{}
}

// Cancel cancels a job in progress: its unfinished executions become
// canceled. ErrConflict if the job is already over.
func (s *Service) Cancel(ctx context.Context, id, reason string) (Job, error) {
	s.mu.Lock()
	jb, ok := s.jobs[id]
	if !ok || jb.j.Status != InProgress {
		s.mu.Unlock()
		if _, err := s.Get(ctx, id); err != nil {
			return Job{}, err
		}
		return Job{}, fmt.Errorf("%w: %q", ErrConflict, id)
	}
	if reason == "" {
		reason = "canceled by request"
	}
	changed := s.endJobLocked(jb, Canceled, reason, s.now().UTC().Truncate(time.Millisecond))
	out := s.viewLocked(jb)
	s.mu.Unlock()
	s.notifyThings(ctx, changed)
	if err := s.Flush(ctx); err != nil {
		return out, err
	}
	return out, nil
}

// viewLocked returns a copy of jb with counts. s.mu is held.
func (s *Service) viewLocked(jb *job) Job {
	j := jb.j
	j.Counts = map[ExecStatus]int{}
	for _, x := range jb.execs {
		j.Counts[x.e.Status]++
	}
	j.Document = maps.Clone(j.Document)
	return j
}

// Get returns a job with its execution counts.
func (s *Service) Get(ctx context.Context, id string) (Job, error) {
	s.mu.Lock()
	if jb, ok := s.jobs[id]; ok {
		j := s.viewLocked(jb)
		s.mu.Unlock()
		return j, nil
	}
	s.mu.Unlock()
	return loadJob(ctx, s.db, id)
}

// List returns jobs, newest first, optionally of one status.
func (s *Service) List(ctx context.Context, status Status, limit int, after string) ([]Job, string, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	if err := s.Flush(ctx); err != nil {
		return nil, "", err
	}
	js, err := listJobs(ctx, s.db, status, limit, after)
	if err != nil {
		return nil, "", err
	}
	s.mu.Lock()
	for i := range js {
		if jb, ok := s.jobs[js[i].ID]; ok {
			js[i] = s.viewLocked(jb)
		}
	}
	s.mu.Unlock()
	next := ""
	if len(js) == limit {
		next = js[len(js)-1].ID
	}
	return js, next, nil
}

// Executions returns a job's executions, optionally of one status, sorted
// by thing.
func (s *Service) Executions(ctx context.Context, id string, status ExecStatus) ([]Execution, error) {
	s.mu.Lock()
	if jb, ok := s.jobs[id]; ok {
		out := []Execution{}
		for _, x := range jb.execs {
			if status == "" || x.e.Status == status {
				out = append(out, x.e)
			}
		}
		s.mu.Unlock()
		return out, nil
	}
	s.mu.Unlock()
	if _, err := loadJob(ctx, s.db, id); err != nil {
		return nil, err
	}
	return loadExecutions(ctx, s.db, id, status)
}

// run releases executions, times them out and flushes.
func (s *Service) run() {
	defer close(s.done)
	tick := time.NewTicker(s.opts.TickInterval)
	defer tick.Stop()
	flush := time.NewTicker(s.opts.FlushInterval)
	defer flush.Stop()
	ctx := context.Background()
	for {
		select {
		case <-s.stop:
			return
		case <-flush.C:
			if err := s.Flush(ctx); err != nil {
				s.log.Warn("jobs: flush failed; retrying", "err", err)
			}
		case <-tick.C:
			s.tick(ctx)
		}
	}
}

func (s *Service) tick(ctx context.Context) {
	now := s.now().UTC().Truncate(time.Millisecond)
	var changed []string
	s.mu.Lock()
	for _, jb := range s.jobs {
		if jb.j.Status != InProgress {
			continue
		}
		changed = append(changed, s.releaseLocked(jb, now)...)
		if to := time.Duration(jb.j.InProgressTimeout); to > 0 {
			for _, x := range jb.execs {
				if jb.j.Status == InProgress && x.e.Status == ExecInProgress && x.e.StartedAt != nil && !now.Before(x.e.StartedAt.Add(to)) {
					changed = append(changed, s.setStatusLocked(x, ExecTimedOut, map[string]string{"reason": "in progress longer than " + to.String()}, now)...)
				}
			}
		}
	}
	s.mu.Unlock()
	s.notifyThings(ctx, changed)
}

// Flush writes changed executions and jobs in one transaction and forgets
// finished jobs.
func (s *Service) Flush(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	if len(s.dirty) == 0 && len(s.dirtyJ) == 0 {
		s.mu.Unlock()
		return nil
	}
	execs := make([]Execution, 0, len(s.dirty))
	for x := range s.dirty {
		execs = append(execs, x.e)
	}
	var js []*job
	var jv []Job
	for jb := range s.dirtyJ {
		js = append(js, jb)
		jv = append(jv, jb.j)
	}
	dirty, dirtyJ := s.dirty, s.dirtyJ
	s.dirty, s.dirtyJ = map[*exec]struct{}{}, map[*job]struct{}{}
	s.mu.Unlock()
	if err := saveBatch(ctx, s.db, execs, jv); err != nil {
		s.mu.Lock()
		maps.Copy(s.dirty, dirty)
		maps.Copy(s.dirtyJ, dirtyJ)
		s.mu.Unlock()
		return err
	}
	s.mu.Lock()
	for _, jb := range js {
		if jb.j.Status == InProgress {
			continue
		}
		pending := false
		for _, x := range jb.execs {
			if _, ok := s.dirty[x]; ok {
				pending = true
				break
			}
		}
		if _, ok := s.dirtyJ[jb]; !ok && !pending {
			delete(s.jobs, jb.j.ID)
		}
	}
	s.mu.Unlock()
	return nil
}

// Close stops the worker and flushes.
func (s *Service) Close(ctx context.Context) error {
	s.once.Do(func() {
		s.closed.Store(true)
		close(s.stop)
	})
	select {
	case <-s.done:
	case <-ctx.Done():
		return fmt.Errorf("jobs: close: %w", ctx.Err())
	}
	return s.Flush(ctx)
}
