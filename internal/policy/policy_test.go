package policy

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgewise-iot/edgewise/internal/store"
)

func TestParseErrorsNameTheField(t *testing.T) {
	cases := map[string]string{
		`nope`:              "not a JSON object",
		`{"Statement": []}`: "Statement is empty",
		`{"Version": "2008-10-17", "Statement": []}`: "Version",
		`{}`: "Statement is missing",
		`{"Statement": [{"Effect": "Maybe", "Action": "iot:Publish", "Resource": "*"}]}`:                                              "Statement[0].Effect",
		`{"Statement": [{"Effect": "Allow", "Action": "iot:Fly", "Resource": "*"}]}`:                                                  "Statement[0].Action[0]: unknown action",
		`{"Statement": [{"Effect": "Allow", "Action": [], "Resource": "*"}]}`:                                                         "Statement[0].Action",
		`{"Statement": [{"Effect": "Allow", "Action": "iot:Publish"}]}`:                                                               "Statement[0].Resource",
		`{"Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": "queue/x"}]}`:                                        "Statement[0].Resource[0]",
		`{"Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:s3:::x"}]}`:                                 "not an IoT ARN",
		`{"Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": ["*", "topic/${iot:Foo}"]}]}`:                        "Statement[0].Resource[1]: \"topic/${iot:Foo}\": unknown policy variable",
		`{"Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/${iot:ClientId"}]}`:                           "unterminated",
		`{"Statement": [{"Effect": "Allow", "Action": 3, "Resource": "*"}]}`:                                                          "Statement[0]",
		`{"Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": "*", "Extra": 1}]}`:                                  "unknown field",
		`{"Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": "*", "Condition": {"Foo": {"iot:ClientId": "x"}}}]}`: "Condition.Foo",
		`{"Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": "*"}]} x`:                                            "trailing",
	}
	for in, want := range cases {
		_, err := Parse([]byte(in))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s:\n got %v\nwant …%s…", in, err, want)
		}
	}
	d, err := Parse([]byte(`{"Version":"2012-10-17","Statement":{"Effect":"allow","Action":"Publish","Resource":"arn:aws:iot:eu-west-1:123456789012:topic/a"}}`))
	if err != nil || len(d.Statement) != 1 || d.Statement[0].Effect != "Allow" {
		t.Fatalf("single statement object: %+v %v", d, err)
	}
}

