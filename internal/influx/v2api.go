package influx

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

// The InfluxDB 2.x management API the official client libraries use to
// find and manage buckets by name (BucketsAPI, OrganizationsAPI): one
// organisation, and the catalog's databases as buckets.
//
//	GET    /api/v2/orgs?org=&orgID=        the organisation
//	GET    /api/v2/orgs/{id}
//	GET    /api/v2/buckets?name=&id=&org=&orgID=&limit=&offset=&after=
//	GET    /api/v2/buckets/{id}
//	POST   /api/v2/buckets                 {"name", "orgID", "retentionRules": [{"everySeconds"}]}
//	DELETE /api/v2/buckets/{id}

// DefaultOrg is the organisation's name when Options.Org is empty.
const DefaultOrg = "edgewise"

// orgID is the one organisation's ID (InfluxDB IDs are 16 hex digits).
const orgID = "0e0d9e5e00000001"

// BucketID is the ID the v2 API gives the database name: 16 hex digits
// derived from the name, stable across restarts.
func BucketID(name string) string {
	h := fnv.New64a()
	h.Write([]byte(name))
	return fmt.Sprintf("%016x", h.Sum64())
}

type v2Org struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Status      string `json:"status"`
	Links       struct {
		Self    string `json:"self"`
		Buckets string `json:"buckets"`
	} `json:"links"`
}

type v2RetentionRule struct {
	Type                      string `json:"type"`
	EverySeconds              int64  `json:"everySeconds"`
	ShardGroupDurationSeconds int64  `json:"shardGroupDurationSeconds,omitempty"`
}

type v2Bucket struct {
	ID             string            `json:"id"`
	OrgID          string            `json:"orgID"`
	Name           string            `json:"name"`
	Type           string            `json:"type"`
	Rp             string            `json:"rp"`
	RetentionRules []v2RetentionRule `json:"retentionRules"`
	Links          struct {
		Self  string `json:"self"`
		Org   string `json:"org"`
		Write string `json:"write"`
	} `json:"links"`
}

func (h *Handler) orgName() string {
	if h.opts.Org != "" {
		return h.opts.Org
	}
	return DefaultOrg
}

// org describes the organisation under the name the client asked for:
// like writes and queries, which ignore org=, every organisation name
// reaches the one organisation.
func (h *Handler) org(name string) v2Org {
	if name == "" {
		name = h.orgName()
	}
	o := v2Org{ID: orgID, Name: name, Status: "active", Description: "the Edgewise organisation"}
	o.Links.Self = "/api/v2/orgs/" + orgID
	o.Links.Buckets = "/api/v2/buckets?org=" + url.QueryEscape(name)
	return o
}

func bucketOf(info tsdb.DatabaseInfo) v2Bucket {
	b := v2Bucket{ID: BucketID(info.Name), OrgID: orgID, Name: info.Name, Type: "user", Rp: info.Retention.Name,
		RetentionRules: []v2RetentionRule{{Type: "expire", EverySeconds: int64(info.Retention.Duration / time.Second)}}}
	b.Links.Self = "/api/v2/buckets/" + b.ID
	b.Links.Org = "/api/v2/orgs/" + orgID
	b.Links.Write = "/api/v2/write?org=" + orgID + "&bucket=" + b.ID
	return b
}

// bucketByID finds the database whose BucketID is id.
func (h *Handler) bucketByID(id string) (tsdb.DatabaseInfo, bool) {
	for _, info := range h.cat.Databases() {
		if BucketID(info.Name) == id {
			return info, true
		}
	}
	return tsdb.DatabaseInfo{}, false
}

func (h *Handler) orgs(w http.ResponseWriter, r *http.Request) {
	if !h.authorize(w, r) {
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		h.fail(w, r, http.StatusMethodNotAllowed, "", "organisations are read-only here: there is one, and it takes any name")
		return
	}
	if id, ok := strings.CutPrefix(r.URL.Path, "/api/v2/orgs/"); ok {
		if id != orgID {
			h.fail(w, r, http.StatusNotFound, "", fmt.Sprintf("organization %q not found (the organisation's ID is %s)", id, orgID))
			return
		}
		writeJSON(w, http.StatusOK, h.org(""))
		return
	}
	q := r.URL.Query()
	list := []v2Org{h.org(q.Get("org"))}
	if id := q.Get("orgID"); id != "" && id != orgID {
		list = []v2Org{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"links": map[string]string{"self": "/api/v2/orgs"}, "orgs": list})
}

func (h *Handler) buckets(w http.ResponseWriter, r *http.Request) {
	if !h.authorize(w, r) {
		return
	}
	id, one := strings.CutPrefix(r.URL.Path, "/api/v2/buckets/")
	switch {
	case r.Method == http.MethodGet && one:
		info, ok := h.bucketByID(id)
		if !ok {
			h.fail(w, r, http.StatusNotFound, "", fmt.Sprintf("bucket %q not found", id))
			return
		}
		writeJSON(w, http.StatusOK, bucketOf(info))
	case r.Method == http.MethodGet:
		h.listBuckets(w, r)
	case r.Method == http.MethodPost && !one:
		h.createBucket(w, r)
	case r.Method == http.MethodDelete && one:
		h.dropBucket(w, r, id)
	default:
		if one {
			w.Header().Set("Allow", "GET, DELETE")
		} else {
			w.Header().Set("Allow", "GET, POST")
		}
		h.fail(w, r, http.StatusMethodNotAllowed, "", fmt.Sprintf("%s is not supported on %s", r.Method, r.URL.Path))
	}
}

