// Package flux implements the Flux subset Edgewise answers on POST
// /api/v2/query: a stdlib-only parser (errors carry line:column), an
// executor over tables read from the time-series store, and the annotated
// CSV encoder the official InfluxDB client libraries parse.
//
// Language: import lines (ignored), option and variable assignments,
// pipe-forward expressions, arrow functions (r) => ... with defaults and
// tables=<-, records (also {r with k: v}), arrays, member access r.k,
// r["k"] and r[expr], if/then/else, == != < <= > >= =~ !~ + - * / % ^,
// and, or, not, exists; literals for strings, ints, floats, booleans,
// RFC3339 times, durations (1h30m, -30d, 1mo, 1y), inf and /regex/. Time
// plus or minus a duration is a time; int(v:), uint(v:), float(v:),
// string(v:), bool(v:), time(v:) and duration(v:) convert (int(v: t) is
// nanoseconds since the epoch), and now() is the query's clock.
//
// Functions: from(bucket), range(start, stop) with times, durations
// relative to now() or unix seconds; filter(fn, onEmpty); window(every,
// period, offset, createEmpty, timeColumn, startColumn, stopColumn);
// aggregateWindow(every, fn, period, offset, createEmpty, column, timeSrc,
// timeDst) with fn one of mean, sum, count, min, max, first, last, median,
// spread, stddev or any function (column, tables=<-) => ...; those
// aggregates on their own (on any column: count(column: "host")), stddev
// with mode; group(columns, mode "by"/"except"); keep/drop(columns);
// rename(columns); duplicate(column, as); set(key, value); fill(column,
// value or usePrevious); timeShift(duration, columns); limit(n, offset);
// tail(n, offset); top/bottom(n, columns); sort(columns, desc);
// distinct(column); unique(column); difference(nonNegative, columns,
// keepFirst, initialZero); derivative(unit, nonNegative, columns,
// timeColumn, initialZero); cumulativeSum(columns); increase(columns);
// movingAverage(n); elapsed(unit, timeColumn, columnName); pivot(rowKey,
// columnKey, valueColumn); map(fn); reduce(fn, identity); union(tables);
// join(tables: {a: s1, b: s2}, on, method "inner"); yield(name). Every
// function taking piped tables also takes them as tables:. An unknown
// identifier or argument is an error naming it.
//
// window() follows Flux: rows go to every window [start, start+period)
// containing their time, windows start at offset + k*every from the
// epoch, their bounds are clipped to the range and become _start/_stop in
// the group key; window(every: inf) undoes it (bounds back to the range).
// The range bounds travel with each stream, so this also works after
// other transformations. Calendar durations (mo, y) are refused for
// windows.
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
