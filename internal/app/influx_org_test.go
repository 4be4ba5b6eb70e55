package app

import (
	"testing"

	"github.com/edgewise-iot/edgewise/internal/config"
)

// TestInfluxOrgName: influx.org names the v2 organisation.
func TestInfluxOrgName(t *testing.T) {
	for _, tc := range []struct{ org, want string }{{"", "edgewise"}, {"plant 7", "plant 7"}} {
		s := startTestServerWith(t, func(c *config.Config) {
			if tc.org != "" {
				c.Influx.Org = tc.org
			}
		})
		var list struct {
			Orgs []struct {
				ID, Name string
				Links    struct{ Buckets string } `json:"links"`
			} `json:"orgs"`
		}
		s.must("GET", "/api/v2/orgs", nil, &list, 200)
		if len(list.Orgs) != 1 || list.Orgs[0].Name != tc.want {
			t.Fatalf("org %q: /api/v2/orgs = %+v", tc.org, list)
		}
		var one struct{ Name string }
		s.must("GET", "/api/v2/orgs/"+list.Orgs[0].ID, nil, &one, 200)
		if one.Name != tc.want {
			t.Fatalf("org %q: by id = %q", tc.org, one.Name)
		}
		var buckets struct {
			Buckets []struct{ Name string } `json:"buckets"`
		}
		s.must("GET", list.Orgs[0].Links.Buckets, nil, &buckets, 200)
		if len(buckets.Buckets) == 0 {
			t.Fatalf("org %q: the organisation's buckets link %q lists nothing", tc.org, list.Orgs[0].Links.Buckets)
		}
	}
}
