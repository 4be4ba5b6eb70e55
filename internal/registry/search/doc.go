// Package search owns the fleet search query language: its lexer, parser,
// syntax tree and evaluation against one thing's fields. It imports only the
// standard library; the fleet index (internal/fleet) supplies the documents.
//
// # Syntax
//
//	query   = or
//	or      = and { "OR" and }
//	and     = not { ["AND"] not }          juxtaposition means AND
//	not     = "NOT" not | "(" or ")" | term
//	term    = field ":" value              equality, wildcards * and ?
//	        | field ":" "*"                the field exists
//	        | field ":" range              [a TO b] inclusive, {a TO b} exclusive, * open
//	        | field ("<"|"<="|">"|">=") value
//	        | value                        shorthand for thingName:value
//
// Fields: thingName, thingTypeName, thingGroupNames, attributes.NAME,
// connectivity.connected (alias connected), connectivity.timestamp (Unix
// milliseconds of the last connect or disconnect), shadow.reported.PATH and
// shadow.desired.PATH (PATH is dot-separated). Keywords are upper case.
// Values are bare words (anything but white space, parentheses and the
// characters < > [ ] { } ") or double-quoted strings with backslash escapes;
// quoted values have no wildcards. A value that parses as a number compares
// numerically with numeric fields; otherwise comparisons are byte-wise.
//
// Errors are [*Error] values carrying the 1-based column of the problem.
package search
