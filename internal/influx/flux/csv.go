package flux

import (
	"bufio"
	"encoding/csv"
	"io"
	"slices"
)

// Dialect is the CSV dialect of a /api/v2/query request.
type Dialect struct {
	Header      bool
	Annotations []string // any of "datatype", "group", "default"
}

// DefaultDialect is what InfluxDB answers when the request names none.
var DefaultDialect = Dialect{Header: true, Annotations: []string{"datatype", "group", "default"}}

func csvType(k Kind) string {
	switch k {
	case KInt:
		return "long"
	case KUint:
		return "unsignedLong"
	case KFloat:
		return "double"
	case KBool:
		return "boolean"
	case KTime:
		return "dateTime:RFC3339"
	case KDuration:
		return "duration"
	}
	return "string"
}

// WriteCSV writes results as annotated CSV the way InfluxDB 2 does: a
// header block (annotations + column names) whenever the table schema
// changes, blank lines between blocks, and "result,table" leading columns.
func WriteCSV(w io.Writer, results []Result, d Dialect) error {
	bw := bufio.NewWriter(w)
	cw := csv.NewWriter(bw)
	cw.UseCRLF = true
	wrote := false
	for _, res := range results {
		var prev []Column
		tableID := 0
		for _, t := range res.Tables {
			if len(t.Rows) == 0 {
				continue
			}
			if prev == nil || !slices.Equal(prev, t.Cols) {
				if wrote {
					cw.Flush()
					bw.WriteString("\r\n")
				}
				prev = t.Cols
				for _, a := range d.Annotations {
					rec := []string{"#" + a, "", ""}
					switch a {
					case "datatype":
						rec[1], rec[2] = "string", "long"
					case "group":
						rec[1], rec[2] = "false", "false"
					case "default":
						rec[1] = res.Name
					default:
						continue
					}
					for _, c := range t.Cols {
						switch a {
						case "datatype":
							rec = append(rec, csvType(c.Type))
						case "group":
							if c.Key {
								rec = append(rec, "true")
							} else {
								rec = append(rec, "false")
							}
						default:
							rec = append(rec, "")
						}
					}
					cw.Write(rec)
				}
				if d.Header {
					rec := []string{"", "result", "table"}
					for _, c := range t.Cols {
						rec = append(rec, c.Label)
					}
					cw.Write(rec)
				}
			}
			id := itoa(tableID)
			for _, r := range t.Rows {
				rec := make([]string, 0, len(r)+3)
				rec = append(rec, "", res.Name, id)
				for _, v := range r {
					rec = append(rec, v.String())
				}
				cw.Write(rec)
			}
			wrote = true
			tableID++
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	if wrote {
		bw.WriteString("\r\n")
	}
	return bw.Flush()
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	return string(b[n:])
}
