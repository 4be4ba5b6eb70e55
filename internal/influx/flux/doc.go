// Package flux implements the Flux subset Edgewise answers on POST
// /api/v2/query: a stdlib-only parser (errors carry line:column), an
// executor over tables read from the time-series store, and the annotated
// CSV encoder the official InfluxDB client libraries parse.
//
// Language: import lines (ignored), option and variable assignments,
// pipe-forward expressions, arrow functions (r) => ..., records (also
// {r with k: v}), arrays, member access r.k and r["k"], if/then/else,
// == != < <= > >= =~ !~ + - * / % ^, and, or, not, exists; literals for
// strings, ints, floats, booleans, RFC3339 times, durations (1h30m, -30d,
// 1mo, 1y) and /regex/.
//
// Functions: from(bucket), range(start, stop) with times, durations
// relative to now() or unix seconds; filter(fn); aggregateWindow(every, fn,
// createEmpty, column, timeSrc) with fn one of mean, sum, count, min, max,
// first, last, median, spread, stddev; those functions on their own; group
// (columns, mode "by"/"except"); keep/drop(columns); rename(columns);
// limit(n, offset); sort(columns, desc); pivot(rowKey, columnKey,
// valueColumn); map(fn); yield(name); now(). Anything else is an error
// naming the identifier.
//
// Execution: from |> range |> filter stays a pending read; the predicates
// of filter's top-level "and" on _measurement, _field and tags (==, =~,
// !~, and ORs of == on one column) are pushed into tsdb.Query, the rest is
// evaluated per row. aggregateWindow of mean/sum/count/min/max/first/last
// directly on such a read uses the store's windowed aggregates (chunk
// summaries), which have Flux's semantics: epoch-aligned windows stamped
// with their stop clipped to the range. Everything else works on
// materialised tables. Options.MaxPoints bounds the values materialised
// (ErrBudget, or tsdb.ErrQueryLimit from the store); the context bounds
// the time.
package flux
