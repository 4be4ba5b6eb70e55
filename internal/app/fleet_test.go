package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/edgewise-iot/edgewise/internal/config"
)

// testServer runs a whole server on random ports for API-level tests.
type testServer struct {
	t     *testing.T
	app   *App
	base  string
	token string
}

func startTestServer(t *testing.T, dataDir string) *testServer {
	t.Helper()
	return startTestServerWith(t, func(c *config.Config) { c.DataDir = dataDir })
}

// call sends a JSON request with the admin token (or tok when given) and
// decodes the answer into out; it returns the status.
func (s *testServer) call(method, path string, body any, out any, tok ...string) int {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		if b, ok := body.(string); ok {
			rd = strings.NewReader(b)
		} else {
			raw, _ := json.Marshal(body)
			rd = bytes.NewReader(raw)
		}
	}
	req, _ := http.NewRequest(method, s.base+path, rd)
	token := s.token
	if len(tok) > 0 {
		token = tok[0]
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			s.t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

func (s *testServer) must(method, path string, body any, out any, want int) {
	s.t.Helper()
	var raw json.RawMessage
	if got := s.call(method, path, body, &raw); got != want {
		s.t.Fatalf("%s %s: HTTP %d, want %d: %s", method, path, got, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatal(err)
		}
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type searchResp struct {
	Things []struct {
		Name         string   `json:"name"`
		Groups       []string `json:"thing_group_names"`
		Connectivity struct {
			Connected bool `json:"connected"`
		} `json:"connectivity"`
	} `json:"things"`
	Next string `json:"next"`
}

func (s *testServer) search(q string) string {
	s.t.Helper()
	var r searchResp
	s.must("GET", "/api/v1/search/things?q="+url.QueryEscape(q), nil, &r, 200)
	var names []string
	for _, th := range r.Things {
		names = append(names, th.Name)
	}
	return strings.Join(names, ",")
}

// TestFleetAPI drives types, groups, attribute updates, fleet search with
// connectivity from a real MQTT connection, aggregations and a job that
// targets a group, through the running server.
func TestFleetAPI(t *testing.T) {
	s := startTestServer(t, t.TempDir())
	s.must("POST", "/api/v1/thing-types", map[string]any{"name": "sensor", "description": "temperature", "searchable_attributes": []string{"location"}}, nil, 201)
	s.must("POST", "/api/v1/thing-types", map[string]any{"name": "sensor"}, nil, 409)
	s.must("POST", "/api/v1/thing-types", map[string]any{"name": "bad/type"}, nil, 400)
	var creds struct {
		Credentials struct{ Username, Password string } `json:"credentials"`
	}
	for i, loc := range []string{"lab", "lab", "hall"} {
		s.must("POST", "/api/v1/things", map[string]any{"name": fmt.Sprint("sensor-", i), "type": "sensor", "attributes": map[string]string{"location": loc}}, &creds, 201)
	}
	pw := creds.Credentials.Password // sensor-2's
	s.must("POST", "/api/v1/things", map[string]any{"name": "gw-1", "type": "gateway"}, nil, 201)
	s.must("POST", "/api/v1/thing-types/sensor/deprecate", nil, nil, 200)
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if st := s.call("POST", "/api/v1/things", map[string]any{"name": "sensor-9", "type": "sensor"}, &e); st != 400 || !strings.Contains(e.Error.Message, "deprecated") {
		t.Fatalf("thing of deprecated type: %d %+v", st, e)
	}
	s.must("DELETE", "/api/v1/thing-types/sensor", nil, nil, 409)
	s.must("POST", "/api/v1/thing-types/sensor/undeprecate", nil, nil, 200)

	// PATCH attributes: merge, and null removes.
	var th struct {
		Attributes map[string]string `json:"attributes"`
	}
	s.must("PATCH", "/api/v1/things/sensor-2", `{"attributes": {"floor": "2", "location": null}}`, &th, 200)
	if fmt.Sprint(th.Attributes) != "map[floor:2]" {
		t.Fatalf("patched %v", th.Attributes)
	}
	s.must("PATCH", "/api/v1/things/nope", `{"attributes": {"a": "b"}}`, nil, 404)
	s.must("PATCH", "/api/v1/things/sensor-2", `{"colour": "red"}`, nil, 400)

	// Groups: nested static and dynamic.
	s.must("POST", "/api/v1/thing-groups", map[string]any{"name": "site"}, nil, 201)
	s.must("POST", "/api/v1/thing-groups", map[string]any{"name": "lab", "parent": "site"}, nil, 201)
	s.must("POST", "/api/v1/thing-groups", map[string]any{"name": "labs-dyn", "query": "attributes.location:lab"}, nil, 201)
	if st := s.call("POST", "/api/v1/thing-groups", map[string]any{"name": "x", "query": "attributes.location:(lab"}, &e); st != 400 || !strings.Contains(e.Error.Message, "column") {
		t.Fatalf("bad dynamic query: %d %+v", st, e)
	}
	s.must("PUT", "/api/v1/thing-groups/lab/things/sensor-0", nil, nil, 204)
	s.must("PUT", "/api/v1/thing-groups/site/things/gw-1", nil, nil, 204)
	s.must("PUT", "/api/v1/thing-groups/lab/things/ghost", nil, nil, 404)
	var members struct {
		Things []string `json:"things"`
		Next   string   `json:"next"`
	}
	s.must("GET", "/api/v1/thing-groups/site/things", nil, &members, 200)
	if strings.Join(members.Things, ",") != "gw-1" {
		t.Fatalf("direct members of site: %v", members.Things)
	}
	s.must("GET", "/api/v1/thing-groups/site/things?recursive=true&limit=1", nil, &members, 200)
	if strings.Join(members.Things, ",") != "gw-1" || members.Next == "" {
		t.Fatalf("recursive page 1: %+v", members)
	}
	s.must("GET", "/api/v1/thing-groups/site/things?recursive=true&limit=1&next="+members.Next, nil, &members, 200)
	if strings.Join(members.Things, ",") != "sensor-0" || members.Next != "" {
		t.Fatalf("recursive page 2: %+v", members)
	}
	s.must("GET", "/api/v1/thing-groups/labs-dyn/things", nil, &members, 200)
	if strings.Join(members.Things, ",") != "sensor-0,sensor-1" {
		t.Fatalf("dynamic members: %v", members.Things)
	}
	var gs struct {
		Groups []string `json:"thing_groups"`
	}
	s.must("GET", "/api/v1/things/sensor-0/groups", nil, &gs, 200)
	if strings.Join(gs.Groups, ",") != "lab,labs-dyn,site" {
		t.Fatalf("groups of sensor-0: %v", gs.Groups)
	}
	s.must("DELETE", "/api/v1/thing-groups/site", nil, nil, 409)

	// Connectivity from a real MQTT client authenticated as sensor-2.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u, _ := url.Parse("mqtt://" + s.app.MQTTAddr().String())
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 30, CleanStartOnInitialConnection: true,
		ConnectUsername: "sensor-2", ConnectPassword: []byte(pw), OnConnectError: func(error) {},
		ClientConfig: paho.ClientConfig{ClientID: "sensor-2", OnClientError: func(error) {}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cm.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "sensor-2 connected in search", func() bool { return s.search("connected:true") == "sensor-2" })
	if _, err := cm.Publish(ctx, &paho.Publish{Topic: "devices/sensor-2/state", QoS: 1,
		Payload: []byte(`{"device_id":"sensor-2","timestamp":"2024-01-01T00:00:00Z","data":{"temperature":35.5}}`)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "shadow temperature searchable", func() bool { return s.search("shadow.reported.temperature > 30") == "sensor-2" })
	if got := s.search("thingTypeName:sensor AND (attributes.location:lab OR connectivity.connected:true)"); got != "sensor-0,sensor-1,sensor-2" {
		t.Fatalf("combined query: %s", got)
	}
	if got := s.search("thingGroupNames:site"); got != "gw-1,sensor-0" {
		t.Fatalf("group search: %s", got)
	}
	_ = cm.Disconnect(ctx)
	eventually(t, "sensor-2 disconnected in search", func() bool { return s.search("connected:true") == "" })

	var count struct{ Count int }
	s.must("GET", "/api/v1/search/count?q="+url.QueryEscape("thingName:sensor-*"), nil, &count, 200)
	if count.Count != 3 {
		t.Fatalf("count %d", count.Count)
	}
	var agg struct {
		Terms struct {
			Buckets []struct {
				Value string
				Count int
			}
		}
	}
	s.must("GET", "/api/v1/search/aggregate?type=terms&field=thingTypeName", nil, &agg, 200)
	if fmt.Sprint(agg.Terms.Buckets) != "[{sensor 3} {gateway 1}]" {
		t.Fatalf("terms %v", agg.Terms.Buckets)
	}
	if st := s.call("GET", "/api/v1/search/things?q="+url.QueryEscape("thingName:a AND"), nil, &e); st != 400 || !strings.Contains(e.Error.Message, "column 16") {
		t.Fatalf("bad query: %d %+v", st, e)
	}
	s.must("GET", "/api/v1/search/aggregate?field=colour", nil, nil, 400)
	s.must("GET", "/api/v1/search/things?next=not!a!cursor", nil, nil, 400)

	// Pagination of things uses the same opaque cursor.
	var page struct {
		Things []struct{ Name string }
		Next   string
	}
	s.must("GET", "/api/v1/things?limit=3", nil, &page, 200)
	s.must("GET", "/api/v1/things?limit=3&next="+page.Next, nil, &page, 200)
	if len(page.Things) != 1 || page.Things[0].Name != "sensor-2" || page.Next != "" {
		t.Fatalf("things page 2: %+v", page)
	}

	// A job targets a group (with its descendants).
	var job struct {
		Total int `json:"total"`
	}
	s.must("POST", "/api/v1/jobs", map[string]any{"document": map[string]any{"op": "reboot"}, "targets": map[string]any{"group": "site"}}, &job, 201)
	if job.Total != 2 {
		t.Fatalf("job over group site has %d targets", job.Total)
	}
	s.must("POST", "/api/v1/jobs", map[string]any{"document": map[string]any{"op": "reboot"}, "targets": map[string]any{"group": "nope"}}, nil, 400)
}
