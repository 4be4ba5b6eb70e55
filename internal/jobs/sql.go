package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/edgewise-iot/edgewise/internal/store"
)

// Component is the schema component of the jobs tables.
const Component = "jobs"

var migrations = []string{
	`CREATE TABLE jobs (
		id           TEXT   NOT NULL PRIMARY KEY,
		spec         TEXT   NOT NULL,
		status       TEXT   NOT NULL,
		reason       TEXT   NOT NULL DEFAULT '',
		total        INTEGER NOT NULL,
		created_at   BIGINT NOT NULL,
		completed_at BIGINT NOT NULL DEFAULT 0
	);
	CREATE INDEX jobs_created ON jobs (created_at);
	CREATE TABLE job_executions (
		job_id         TEXT   NOT NULL,
		thing          TEXT   NOT NULL,
		status         TEXT   NOT NULL,
		status_details TEXT   NOT NULL DEFAULT '',
		queued_at      BIGINT NOT NULL,
		released_at    BIGINT NOT NULL DEFAULT 0,
		started_at     BIGINT NOT NULL DEFAULT 0,
		updated_at     BIGINT NOT NULL,
		version        BIGINT NOT NULL,
		PRIMARY KEY (job_id, thing)
	);
	CREATE INDEX job_executions_thing ON job_executions (thing, status)`,
}

func migrate(ctx context.Context, db *sql.DB) error {
	if err := store.Migrate(ctx, db, Component, migrations); err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	return nil
}

