// Package influxql implements the InfluxQL subset Edgewise answers on
// GET/POST /query: a stdlib-only lexer and parser (errors carry "line L,
// char C" positions) and an executor over a small Storage interface that
// the caller adapts to the time-series store.
//
// Supported: SELECT with fields, tags, *, arithmetic, math functions
// (floor, ceil, round, abs, sqrt, ln, log, log2, log10, exp, pow), the
// aggregates mean, sum, min, max, count, first, last, median, percentile,
// spread, stddev and mode (also fn(*) and fn(/re/)), the transforms
// difference, non_negative_difference, elapsed, derivative,
// non_negative_derivative, cumulative_sum and moving_average; FROM
// measurements (quoted, db.rp.m, regex) and subqueries nested to any depth;
// WHERE time ranges (RFC3339 strings, integer ns, now() +/- durations)
// combined with AND, tag and field predicates (= != < <= > >= =~ !~, AND,
// OR, parentheses); GROUP BY time(interval[, offset]), tags, * and /re/;
// fill(null|none|previous|linear|<number>); ORDER BY time [DESC]; LIMIT,
// OFFSET, SLIMIT, SOFFSET; INTO; multiple statements. SHOW DATABASES,
// MEASUREMENTS, TAG KEYS, TAG VALUES WITH KEY, FIELD KEYS, SERIES,
// RETENTION POLICIES; CREATE DATABASE [WITH DURATION]; DROP DATABASE.
// tz() is rejected with an error: times are UTC.
//
// Semantics follow InfluxDB 1.x: raw queries merge all series of a group
// into one time-ordered series and skip rows whose fields are all null; a
// query selecting only tags returns nothing; aggregates without GROUP BY
// time are stamped with the range start (epoch 0 when unbounded), a lone
// selector with its point's time; division by zero yields 0; a subquery
// inherits the outer time range, GROUP BY tags and (when it has none) the
// outer interval, and its fill(null) becomes fill(none).
//
// Execution: tag predicates in the top-level AND of WHERE become Matchers
// pushed to the store (k = 'a' OR k = 'b' becomes one regex matcher); the
// rest is evaluated per series or per row by compiled closures.
// mean/sum/count/min/max without field predicates are computed by the
// store's windowed aggregates (chunk summaries) and combined per group;
// everything else is computed here from raw samples. LIMIT without field
// predicates is pushed down per series. Options.MaxPoints bounds the values
// materialised per statement (ErrBudget); the context bounds its time.
package influxql
