// Package influxql implements the InfluxQL subset Edgewise answers on
// GET/POST /query: a stdlib-only lexer and parser (errors carry "line L,
// char C" positions) and an executor over a small Storage interface that
// the caller adapts to the time-series store.
//
// Supported: SELECT with fields, tags, *, arithmetic, math functions
// (floor, ceil, round, abs, sqrt, ln, log, log2, log10, exp, pow), the
// aggregates mean, sum, min, max, count, first, last, median, percentile,
// spread, stddev, mode, distinct, count(distinct(f)) and integral(f[,
// unit]) (also fn(*) and fn(/re/)), the selectors top and bottom
// (top(f, N) and top(f, tag..., N)), the transforms difference,
// non_negative_difference, elapsed, derivative, non_negative_derivative,
// cumulative_sum and moving_average; FROM measurements (quoted, db.rp.m,
// regex) and subqueries nested to any depth; WHERE time ranges (RFC3339
// strings, integer ns, durations such as 1700000000000ms, now() +/-
// durations) combined with AND, tag and field predicates (= != < <= > >=
// =~ !~, AND, OR, parentheses, x::field and x::tag); GROUP BY
// time(interval[, offset]), tags (also "t"::tag), * and /re/;
// fill(null|none|previous|linear|<number>); ORDER BY time [DESC]; LIMIT,
// OFFSET, SLIMIT, SOFFSET; tz('Zone/Name'); INTO; multiple statements.
// SHOW DATABASES, MEASUREMENTS, TAG KEYS, TAG VALUES WITH KEY, FIELD KEYS,
// SERIES, RETENTION POLICIES; CREATE DATABASE [WITH DURATION]; DROP
// DATABASE. Not supported: sample(), holt_winters(), other casts than
// ::field and ::tag.
//
// tz() follows InfluxDB 1.x: GROUP BY time() windows are aligned on local
// time with InfluxDB's window arithmetic (a daily window starts at local
// midnight and is 23 or 25 hours long across a DST switch), time strings
// without an offset in WHERE are read in the zone, and Row.Loc carries the
// zone so that RFC3339 times print its offset; an unknown zone is a parse
// error ("unknown time zone X"). The zone database is embedded.
//
// Functions follow InfluxDB 1.x too: a single selector (first, last, min,
// max, percentile, top, bottom) may be combined with bare fields and tags,
// which then come from the selected point; other combinations of
// functions with fields are errors with InfluxDB's messages. top() and
// bottom() keep the points' own times (window start for top(f, tag, N)
// under GROUP BY time), order rows by time and, like distinct() and
// integral(), are not filled. integral() interpolates at window
// boundaries as InfluxDB's IntegralReducer and, as the statement's only
// function, is stamped 0 without GROUP BY time.
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
// store's windowed aggregates (chunk summaries) and combined per group
// (not under tz(), whose windows are not epoch-aligned, nor for a selector
// returning other columns); everything else is computed here from raw
// samples. LIMIT without field
// predicates is pushed down per series. Options.MaxPoints bounds the values
// materialised per statement (ErrBudget); the context bounds its time.
package influxql