func TestEvaluation(t *testing.T) {
	type check struct {
		a     Action
		name  string
		allow bool
	}
	d1 := Vars{ClientID: "d1", ThingName: "d1", ThingTypeName: "sensor", Attributes: map[string]string{"site": "lab"}, IsAttached: true}
	cases := []struct {
		name   string
		doc    string
		vars   Vars
		checks []check
	}{
		{"variables and ARN forms", `{"Statement":[
			{"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
			{"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":"arn:aws:iot:us-east-1:1:topic/devices/${iot:ClientId}/*"},
			{"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/devices/${iot:ClientId}/*"},
			{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/types/${iot:Connection.Thing.ThingTypeName}/${iot:Connection.Thing.Attributes[site]}"}]}`,
			d1, []check{
				{Connect, "d1", true}, {Connect, "d2", false},
				{Publish, "devices/d1/telemetry", true}, {Publish, "devices/d2/telemetry", false},
				{Receive, "devices/d1/command", true}, {Receive, "devices/d2/command", false},
				{Subscribe, "devices/d1/#", true}, {Subscribe, "devices/#", false}, {Subscribe, "devices/+/telemetry", false},
				{Publish, "types/sensor/lab", true}, {Publish, "types/sensor/home", false},
				{Subscribe, "types/sensor/lab", false}, // topic resources never match subscriptions
			}},
		{"deny overrides allow", `{"Statement":[
			{"Effect":"Allow","Action":"iot:*","Resource":"*"},
			{"Effect":"Deny","Action":"iot:Publish","Resource":"topic/devices/*/config"},
			{"Effect":"Deny","Action":"Subscribe","Resource":"topicfilter/#"}]}`,
			d1, []check{
				{Publish, "devices/d1/telemetry", true}, {Publish, "devices/d1/config", false},
				{Subscribe, "devices/d1/config", true}, {Subscribe, "#", false}, {Receive, "devices/d1/config", true},
			}},
		{"client id with wildcards stays literal", `{"Statement":[
			{"Effect":"Allow","Action":["iot:Publish","iot:Subscribe","iot:Receive"],"Resource":["topic/devices/${iot:ClientId}/*","topicfilter/devices/${iot:ClientId}/*"]}]}`,
			Vars{ClientID: "#"}, []check{
				{Subscribe, "devices/#/x", false}, {Subscribe, "devices/d1/x", false}, {Subscribe, "devices/#", false},
				{Receive, "devices/d2/x", false}, {Publish, "devices/d2/x", false},
			}},
		{"star and slash in client id stay literal", `{"Statement":[
			{"Effect":"Allow","Action":["iot:Publish","iot:Subscribe"],"Resource":["topic/devices/${iot:ClientId}/t","topicfilter/devices/${iot:ClientId}/t"]}]}`,
			Vars{ClientID: "*"}, []check{
				{Publish, "devices/*/t", true}, {Publish, "devices/d2/t", false}, {Publish, "devices/a/b/t", false},
				{Subscribe, "devices/+/t", false},
			}},
		{"slash client id cannot climb", `{"Statement":[
			{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/devices/${iot:ClientId}"}]}`,
			Vars{ClientID: "d2/telemetry"}, []check{
				{Publish, "devices/d2/telemetry", false}, // a client id with "/" cannot name levels
				{Publish, "devices/d2/other", false}, {Publish, "devices/d2", false},
			}},
		{"wildcard client id equal to a filter", `{"Statement":[
			{"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:ClientId}"},
			{"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/devices/${iot:ClientId}"}]}`,
			Vars{ClientID: "+"}, []check{{Subscribe, "devices/+", false}, {Connect, "+", true}}},
		{"question mark and escapes", `{"Statement":[
			{"Effect":"Allow","Action":"iot:Publish","Resource":["topic/room-?/t","topic/lit${*}${?}${$}"]}]}`,
			d1, []check{
				{Publish, "room-1/t", true}, {Publish, "room-12/t", false}, {Publish, "room-/t", false},
				{Publish, "lit*?$", true}, {Publish, "litX?$", false},
			}},
		{"unresolved variables match nothing", `{"Statement":[
			{"Effect":"Allow","Action":"iot:Publish","Resource":["topic/t/${iot:Connection.Thing.ThingName}/*","topic/a/${iot:Connection.Thing.Attributes[missing]}"]}]}`,
			Vars{ClientID: "x"}, []check{{Publish, "t//x", false}, {Publish, "t/x/y", false}, {Publish, "a/", false}}},
		{"conditions", `{"Statement":[
			{"Effect":"Allow","Action":"iot:Connect","Resource":"*","Condition":{"Bool":{"iot:Connection.Thing.IsAttached":"true"}}},
			{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/lab","Condition":{"StringEquals":{"iot:Connection.Thing.Attributes[site]":["lab","lab2"]}}},
			{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/home","Condition":{"StringLike":{"iot:ClientId":"h-*"}}},
			{"Effect":"Deny","Action":"iot:Publish","Resource":"*","Condition":{"StringNotEquals":{"iot:Connection.Thing.ThingTypeName":"sensor"}}}]}`,
			d1, []check{{Connect, "d1", true}, {Publish, "lab", true}, {Publish, "home", false}}},
		{"conditions false", `{"Statement":[
			{"Effect":"Allow","Action":"iot:Connect","Resource":"*","Condition":{"Bool":{"iot:Connection.Thing.IsAttached":true}}},
			{"Effect":"Allow","Action":"iot:Publish","Resource":"*"},
			{"Effect":"Deny","Action":"iot:Publish","Resource":"*","Condition":{"StringNotEquals":{"iot:Connection.Thing.ThingTypeName":"sensor"}}}]}`,
			Vars{ClientID: "h-1"}, []check{{Connect, "h-1", false}, {Publish, "x", false}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Parse([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			c := Compile(tc.vars, d)
			for _, ch := range tc.checks {
				if got := c.Allowed(ch.a, ch.name); got != ch.allow {
					t.Errorf("%v %q = %v, want %v", ch.a, ch.name, got, ch.allow)
				}
			}
		})
	}
}

func TestDefaultReproducesConfinement(t *testing.T) {
	c := CompileDefault(Vars{ClientID: "anything", ThingName: "d1"}, MustParse(Default))
	for _, tc := range []struct {
		a     Action
		name  string
		allow bool
	}{
		{Connect, "whatever", true},
		{Publish, "devices/d1/telemetry", true}, {Publish, "devices/d1/", false}, {Publish, "devices/d1", false},
		{Publish, "devices/d10/telemetry", false}, {Publish, "$aws/things/d1/shadow/update", true},
		{Publish, "$edgewise/things/d1/shadow/get", true}, {Publish, "$aws/things/d2/shadow/update", false},
		{Subscribe, "devices/d1/#", true}, {Subscribe, "devices/+/telemetry", false}, {Subscribe, "#", false},
		{Subscribe, "$aws/things/d1/shadow/#", true}, {Subscribe, "$aws/things/#", false},
	} {
		if got := c.Allowed(tc.a, tc.name); got != tc.allow {
			t.Errorf("%v %q = %v, want %v", tc.a, tc.name, got, tc.allow)
		}
	}
	if c.RestrictsReceive() {
		t.Error("the default policy needs no per-delivery check")
	}
	if !Compile(Vars{}, MustParse(Default)).RestrictsReceive() {
		t.Error("an ordinary policy without Receive on * restricts receiving")
	}
	if Compile(Vars{}, MustParse(`{"Statement":[{"Effect":"Allow","Action":"iot:Receive","Resource":"*"}]}`)).RestrictsReceive() {
		t.Error("Receive on * restricts nothing")
	}
}

type groups map[string][]string

func (g groups) GroupsOf(_ context.Context, thing string) ([]string, error) { return g[thing], nil }

func TestStore(t *testing.T) {
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := NewStore(ctx, db, StoreOptions{Groups: groups{"d1": {"floor-1", "building"}}})
	if err != nil {
		t.Fatal(err)
	}
	pub := func(topic string) string {
		return `{"Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/` + topic + `"}]}`
	}
	for name, doc := range map[string]string{"p-cert": pub("cert"), "p-thing": pub("thing"), "p-group": pub("group"), "p-deny": `{"Statement":[{"Effect":"Deny","Action":"iot:Publish","Resource":"topic/thing"}]}`} {
		if _, err := s.Create(ctx, name, []byte(doc)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Create(ctx, "p-cert", []byte(pub("x"))); !errors.Is(err, ErrExists) {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "bad name!", []byte(pub("x"))); !errors.Is(err, ErrInvalid) {
		t.Fatal(err)
	}
	v := Vars{ClientID: "d1", ThingName: "d1", CertificateID: "abc", IsAttached: true}
	c, gen, _ := s.Effective(ctx, v)
	if !c.Allowed(Publish, "devices/d1/x") || c.Allowed(Publish, "cert") {
		t.Fatal("without attachments the default policy applies")
	}
	for _, a := range []struct {
		p string
		t Target
	}{{"p-cert", Target{TargetCertificate, "abc"}}, {"p-thing", Target{TargetThing, "d1"}}, {"p-group", Target{TargetGroup, "building"}}} {
		if err := s.Attach(ctx, a.p, a.t); err != nil {
			t.Fatal(err)
		}
	}
	if s.Generation() == gen {
		t.Fatal("attaching did not change the generation")
	}
	c, _, _ = s.Effective(ctx, v)
	for _, topic := range []string{"cert", "thing", "group"} {
		if !c.Allowed(Publish, topic) {
			t.Errorf("%s not allowed", topic)
		}
	}
	if c.Allowed(Publish, "devices/d1/x") {
		t.Error("the default policy applies only when nothing is attached")
	}
	if err := s.Attach(ctx, "p-deny", Target{TargetGroup, "floor-1"}); err != nil {
		t.Fatal(err)
	}
	c, _, _ = s.Effective(ctx, v)
	if c.Allowed(Publish, "thing") || !c.Allowed(Publish, "cert") {
		t.Error("a Deny from a group must override the thing's Allow")
	}
	if err := s.Delete(ctx, "p-deny"); !errors.Is(err, ErrInUse) {
		t.Fatalf("delete attached: %v", err)
	}
	if err := s.Attach(ctx, "p-x", Target{TargetThing, "d1"}); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	if err := s.Attach(ctx, "p-cert", Target{"user", "x"}); !errors.Is(err, ErrInvalid) {
		t.Fatal(err)
	}
	// Reload from the database.
	s2, err := NewStore(ctx, db, StoreOptions{Groups: groups{"d1": {"floor-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if names, _ := s2.Attached(ctx, Target{TargetGroup, "floor-1"}); len(names) != 1 || names[0] != "p-deny" {
		t.Fatalf("reloaded attachments %v", names)
	}
	if tg, _ := s2.Targets(ctx, "p-cert"); len(tg) != 1 || tg[0] != (Target{TargetCertificate, "abc"}) {
		t.Fatalf("targets %v", tg)
	}
	if err := s2.Detach(ctx, "p-deny", Target{TargetGroup, "floor-1"}); err != nil {
		t.Fatal(err)
	}
	if err := s2.Detach(ctx, "p-deny", Target{TargetGroup, "floor-1"}); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	if err := s2.Delete(ctx, "p-deny"); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Update(ctx, "p-cert", []byte(pub("cert2"))); err != nil {
		t.Fatal(err)
	}
	p, _ := s2.Get(ctx, "p-cert")
	if p.Version != 2 {
		t.Fatalf("version %d", p.Version)
	}
	list, next, _ := s2.List(ctx, ListOptions{Limit: 2})
	if len(list) != 2 || next != list[1].Name || list[0].Name != "p-cert" {
		t.Fatalf("list %v next %q", list, next)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(Default))
	f.Add([]byte(`{"Statement":{"Effect":"Deny","Action":["iot:*"],"Resource":"arn:aws:iot:*:*:topicfilter/${iot:Connection.Thing.Attributes[a]}/?*${*}","Condition":{"StringLike":{"iot:ClientId":["a*"]}}}}`))
	f.Add([]byte(`{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		c := Compile(Vars{ClientID: "c+#/*?", ThingName: "t", Attributes: map[string]string{"a": "*"}}, d)
		for a := range numActions {
			c.Allowed(a, "devices/t/x")
			c.Allowed(a, string(b))
		}
	})
}

func BenchmarkPolicyCheckPublish(b *testing.B) {
	d := MustParse(`{"Statement":[
		{"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":["arn:aws:iot:*:*:topic/devices/${iot:Connection.Thing.ThingName}/*","arn:aws:iot:*:*:topic/$aws/things/${iot:Connection.Thing.ThingName}/*"]},
		{"Effect":"Deny","Action":"iot:Publish","Resource":"topic/devices/*/config"}]}`)
	c := Compile(Vars{ClientID: "sensor-0001", ThingName: "sensor-0001"}, d)
	b.ReportAllocs()
	for b.Loop() {
		if !c.Allowed(Publish, "devices/sensor-0001/telemetry") {
			b.Fatal("denied")
		}
	}
}

func BenchmarkPolicyCheckPublishDefault(b *testing.B) {
	c := CompileDefault(Vars{ClientID: "sensor-0001", ThingName: "sensor-0001"}, MustParse(Default))
	b.ReportAllocs()
	for b.Loop() {
		if !c.Allowed(Publish, "devices/sensor-0001/telemetry") {
			b.Fatal("denied")
		}
	}
}
