package action

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// maxParams is PostgreSQL's limit of bind parameters per statement.
const maxParams = 65535

// copyMin is the batch size from which the postgres sink uses COPY.
const copyMin = 16

// postgresSink stores a batch with COPY (from copyMin rows) or a multi-row
// INSERT, in one transaction, so a batch is stored entirely or not at all.
// When that fails on a row's data (SQLSTATE classes 22 and 23, or a value
// that cannot be encoded), the batch is inserted row by row inside one
// transaction with a savepoint per row: the good rows are committed
// together and the bad ones reported, each to the error action.
type postgresSink struct {
	url     string
	table   string // quoted
	ident   pgx.Identifier
	columns []string

	mu     sync.Mutex
	pool   *pgxpool.Pool
	noCopy atomic.Bool // COPY cannot encode this action's values
}

// encodeError reports whether COPY failed because pgx could not encode a
// value in binary format.
func encodeError(err error) bool {
	return strings.Contains(err.Error(), "unable to encode") || strings.Contains(err.Error(), "cannot find encode plan")
}

func tableIdent(t string) pgx.Identifier { return pgx.Identifier(strings.Split(t, ".")) }

func quoteTable(t string) string {
	return pgx.Identifier(strings.Split(t, ".")).Sanitize()
}

// rowError reports whether err is about a row's data rather than the
// table or the connection.
func rowError(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23")
	}
	return false
}

// classify wraps a batch error: undefined tables are retried (a migration
// may be under way); other schema errors and data errors are permanent.
func (s *postgresSink) classify(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code != "42P01" {
		switch pe.Code[:2] {
		case "22", "23", "42": // data exception, integrity violation, syntax or undefined object
			return Permanent(fmt.Errorf("postgres: insert into %s: %w", s.table, err))
		}
	}
	return fmt.Errorf("postgres: insert into %s: %w", s.table, err)
}

// transient reports whether err came from the connection or the context
// (as opposed to a value pgx could not encode).
func transient(ctx context.Context, err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) || ctx.Err() != nil {
		return true
	}
	return pgconn.SafeToRetry(err) || pgconn.Timeout(err) || errors.Is(err, context.Canceled)
}

func (s *postgresSink) deliver(ctx context.Context, batch []*Item) error {
	s.mu.Lock()
	if s.pool == nil {
		p, err := pgxpool.New(context.WithoutCancel(ctx), s.url)
		if err != nil {
			s.mu.Unlock()
			return Permanent(fmt.Errorf("postgres: %w", err))
		}
		s.pool = p
	}
	pool := s.pool
	s.mu.Unlock()

	var err error
	if len(batch) >= copyMin && !s.noCopy.Load() {
		if err = s.copy(ctx, pool, batch); err != nil && encodeError(err) {
			// COPY sends binary values: a template's text (a timestamp
			// as a string, say) cannot go into a typed column that way.
			// INSERT lets the server parse the text; use it from now on.
			s.noCopy.Store(true)
			err = s.insert(ctx, pool, batch)
		}
	} else {
		err = s.insert(ctx, pool, batch)
	}
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if !rowError(err) && (errors.As(err, &pe) || transient(ctx, err)) {
		return s.classify(err)
	}
	if len(batch) == 1 {
		return Permanent(fmt.Errorf("postgres: insert into %s: %w", s.table, err))
	}
	return s.insertEach(ctx, pool, batch)
}

func (s *postgresSink) copy(ctx context.Context, pool *pgxpool.Pool, batch []*Item) error {
	_, err := pool.CopyFrom(ctx, s.ident, s.columns, pgx.CopyFromFunc(func() func() ([]any, error) {
		i := 0
		return func() ([]any, error) {
			if i >= len(batch) {
				return nil, nil
			}
			i++
			return batch[i-1].Values, nil
		}
	}()))
	return err
}

// insertEach inserts the rows one by one in a transaction, isolating the
// rows the table rejects with savepoints.
func (s *postgresSink) insertEach(ctx context.Context, pool *pgxpool.Pool, batch []*Item) error {
	cols := make([]string, len(s.columns))
	params := make([]string, len(s.columns))
	for i, c := range s.columns {
		cols[i] = pgx.Identifier{c}.Sanitize()
		params[i] = fmt.Sprintf("$%d", i+1)
	}
	stmt := "INSERT INTO " + s.table + " (" + strings.Join(cols, ", ") + ") VALUES (" + strings.Join(params, ", ") + ")"
	var bad itemsFailed
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		bad = itemsFailed{}
		for i, it := range batch {
			if _, err := tx.Exec(ctx, "SAVEPOINT ew_row"); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, stmt, it.Values...); err != nil {
				if !rowError(err) && (transient(ctx, err) || tx.Conn().IsClosed()) {
					return err
				}
				if _, rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT ew_row"); rerr != nil {
					return rerr
				}
				bad.add(i, fmt.Errorf("postgres: insert into %s: %w", s.table, err))
			}
		}
		return nil
	})
	if err != nil {
		return s.classify(err)
	}
	if len(bad.idx) > 0 {
		return &bad
	}
	return nil
}

func (s *postgresSink) insert(ctx context.Context, pool *pgxpool.Pool, batch []*Item) error {
	cols := make([]string, len(s.columns))
	for i, c := range s.columns {
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	head := "INSERT INTO " + s.table + " (" + strings.Join(cols, ", ") + ") VALUES "
	per := max(1, maxParams/len(cols))
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for start := 0; start < len(batch); start += per {
			chunk := batch[start:min(len(batch), start+per)]
			var b strings.Builder
			b.WriteString(head)
			args := make([]any, 0, len(chunk)*len(cols))
			for i, it := range chunk {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteByte('(')
				for j := range cols {
					if j > 0 {
						b.WriteString(", ")
					}
					fmt.Fprintf(&b, "$%d", len(args)+1)
					args = append(args, it.Values[j])
				}
				b.WriteByte(')')
			}
			if _, err := tx.Exec(ctx, b.String(), args...); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}

func (s *postgresSink) close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pool != nil {
		s.pool.Close()
		s.pool = nil
	}
	return nil
}
