// Package api owns the HTTP JSON API: routing, bearer-token
// authentication, request validation, and the mapping of subsystem errors
// to stable error codes. Every error response has the shape
//
//	{"error": {"code": "not_found", "message": "thing \"d1\" not found"}}
//
// with codes bad_request (400), unauthorized (401), not_found (404),
// conflict (409), payload_too_large (413), unsupported_media_type (415),
// unavailable (503) and internal (500).
//
// Routes (all but /healthz need "Authorization: Bearer <token>"):
//
//	GET    /healthz
//	GET    /api/v1/stats
//	POST   /api/v1/things                     create; returns credentials once
//	GET    /api/v1/things?limit=&after=&type= list, paginated by name
//	GET    /api/v1/things/{name}
//	DELETE /api/v1/things/{name}
//	POST   /api/v1/things/{name}/credentials  rotate the device password
//	GET    /api/v1/things/{name}/state        reported state
//	GET    /api/v1/things/{name}/telemetry?field=&start=&stop=&every=&fn=&limit=
//	POST   /api/v1/rules                      create (SQL errors: 400 invalid_sql with line, column)
//	GET    /api/v1/rules
//	POST   /api/v1/rules/apply                {"rules": [...]}: create or update each
//	GET    /api/v1/rules/{name}
//	PUT    /api/v1/rules/{name}
//	DELETE /api/v1/rules/{name}
//	POST   /api/v1/rules/{name}/enable, /disable
//	GET    /api/v1/rules/{name}/stats
//	PATCH  /api/v1/things/{name}              type and attributes (null removes)
//	       /api/v1/thing-types[/{name}[/deprecate|/undeprecate]]
//	       /api/v1/thing-groups[/{name}[/children|/things[/{thing}]]]
//	GET    /api/v1/things/{name}/groups
//	GET    /api/v1/search/things|count|aggregate?q=   fleet search (docs/fleet.md)
//	POST/GET/DELETE /api/v1/tokens[/{id}]     API tokens (admin)
//	GET    /api/v1/audit                      audit log (admin)
//	POST   /api/v1/apply, GET /api/v1/export  fleet files (admin)
//
// With Options.Access, bearer tokens are the admin token or API tokens, each
// route needs the scope internal/access.RouteScope gives it (403 forbidden
// otherwise), and every non-GET request is recorded in the audit log. Lists
// are paginated with limit and an opaque next cursor.
package api
