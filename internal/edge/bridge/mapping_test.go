package bridge

import (
	"strings"
	"testing"

	"github.com/edgewise-iot/edgewise/internal/broker/packets"
)

func TestRoutes(t *testing.T) {
	r, err := newRouter("gw", []Route{
		{From: "devices/${agent}/#"},
		{From: "devices/+/telemetry", To: "devices/${agent}/children/${2}"},
		{From: "devices/#", To: "all/${topic}"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]string{
		"devices/gw/alerts":    "devices/gw/alerts",
		"devices/s1/telemetry": "devices/gw/children/s1",
		"devices/s1/state":     "all/devices/s1/state",
		"other/topic":          "",
		"devices/gw/telemetry": "devices/gw/telemetry", // the first matching route wins
	} {
		got, ok := r.match(topic)
		if (want == "") == ok || got != want && ok {
			t.Errorf("%s -> %q %v, want %q", topic, got, ok, want)
		}
	}
	for _, bad := range []Route{{From: "a/#/b"}, {From: "a", To: "${nope}"}, {From: "a", To: "x/${1"}} {
		if _, err := newRouter("gw", []Route{bad}); err == nil {
			t.Errorf("route %+v accepted", bad)
		}
	}
}

func FuzzRoute(f *testing.F) {
	f.Add("devices/+/telemetry", "devices/${agent}/${2}", "devices/a/telemetry")
	f.Add("#", "${topic}", "x")
	f.Add("a/+", "${9}/${topic}/${1}", "a/")
	f.Fuzz(func(t *testing.T, from, to, topic string) {
		r, err := newRouter("gw", []Route{{From: from, To: to}})
		if err != nil || !packets.ValidTopicName(topic) {
			return
		}
		if out, ok := r.match(topic); ok && (!packets.ValidTopicName(out) || strings.ContainsAny(out, "+#")) {
			t.Fatalf("%q -> invalid topic %q", topic, out)
		}
	})
}
