package tsdb

import "errors"

// Sentinel errors. Errors returned by DB methods wrap one of these where it
// applies, so callers test them with errors.Is.
var (
	// ErrInvalidPoint: a written point is malformed (empty measurement or
	// field key, no fields, duplicate tag or field keys, zero Value,
	// non-finite float). The error names the index of the point.
	ErrInvalidPoint = errors.New("tsdb: invalid point")
	// ErrFieldTypeConflict: a field is written with a type different from
	// the type already stored for that series and field.
	ErrFieldTypeConflict = errors.New("tsdb: field type conflict")
	// ErrClosed: the DB has been closed.
	ErrClosed = errors.New("tsdb: closed")
	// ErrInvalidQuery: the query is malformed or asks for an aggregate the
	// field type does not support.
	ErrInvalidQuery = errors.New("tsdb: invalid query")
	// ErrQueryLimit: a query would materialise more samples than its
	// budget (Query.MaxSamples or Options.MaxQuerySamples).
	ErrQueryLimit = errors.New("tsdb: query limit exceeded")
	// ErrDatabaseNotFound: the catalog has no database of that name.
	ErrDatabaseNotFound = errors.New("tsdb: database not found")
	// ErrCorrupt: a block file failed its checksums or could not be parsed.
	ErrCorrupt = errors.New("tsdb: corrupt data")
)
