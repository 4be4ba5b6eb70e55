package api

import (
	"net/http"
	"net/http/pprof"
)

// pprofRoutes serves Go's runtime profiles (CPU, heap, goroutines, ...)
// behind the admin token, e.g.
//
//	curl -H "Authorization: Bearer $TOKEN" -o cpu.pprof 'http://HOST/debug/pprof/profile?seconds=30'
func (a *API) pprofRoutes() {
	wrap := func(h http.HandlerFunc) handlerFunc {
		return func(w http.ResponseWriter, r *http.Request) error { h(w, r); return nil }
	}
	a.handle("GET /debug/pprof/", wrap(pprof.Index))
	a.handle("GET /debug/pprof/cmdline", wrap(pprof.Cmdline))
	a.handle("GET /debug/pprof/profile", wrap(pprof.Profile))
	a.handle("GET /debug/pprof/symbol", wrap(pprof.Symbol))
	a.handle("GET /debug/pprof/trace", wrap(pprof.Trace))
}