func (h *Handler) listBuckets(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if id := q.Get("orgID"); id != "" && id != orgID {
		writeJSON(w, http.StatusOK, map[string]any{"buckets": []v2Bucket{}})
		return
	}
	limit, offset := 20, 0
	for _, p := range []struct {
		name string
		dst  *int
		min  int
	}{{"limit", &limit, 1}, {"offset", &offset, 0}} {
		if s := q.Get(p.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < p.min {
				h.fail(w, r, http.StatusBadRequest, "", fmt.Sprintf("%s must be an integer >= %d", p.name, p.min))
				return
			}
			*p.dst = n
		}
	}
	limit = min(limit, 100)
	name, id, after := q.Get("name"), q.Get("id"), q.Get("after")
	out := []v2Bucket{}
	for _, info := range h.cat.Databases() { // sorted by name
		b := bucketOf(info)
		if (name != "" && b.Name != name) || (id != "" && b.ID != id) || (after != "" && b.Name <= after) {
			continue
		}
		out = append(out, b)
	}
	out = out[min(offset, len(out)):]
	out = out[:min(limit, len(out))]
	writeJSON(w, http.StatusOK, map[string]any{"links": map[string]string{"self": "/api/v2/buckets"}, "buckets": out})
}

func (h *Handler) createBucket(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name           string            `json:"name"`
		OrgID          string            `json:"orgID"`
		Rp             string            `json:"rp"`
		RetentionRules []v2RetentionRule `json:"retentionRules"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		h.fail(w, r, http.StatusBadRequest, "", "invalid bucket body: "+err.Error())
		return
	}
	if req.Name == "" {
		h.fail(w, r, http.StatusBadRequest, "", "bucket name is required")
		return
	}
	if strings.Contains(req.Name, "/") {
		// Writes, queries and deletes read bucket "db/rp" as database db.
		h.fail(w, r, http.StatusBadRequest, "", fmt.Sprintf("bucket name %q must not contain \"/\" (bucket \"db/rp\" names database db)", req.Name))
		return
	}
	if req.OrgID != "" && req.OrgID != orgID {
		h.fail(w, r, http.StatusNotFound, "", fmt.Sprintf("organization %q not found (the organisation's ID is %s)", req.OrgID, orgID))
		return
	}
	rp := tsdb.RetentionPolicy{Name: req.Rp}
	for _, rule := range req.RetentionRules {
		if rule.Type != "" && rule.Type != "expire" {
			continue
		}
		if rule.EverySeconds < 0 || rule.EverySeconds > int64(1<<63-1)/int64(time.Second) {
			h.fail(w, r, http.StatusBadRequest, "", "retentionRules: everySeconds must be between 0 (forever) and 292 years")
			return
		}
		rp.Duration = time.Duration(rule.EverySeconds) * time.Second
		break
	}
	// CreateDatabase returns (and re-tunes) an existing database; a v2
	// client expects a conflict instead.
	if _, err := h.cat.DB(req.Name); err == nil {
		h.fail(w, r, http.StatusUnprocessableEntity, "conflict", fmt.Sprintf("bucket with name %s already exists", req.Name))
		return
	}
	if _, err := h.cat.CreateDatabase(r.Context(), req.Name, rp); err != nil {
		if errors.Is(err, tsdb.ErrInvalidQuery) {
			h.fail(w, r, http.StatusBadRequest, "", err.Error())
			return
		}
		h.catalogError(w, r, err)
		return
	}
	for _, info := range h.cat.Databases() {
		if info.Name == req.Name {
			h.log.Info("influx: bucket created", "bucket", req.Name, "retention", info.Retention.Duration)
			writeJSON(w, http.StatusCreated, bucketOf(info))
			return
		}
	}
	h.fail(w, r, http.StatusInternalServerError, "", "bucket vanished right after its creation")
}

func (h *Handler) dropBucket(w http.ResponseWriter, r *http.Request, id string) {
	info, ok := h.bucketByID(id)
	if !ok {
		h.fail(w, r, http.StatusNotFound, "", fmt.Sprintf("bucket %q not found", id))
		return
	}
	if err := h.cat.DropDatabase(r.Context(), info.Name); err != nil {
		switch {
		case errors.Is(err, tsdb.ErrDatabaseNotFound):
			h.fail(w, r, http.StatusNotFound, "", fmt.Sprintf("bucket %q not found", id))
		case errors.Is(err, tsdb.ErrInvalidQuery):
			h.fail(w, r, http.StatusBadRequest, "", err.Error())
		default:
			h.catalogError(w, r, err)
		}
		return
	}
	h.log.Info("influx: bucket deleted", "bucket", info.Name)
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) catalogError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, tsdb.ErrClosed) {
		h.fail(w, r, http.StatusServiceUnavailable, "", "the server is shutting down")
		return
	}
	h.log.Error("influx: bucket change failed", "method", r.Method, "path", r.URL.Path, "err", err)
	h.fail(w, r, http.StatusInternalServerError, "", err.Error())
}
