package influxql

import (
	"context"
	"errors"
	"regexp"
	"time"

	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

// ErrDatabaseNotFound is returned by Storage.Database for an unknown name.
var ErrDatabaseNotFound = errors.New("database not found")

// MatchOp is a tag matcher operator.
type MatchOp int

// Matcher operators.
const (
	MatchEqual MatchOp = iota
	MatchNotEqual
	MatchRegexp
	MatchNotRegexp
)

// Matcher selects series by one tag. A series without the tag has the
// empty value for it. Re is set for the regex operators.
type Matcher struct {
	Key   string
	Op    MatchOp
	Value string
	Re    *regexp.Regexp
}

// Matches reports whether the tag value v satisfies the matcher.
func (m Matcher) Matches(v string) bool {
	switch m.Op {
	case MatchEqual:
		return v == m.Value
	case MatchNotEqual:
		return v != m.Value
	case MatchRegexp:
		return m.Re.MatchString(v)
	default:
		return !m.Re.MatchString(v)
	}
}

// FieldKey is a field name and its type.
type FieldKey struct {
	Key  string
	Type tsdb.ValueType
}

// ReadRequest asks for the samples (or windowed aggregates) of the series
// of one measurement matching all Matchers, for Fields (empty = all), in
// [Start, End) (End 0 = unbounded). Every > 0 aggregates with Fn over
// epoch-aligned windows labelled by their stop time clipped to End (the
// tsdb.Query semantics). Limit caps the samples per series field; Desc
// asks for the newest samples first when Limit is set.
type ReadRequest struct {
	Measurement string
	Matchers    []Matcher
	Fields      []string
	Start, End  int64
	Every       time.Duration
	Fn          tsdb.Aggregate
	Limit       int
	Desc        bool
	// Filters keep only samples passing all of them (raw reads with one
	// numeric field; Limit then counts passing samples).
	Filters []tsdb.Filter
}

// SeriesReader is a Database that can hand a read's result over one series
// at a time (all its fields, in Read's order); aggregates use it to fold
// samples without holding the whole result. fn must not keep the slice.
type SeriesReader interface {
	ReadEach(ctx context.Context, r ReadRequest, fn func([]tsdb.Series) error) error
}

// Deleter is a Database that can delete: the samples of measurement's
// series matching all matchers with start <= t < end (end 0 = unbounded).
type Deleter interface {
	Delete(ctx context.Context, measurement string, matchers []Matcher, start, end int64) error
}

// Storage is what the executor needs from the store: databases.
type Storage interface {
	Databases(ctx context.Context) ([]string, error)
	CreateDatabase(ctx context.Context, name string, retention time.Duration) error
	DropDatabase(ctx context.Context, name string) error
	// Database returns ErrDatabaseNotFound (wrapped or not) for unknown names.
	Database(ctx context.Context, name string) (Database, error)
}

// Database is one database's metadata and data.
type Database interface {
	Measurements(ctx context.Context) ([]string, error)
	TagKeys(ctx context.Context, measurement string) ([]string, error)
	FieldKeys(ctx context.Context, measurement string) ([]FieldKey, error)
	// Series lists the tag sets (sorted by key) of the measurement's series
	// matching all matchers.
	Series(ctx context.Context, measurement string, matchers []Matcher) ([][]tsdb.Tag, error)
	// Read returns series sorted by tags then field, samples by time
	// (descending when Desc is set).
	Read(ctx context.Context, r ReadRequest) ([]tsdb.Series, error)
	Write(ctx context.Context, points []tsdb.Point) error
}
