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
// A parsed Statement and its expressions carry per-call caches (compiled
// regular expressions); a Statement is used by one goroutine at a time.
// Templates are immutable after parsing and safe for concurrent Render.
package sql
