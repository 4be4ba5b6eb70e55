// Package influx serves Edgewise's InfluxDB-compatible HTTP API over the
// embedded time-series store (a tsdb.Catalog of databases):
//
//   - POST /write?db=&rp=&precision=          InfluxDB 1.x line protocol write
//   - POST /api/v2/write?org=&bucket=&precision=  InfluxDB 2.x write (bucket = database)
//   - GET/POST /query, POST /api/v2/query    InfluxQL and Flux (query.go and the
//     influxql and flux subpackages)
//   - GET/HEAD /ping, GET /health           liveness as InfluxDB answers it
//   - POST /api/v2/delete                   deletes (delete.go)
//   - GET /api/v2/orgs, GET/POST /api/v2/buckets, GET/DELETE
//     /api/v2/buckets/{id}                  the v2 management API (v2api.go)
//
// The line protocol parser lives in the leaf package lineproto.
//
// # Authentication
//
// Clients authenticate the ways InfluxDB clients send credentials: an
// "Authorization: Token <t>" or "Bearer <t>" header, HTTP basic auth or
// the u and p query parameters of 1.x clients (the password is the
// token; the user name is ignored). A request without any credentials is
// accepted only when Options.AllowAnonymous is set; wrong credentials are
// refused always. Errors use the shape of the API version the path
// belongs to: {"error":"..."} for 1.x, {"code":"...","message":"..."} for
// /api/v2.
//
// # Writes
//
// A write parses the whole body (gzip when Content-Encoding: gzip, at
// most Options.MaxBodyBytes after decompression), stores every valid line
// in one batch and answers 204. When some lines are invalid the valid
// ones are still stored and the answer is 400 naming the first bad line
// and the number dropped, as InfluxDB does (partial write). Writes to a
// database that does not exist are refused with 404; 1.x creates nothing
// implicitly (use CREATE DATABASE through /query).
//
// Body buffers and gzip readers are pooled per Handler.
//
// # Deletes
//
// POST /api/v2/delete (delete.go) takes InfluxDB 2.x's JSON body: an
// inclusive start/stop and a predicate of key="value" terms joined by AND
// (ParseDeletePredicate; _measurement picks the measurement, otherwise all
// of the bucket's). InfluxQL DELETE and DROP SERIES reach the same
// tsdb.DB.Delete through the query store.
//
// # Organisations and buckets
//
// v2api.go serves what the official clients' OrganizationsAPI and
// BucketsAPI call. Buckets are the catalog's databases, with IDs derived
// from their names (BucketID) and their retention as retentionRules;
// creating one creates a database (422 when it exists), deleting one
// drops it (never the default database). There is one organisation,
// named Options.Org ("edgewise"), which answers to any name a client
// asks for, since writes and queries ignore org= too. These routes
// authenticate like the others; which scope an API token needs is the
// mounting API's business (internal/api asks admin to create or drop).
//
// Query routes are added by query.go: when the package has a method
// registerQueryRoutes on *Handler, New calls it after registering the
// routes above; otherwise /query and /api/v2/query answer 501.
package influx
