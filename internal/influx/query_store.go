package influx

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/edgewise-iot/edgewise/internal/influx/influxql"
	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

// catalogStore adapts a tsdb.Catalog to the storage the query languages
// declare. maxSamples is handed to every tsdb.Query so the engine stops
// decoding once a query exceeds the budget.
type catalogStore struct {
	cat        *tsdb.Catalog
	maxSamples int
}

func (s catalogStore) Databases(context.Context) ([]string, error) {
	infos := s.cat.Databases()
	out := make([]string, len(infos))
	for i, d := range infos {
		out[i] = d.Name
	}
	return out, nil
}

func (s catalogStore) CreateDatabase(ctx context.Context, name string, retention time.Duration) error {
	_, err := s.cat.CreateDatabase(ctx, name, tsdb.RetentionPolicy{Duration: retention})
	return err
}

func (s catalogStore) DropDatabase(ctx context.Context, name string) error {
	err := s.cat.DropDatabase(ctx, name)
	if errors.Is(err, tsdb.ErrDatabaseNotFound) {
		return influxql.ErrDatabaseNotFound
	}
	return err
}

func (s catalogStore) Database(_ context.Context, name string) (influxql.Database, error) {
	db, err := s.cat.DB(name)
	if errors.Is(err, tsdb.ErrDatabaseNotFound) {
		return nil, influxql.ErrDatabaseNotFound
	}
	if err != nil {
		return nil, err
	}
	return dbStore{db: db, maxSamples: s.maxSamples}, nil
}

// dbStore adapts one tsdb.DB.
type dbStore struct {
	db         *tsdb.DB
	maxSamples int
}

func (d dbStore) Measurements(ctx context.Context) ([]string, error) { return d.db.Measurements(ctx) }

func (d dbStore) TagKeys(ctx context.Context, m string) ([]string, error) {
	return d.db.TagKeys(ctx, m)
}

func (d dbStore) FieldKeys(ctx context.Context, m string) ([]influxql.FieldKey, error) {
	fis, err := d.db.FieldKeys(ctx, m)
	if err != nil {
		return nil, err
	}
	out := make([]influxql.FieldKey, len(fis))
	for i, f := range fis {
		out[i] = influxql.FieldKey{Key: f.Key, Type: f.Type}
	}
	return out, nil
}

func tsdbMatchers(ms []influxql.Matcher) ([]tsdb.Matcher, error) {
	out := make([]tsdb.Matcher, 0, len(ms))
	for _, m := range ms {
		tm, err := tsdb.NewMatcher(m.Key, tsdb.MatchOp(m.Op), m.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, tm)
	}
	return out, nil
}

func (d dbStore) Series(ctx context.Context, m string, ms []influxql.Matcher) ([][]tsdb.Tag, error) {
	tms, err := tsdbMatchers(ms)
	if err != nil {
		return nil, err
	}
	return d.db.SeriesTags(ctx, m, tms)
}

func (d dbStore) Read(ctx context.Context, r influxql.ReadRequest) ([]tsdb.Series, error) {
	tms, err := tsdbMatchers(r.Matchers)
	if err != nil {
		return nil, err
	}
	q := tsdb.Query{Measurement: r.Measurement, Matchers: tms, Fields: r.Fields, Start: r.Start, End: r.End,
		Every: r.Every, Fn: r.Fn, Limit: r.Limit, Desc: r.Desc && r.Limit > 0, MaxSamples: d.maxSamples,
		Filters: r.Filters}
	if len(q.Fields) == 0 {
		q.Fields = nil
	}
	var out []tsdb.Series
	if q.Desc && q.Every == 0 {
		out, err = d.db.QueryNewest(ctx, q) // reads only the newest runs
	} else {
		out, err = d.db.Query(ctx, q)
	}
	if err != nil {
		return nil, err
	}
	if q.Desc { // the executor wants ascending samples
		for i := range out {
			slices.Reverse(out[i].Samples)
		}
	}
	return out, nil
}

// ReadEach streams aggregate inputs series by series (raw reads only).
func (d dbStore) ReadEach(ctx context.Context, r influxql.ReadRequest, fn func([]tsdb.Series) error) error {
	tms, err := tsdbMatchers(r.Matchers)
	if err != nil {
		return err
	}
	q := tsdb.Query{Measurement: r.Measurement, Matchers: tms, Fields: r.Fields, Start: r.Start, End: r.End,
		Every: r.Every, Fn: r.Fn, MaxSamples: d.maxSamples, Filters: r.Filters}
	if len(q.Fields) == 0 {
		q.Fields = nil
	}
	return d.db.QueryEach(ctx, q, fn)
}

func (d dbStore) Delete(ctx context.Context, m string, ms []influxql.Matcher, start, end int64) error {
	tms, err := tsdbMatchers(ms)
	if err != nil {
		return err
	}
	return d.db.Delete(ctx, m, tms, start, end)
}

func (d dbStore) Write(ctx context.Context, pts []tsdb.Point) error { return d.db.Write(ctx, pts) }
