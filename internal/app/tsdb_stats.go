package app

import "github.com/edgewise-iot/edgewise/internal/tsdb"

// tsdbStats is the "tsdb" object of GET /api/v1/stats: the default
// database's counters at the top level, where they were before there were
// several databases, and every database's counters under "databases".
type tsdbStats struct {
	tsdb.Stats
	Databases map[string]tsdb.Stats `json:"databases"`
}

func (a *App) tsdbStats() tsdbStats {
	all := a.cat.Stats()
	st, ok := all[a.cat.DefaultDatabase()]
	if !ok {
		st = a.ts.Stats()
	}
	return tsdbStats{Stats: st, Databases: all}
}
