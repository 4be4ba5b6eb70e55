// Package lineproto parses InfluxDB line protocol (standard library only):
//
//	measurement[,tag_key=tag_value...] field_key=field_value[,...] [timestamp]
//
// Escaping follows InfluxDB 1.x/2.x: in measurements a backslash escapes
// comma and space; in tag keys, tag values and field keys it escapes
// comma, equals sign and space; in string field values it escapes double
// quote and backslash. A backslash before any other character is kept
// literally. String field values may contain newlines.
//
// Field values: floats (1, 1.5, -1e9; the default for bare numbers),
// integers (1i), unsigned integers (1u), booleans (t, T, true, True, TRUE,
// f, F, false, False, FALSE) and double-quoted strings. The timestamp is
// an optional signed integer in the unit of the write's Precision.
//
// Blank lines and lines starting with '#' are skipped. A bad line yields
// a *LineError naming its line number and text; the Decoder then goes on
// with the next line, so a caller can store the good lines (InfluxDB's
// partial writes). Decoded byte slices point into the input, or into a
// scratch buffer of the Decoder when unescaping was needed; they are valid
// until the next call of Next.
package lineproto
