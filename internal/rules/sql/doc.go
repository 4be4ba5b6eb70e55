// Package sql owns the rules SQL dialect: its lexer, parser, type checker,
// evaluator, built-in and aggregate functions, and the ${expr} substitution
// templates used by rule actions. It imports only the standard library.
//
// The dialect is the AWS IoT SQL subset (SELECT ... FROM 'topic/filter'
// WHERE ...) with the same Undefined/Null semantics, extended with
// eKuiper-style stream windows in GROUP BY (TUMBLINGWINDOW, HOPPINGWINDOW,
// SLIDINGWINDOW, SESSIONWINDOW, COUNTWINDOW), aggregates, HAVING and
// FILTER (WHERE ...). docs/rules.md is the user reference.
//
// Values are nil (Null), bool, int64 (Int), float64 (Decimal), string,
// []any (Array), map[string]any (Object) and Undefined. A JSON number with a
// fraction or an exponent is a Decimal, any other is an Int.
//
// Payloads are not decoded up front: a field reference scans the raw JSON
// for its path and decodes only the value it finds; the payload is checked
// to be valid JSON once, on first access, and an invalid payload makes the
// evaluation fail with ErrBadJSON.
//
// Parsed statements, expressions and templates are immutable (regular
// expressions with literal patterns are compiled at parse time): several
// goroutines may evaluate them at once, each with its own Env. An Index
// (NewIndex) lets rules share one validation pass over a payload.
package sql