func ms(t *time.Time) int64 {
	if t == nil {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) *time.Time {
	if v == 0 {
		return nil
	}
	t := time.UnixMilli(v).UTC()
	return &t
}

func insertJob(ctx context.Context, db *sql.DB, j Job, execs []*exec) error {
	spec, err := json.Marshal(j.Spec)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("jobs: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM jobs WHERE id = ?`, j.ID).Scan(&n); err != nil {
		return fmt.Errorf("jobs: insert: %w", err)
	}
	if n > 0 {
		return fmt.Errorf("%w: %q", ErrExists, j.ID)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO jobs (id, spec, status, total, created_at) VALUES (?, ?, ?, ?, ?)`,
		j.ID, string(spec), string(j.Status), j.Total, j.CreatedAt.UnixMilli()); err != nil {
		return fmt.Errorf("jobs: insert: %w", err)
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO job_executions (job_id, thing, status, queued_at, updated_at, version) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("jobs: insert: %w", err)
	}
	defer stmt.Close()
	for _, x := range execs {
		if _, err := stmt.ExecContext(ctx, x.e.JobID, x.e.Thing, string(x.e.Status), x.e.QueuedAt.UnixMilli(), x.e.UpdatedAt.UnixMilli(), x.e.Version); err != nil {
			return fmt.Errorf("jobs: insert execution: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("jobs: commit: %w", err)
	}
	return nil
}

func saveBatch(ctx context.Context, db *sql.DB, execs []Execution, js []Job) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("jobs: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if len(execs) > 0 {
		stmt, err := tx.PrepareContext(ctx, `UPDATE job_executions SET status = ?, status_details = ?, released_at = ?, started_at = ?, updated_at = ?, version = ? WHERE job_id = ? AND thing = ?`)
		if err != nil {
			return fmt.Errorf("jobs: prepare: %w", err)
		}
		defer stmt.Close()
		for _, e := range execs {
			det := ""
			if len(e.StatusDetails) > 0 {
				b, _ := json.Marshal(e.StatusDetails)
				det = string(b)
			}
			if _, err := stmt.ExecContext(ctx, string(e.Status), det, ms(e.ReleasedAt), ms(e.StartedAt), e.UpdatedAt.UnixMilli(), e.Version, e.JobID, e.Thing); err != nil {
				return fmt.Errorf("jobs: save execution: %w", err)
			}
		}
	}
	for _, j := range js {
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET status = ?, reason = ?, completed_at = ? WHERE id = ?`,
			string(j.Status), j.Reason, ms(j.CompletedAt), j.ID); err != nil {
			return fmt.Errorf("jobs: save job: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("jobs: commit: %w", err)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func scanJob(r scanner) (Job, error) {
	var j Job
	var spec, status string
	var created, completed int64
	if err := r.Scan(&spec, &status, &j.Reason, &j.Total, &created, &completed); err != nil {
		return Job{}, err
	}
	if err := json.Unmarshal([]byte(spec), &j.Spec); err != nil {
		return Job{}, fmt.Errorf("jobs: stored spec: %w", err)
	}
	j.Status = Status(status)
	j.CreatedAt = time.UnixMilli(created).UTC()
	j.CompletedAt = fromMS(completed)
	return j, nil
}

const jobCols = `spec, status, reason, total, created_at, completed_at`

func loadJob(ctx context.Context, db *sql.DB, id string) (Job, error) {
	j, err := scanJob(db.QueryRowContext(ctx, `SELECT `+jobCols+` FROM jobs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	if err != nil {
		return Job{}, fmt.Errorf("jobs: load: %w", err)
	}
	if err := counts(ctx, db, &j); err != nil {
		return Job{}, err
	}
	return j, nil
}

func counts(ctx context.Context, db *sql.DB, j *Job) error {
	rows, err := db.QueryContext(ctx, `SELECT status, COUNT(*), SUM(CASE WHEN released_at > 0 THEN 1 ELSE 0 END) FROM job_executions WHERE job_id = ? GROUP BY status`, j.ID)
	if err != nil {
		return fmt.Errorf("jobs: counts: %w", err)
	}
	defer rows.Close()
	j.Counts = map[ExecStatus]int{}
	j.Released = 0
	for rows.Next() {
		var st string
		var n, rel int
		if err := rows.Scan(&st, &n, &rel); err != nil {
			return fmt.Errorf("jobs: counts: %w", err)
		}
		j.Counts[ExecStatus(st)] = n
		j.Released += rel
	}
	return rows.Err()
}

func listJobs(ctx context.Context, db *sql.DB, status Status, limit int, after string) ([]Job, error) {
	q := `SELECT ` + jobCols + `, id FROM jobs WHERE 1 = 1`
	var args []any
	if status != "" {
		q += ` AND status = ?`
		args = append(args, string(status))
	}
	if after != "" {
		var created int64
		if err := db.QueryRowContext(ctx, `SELECT created_at FROM jobs WHERE id = ?`, after).Scan(&created); err != nil {
			return nil, fmt.Errorf("%w: cursor %q is not a job", ErrInvalid, after)
		}
		q += ` AND (created_at < ? OR (created_at = ? AND id < ?))`
		args = append(args, created, created, after)
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("jobs: list: %w", err)
	}
	var out []Job
	for rows.Next() {
		var id string
		var j Job
		var spec, st string
		var created, completed int64
		if err := rows.Scan(&spec, &st, &j.Reason, &j.Total, &created, &completed, &id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("jobs: list: %w", err)
		}
		if err := json.Unmarshal([]byte(spec), &j.Spec); err != nil {
			rows.Close()
			return nil, fmt.Errorf("jobs: stored spec: %w", err)
		}
		j.Status, j.CreatedAt, j.CompletedAt = Status(st), time.UnixMilli(created).UTC(), fromMS(completed)
		out = append(out, j)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("jobs: list: %w", err)
	}
	for i := range out {
		if err := counts(ctx, db, &out[i]); err != nil {
			return nil, err
		}
	}
	if out == nil {
		out = []Job{}
	}
	return out, nil
}

func loadExecutions(ctx context.Context, db *sql.DB, id string, status ExecStatus) ([]Execution, error) {
	q := `SELECT job_id, thing, status, status_details, queued_at, released_at, started_at, updated_at, version FROM job_executions WHERE job_id = ?`
	args := []any{id}
	if status != "" {
		q += ` AND status = ?`
		args = append(args, string(status))
	}
	rows, err := db.QueryContext(ctx, q+` ORDER BY thing`, args...)
	if err != nil {
		return nil, fmt.Errorf("jobs: executions: %w", err)
	}
	defer rows.Close()
	out := []Execution{}
	for rows.Next() {
		var e Execution
		var st, det string
		var queued, released, started, updated int64
		if err := rows.Scan(&e.JobID, &e.Thing, &st, &det, &queued, &released, &started, &updated, &e.Version); err != nil {
			return nil, fmt.Errorf("jobs: executions: %w", err)
		}
		e.Status = ExecStatus(st)
		if det != "" {
			_ = json.Unmarshal([]byte(det), &e.StatusDetails)
		}
		e.QueuedAt, e.UpdatedAt = time.UnixMilli(queued).UTC(), time.UnixMilli(updated).UTC()
		e.ReleasedAt, e.StartedAt = fromMS(released), fromMS(started)
		out = append(out, e)
	}
	return out, rows.Err()
}

type activeJob struct {
	job   Job
	execs []Execution
}

func loadActive(ctx context.Context, db *sql.DB) ([]activeJob, error) {
	rows, err := db.QueryContext(ctx, `SELECT `+jobCols+` FROM jobs WHERE status = ? ORDER BY created_at, id`, string(InProgress))
	if err != nil {
		return nil, fmt.Errorf("jobs: load active: %w", err)
	}
	var out []activeJob
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, activeJob{job: j})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("jobs: load active: %w", err)
	}
	for i := range out {
		execs, err := loadExecutions(ctx, db, out[i].job.ID, "")
		if err != nil {
			return nil, err
		}
		out[i].execs = execs
		for _, e := range execs {
			if e.ReleasedAt != nil {
				out[i].job.Released++
			}
		}
	}
	return out, nil
}
