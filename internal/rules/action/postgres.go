package action

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// maxParams is PostgreSQL's limit of bind parameters per statement.
const maxParams = 65535

// postgresSink inserts batches with multi-row INSERT statements in one
// transaction, so a batch is stored entirely or not at all.
type postgresSink struct {
	url     string
	table   string // quoted
	columns []string

	mu   sync.Mutex
	pool *pgxpool.Pool
}

func quoteTable(t string) string {
	return pgx.Identifier(strings.Split(t, ".")).Sanitize()
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
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			switch pe.Code[:2] {
			case "22", "23", "42": // data exception, integrity violation, syntax or undefined object
				return Permanent(fmt.Errorf("postgres: insert into %s: %w", s.table, err))
			}
		}
		return fmt.Errorf("postgres: insert into %s: %w", s.table, err)
	}
	return nil
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
