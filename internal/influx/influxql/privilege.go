package influxql

// Privilege is what running a query needs from the caller.
type Privilege int

// Privileges, in increasing order.
const (
	PrivRead  Privilege = iota // SELECT and SHOW
	PrivWrite                  // SELECT ... INTO, DELETE, DROP SERIES: they change stored points
	PrivAdmin                  // CREATE DATABASE, DROP DATABASE: they manage databases
)

// RequiredPrivilege returns the highest privilege the statements of src
// need. A query that does not parse needs PrivRead: it fails with its
// parse error before anything runs.
func RequiredPrivilege(src string) Privilege {
	stmts, err := ParseQuery(src)
	if err != nil {
		return PrivRead
	}
	need := PrivRead
	for _, st := range stmts {
		switch s := st.(type) {
		case *SelectStatement:
			if s.Into != nil {
				need = max(need, PrivWrite)
			}
		case *Delete:
			need = max(need, PrivWrite)
		case *CreateDatabase, *DropDatabase:
			need = max(need, PrivAdmin)
		}
	}
	return need
}
