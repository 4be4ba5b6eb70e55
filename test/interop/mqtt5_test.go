package interop

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestQoSBothWays publishes at QoS 0, 1 and 2 from each client to the other
// and checks payload and delivered QoS.
func TestQoSBothWays(t *testing.T) {
	need(t, "mosquitto_pub", "mosquitto_sub")
	e := start(t)
	f := probe(t, e.tcp)
	for _, qos := range []int{0, 1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			if qos == 2 && !f.qos2 {
				t.Fatal("the broker does not advertise QoS 2 (Maximum QoS in CONNACK)")
			}
			q := strconv.Itoa(qos)
			n := newNode(t)
			n.connect("mqtt://"+e.tcp, map[string]any{"clientId": "node-q" + q})
			mustEqual(t, "granted", n.subscribe("q/"+q+"/to-node", map[string]any{"qos": qos})[0], qos)
			sub := startSub(t, e, e.tcp, 1, "-t", "q/"+q+"/to-mosq", "-q", q)
			mosqPub(t, e.tcp, "-t", "q/"+q+"/to-node", "-q", q, "-m", "from mosquitto")
			m := n.message()
			mustEqual(t, "node payload", m["payload"], "from mosquitto")
			mustEqual(t, "node qos", m["qos"], qos)
			n.publish("q/"+q+"/to-mosq", "from node", map[string]any{"qos": qos})
			l := sub.next(t)
			mustEqual(t, "mosquitto payload", l.Payload, "from node")
			mustEqual(t, "mosquitto qos", l.QoS, q)
		})
	}
}

// TestRetainedSetAndClear sets a retained message with mosquitto_pub,
// reads it with mqtt.js, clears it with an empty retained message and
// checks that a new subscriber gets nothing.
func TestRetainedSetAndClear(t *testing.T) {
	need(t, "mosquitto_pub")
	e := start(t)
	mosqPub(t, e.tcp, "-t", "ret/a", "-r", "-q", "1", "-m", "21.5")
	n := newNode(t)
	n.connect("mqtt://"+e.tcp, nil)
	n.subscribe("ret/#", map[string]any{"qos": 1})
	m := n.message()
	mustEqual(t, "retained", []any{m["topic"], m["payload"], m["retain"]}, []any{"ret/a", "21.5", true})
	mosqPub(t, e.tcp, "-t", "ret/a", "-r", "-n")
	// The live empty message with retain set is delivered to the existing
	// subscriber as a normal (retain 0) message.
	m = n.message()
	mustEqual(t, "clear", []any{m["topic"], m["payload"], m["retain"]}, []any{"ret/a", "", false})
	n2 := newNode(t)
	n2.connect("mqtt://"+e.tcp, nil)
	n2.subscribe("ret/#", nil)
	mosqPub(t, e.tcp, "-t", "ret/marker", "-m", "m")
	if before := n2.until("ret/marker"); len(before) != 0 {
		t.Fatalf("cleared retained message still delivered: %v", before)
	}
}

// TestWillOnDrop has mqtt.js register a will with properties, drops its
// connection without DISCONNECT and expects mosquitto_sub to receive it.
func TestWillOnDrop(t *testing.T) {
	need(t, "mosquitto_sub")
	e := start(t)
	sub := startSub(t, e, e.tcp, 1, "-t", "will/#", "-q", "1")
	n := newNode(t)
	n.connect("mqtt://"+e.tcp, map[string]any{"clientId": "mortal", "will": map[string]any{
		"topic": "will/mortal", "payload": "gone", "qos": 1,
		"properties": map[string]any{"userProperties": map[string]any{"reason": "power"}},
	}})
	n.do("end", map[string]any{"op": "end"})
	// A clean DISCONNECT discards the will: the next line must be the
	// marker, not the will.
	mosqPub(t, e.tcp, "-t", "will/marker", "-m", "x")
	mustEqual(t, "after clean disconnect", sub.next(t).Topic, "will/marker")

	n2 := newNode(t)
	n2.connect("mqtt://"+e.tcp, map[string]any{"clientId": "mortal2", "will": map[string]any{
		"topic": "will/mortal", "payload": "gone", "qos": 1,
		"properties": map[string]any{"userProperties": map[string]any{"reason": "power"}},
	}})
	n2.do("dropped", map[string]any{"op": "drop"})
	l := sub.next(t)
	mustEqual(t, "will", []string{l.Topic, l.Payload, l.User}, []string{"will/mortal", "gone", "reason:power"})
}

// TestUserProperties sends user properties from mosquitto_pub to mqtt.js
// and back to mosquitto_sub, order and duplicates preserved.
func TestUserProperties(t *testing.T) {
	need(t, "mosquitto_pub", "mosquitto_sub")
	e := start(t)
	n := newNode(t)
	n.connect("mqtt://"+e.tcp, nil)
	n.subscribe("up/in", nil)
	sub := startSub(t, e, e.tcp, 1, "-t", "up/out")
	mosqPub(t, e.tcp, "-t", "up/in", "-m", "x", "-D", "publish", "user-property", "site", "berlin",
		"-D", "publish", "user-property", "line", "4")
	m := n.message()
	up, _ := props(m)["userProperties"].(map[string]any)
	mustEqual(t, "userProperties", []any{up["site"], up["line"]}, []any{"berlin", "4"})
	n.publish("up/out", "y", map[string]any{"properties": map[string]any{
		"userProperties": map[string]any{"a": "1", "b": []string{"2", "3"}}}})
	mustEqual(t, "mosquitto user properties", sub.next(t).User, "a:1 b:2 b:3")
}

// TestRequestResponse answers mosquitto_rr's request from mqtt.js through
// the response topic and correlation data of the request.
func TestRequestResponse(t *testing.T) {
	need(t, "mosquitto_rr", "mosquitto_pub")
	e := start(t)
	n := newNode(t)
	n.connect("mqtt://"+e.tcp, nil)
	n.subscribe("rr/request", map[string]any{"qos": 1})
	// Correlation data reaches a subscriber unchanged.
	mosqPub(t, e.tcp, "-t", "rr/request", "-m", "ping", "-D", "publish", "response-topic", "rr/answer",
		"-D", "publish", "correlation-data", "req-17")
	m := n.message()
	mustEqual(t, "request properties", []any{props(m)["responseTopic"], props(m)["correlationData"]}, []any{"rr/answer", "req-17"})

	done := make(chan struct{})
	var out []byte
	var err error
	before := e.srv.Stats().Subscriptions
	go func() {
		defer close(done)
		out, err = runMosq(e.tcp, "mosquitto_rr", "-t", "rr/request", "-e", "rr/reply-17", "-m", "what time", "-W", "10")
	}()
	e.subscribed(t, before, 1)
	req := n.message()
	p := props(req)
	mustEqual(t, "mosquitto_rr response topic", p["responseTopic"], "rr/reply-17")
	reply := map[string]any{"properties": map[string]any{}}
	if cd, ok := p["correlationData"]; ok {
		reply["properties"].(map[string]any)["correlationData"] = cd
	}
	n.publish(p["responseTopic"].(string), "noon", reply)
	<-done
	if err != nil || strings.TrimSpace(string(out)) != "noon" {
		t.Fatalf("mosquitto_rr: %v: %q", err, out)
	}
}

// TestMessageExpiry checks that a retained message's expiry interval counts
// down and that an expired retained message is not delivered.
func TestMessageExpiry(t *testing.T) {
	need(t, "mosquitto_pub")
	e := start(t)
	mosqPub(t, e.tcp, "-t", "exp/long", "-r", "-q", "1", "-m", "l", "-D", "publish", "message-expiry-interval", "60")
	mosqPub(t, e.tcp, "-t", "exp/short", "-r", "-q", "1", "-m", "s", "-D", "publish", "message-expiry-interval", "1")
	// Expiry is about wall time: wait past the short interval.
	time.Sleep(2100 * time.Millisecond)
	n := newNode(t)
	n.connect("mqtt://"+e.tcp, nil)
	n.subscribe("exp/#", map[string]any{"qos": 1})
	mosqPub(t, e.tcp, "-t", "exp/marker", "-m", "m")
	got := n.until("exp/marker")
	if len(got) != 1 || got[0]["topic"] != "exp/long" {
		t.Fatalf("received %v, want only exp/long (exp/short expired)", got)
	}
	left, _ := props(got[0])["messageExpiryInterval"].(float64)
	if left < 1 || left > 58 {
		t.Fatalf("remaining expiry %v, want the 60 s minus the ~2 s waited", left)
	}
}

// TestNoLocal subscribes mqtt.js with No Local and checks it does not get
// its own messages but gets mosquitto_pub's.
func TestNoLocal(t *testing.T) {
	need(t, "mosquitto_pub")
	e := start(t)
	n := newNode(t)
	n.connect("mqtt://"+e.tcp, nil)
	n.subscribe("nl/t", map[string]any{"qos": 1, "nl": true})
	n.publish("nl/t", "own", map[string]any{"qos": 1})
	mosqPub(t, e.tcp, "-t", "nl/t", "-m", "other")
	mustEqual(t, "first message", n.message()["payload"], "other")
}

// TestRetainHandlingAndRetainAsPublished covers the subscription options
// Retain Handling 0/1/2 and Retain As Published.
func TestRetainHandlingAndRetainAsPublished(t *testing.T) {
	need(t, "mosquitto_pub")
	e := start(t)
	mosqPub(t, e.tcp, "-t", "rh/x", "-r", "-m", "kept")
	n := newNode(t)
	n.connect("mqtt://"+e.tcp, nil)
	count := func(topic string, opts map[string]any) int {
		t.Helper()
		n.subscribe(topic, opts)
		n.publish("rh/marker", "", nil)
		return len(n.until("rh/marker"))
	}
	n.subscribe("rh/marker", nil)
	mustEqual(t, "rh=2 (never)", count("rh/x", map[string]any{"rh": 2}), 0)
	mustEqual(t, "rh=1 on an existing subscription", count("rh/x", map[string]any{"rh": 1}), 0)
	mustEqual(t, "rh=1 on a new subscription", count("rh/+", map[string]any{"rh": 1}), 1)
	mustEqual(t, "rh=0 (always)", count("rh/+", map[string]any{"rh": 0}), 1)

	n2 := newNode(t)
	n2.connect("mqtt://"+e.tcp, nil)
	n2.subscribe("rap/keep", map[string]any{"rap": true})
	n2.subscribe("rap/clear", map[string]any{"rap": false})
	mosqPub(t, e.tcp, "-t", "rap/keep", "-r", "-m", "1")
	mosqPub(t, e.tcp, "-t", "rap/clear", "-r", "-m", "2")
	a, b := n2.message(), n2.message()
	if a["topic"] == "rap/clear" {
		a, b = b, a
	}
	mustEqual(t, "retain flag with rap=1", a["retain"], true)
	mustEqual(t, "retain flag with rap=0", b["retain"], false)
}

// TestSessionExpiryAndResume keeps an mqtt.js session while it is offline,
// queues QoS 1 messages from mosquitto_pub and resumes the session.
func TestSessionExpiryAndResume(t *testing.T) {
	need(t, "mosquitto_pub")
	e := start(t)
	opts := map[string]any{"clientId": "resumer", "clean": false, "properties": map[string]any{"sessionExpiryInterval": 60}}
	n := newNode(t)
	mustEqual(t, "first session present", n.connect("mqtt://"+e.tcp, opts)["sessionPresent"], false)
	n.subscribe("sess/#", map[string]any{"qos": 1})
	n.do("end", map[string]any{"op": "end"})
	eventually(t, func() bool { return e.srv.Stats().Connections == 0 }, "node disconnected")
	for i := range 3 {
		mosqPub(t, e.tcp, "-t", "sess/q", "-q", "1", "-m", strconv.Itoa(i))
	}
	n2 := newNode(t)
	mustEqual(t, "resumed session present", n2.connect("mqtt://"+e.tcp, opts)["sessionPresent"], true)
	for i := range 3 {
		mustEqual(t, "queued message", n2.message()["payload"], strconv.Itoa(i))
	}
	// Session expiry 0 on a clean start: the session is gone next time.
	n2.do("end", map[string]any{"op": "end"})
	n3 := newNode(t)
	n3.connect("mqtt://"+e.tcp, map[string]any{"clientId": "resumer", "clean": true})
	n3.do("end", map[string]any{"op": "end"})
	n4 := newNode(t)
	mustEqual(t, "session after clean start", n4.connect("mqtt://"+e.tcp, opts)["sessionPresent"], false)
}

// TestTopicAlias publishes from mqtt.js with a topic alias (the second
// message carries only the alias) and receives both on mosquitto_sub.
func TestTopicAlias(t *testing.T) {
	need(t, "mosquitto_sub")
	e := start(t)
	if !probe(t, e.tcp).topicAlias {
		t.Fatal("the broker advertises no Topic Alias Maximum")
	}
	sub := startSub(t, e, e.tcp, 1, "-t", "alias/#")
	n := newNode(t)
	n.connect("mqtt://"+e.tcp, nil)
	n.publish("alias/long/topic/name", "1", map[string]any{"properties": map[string]any{"topicAlias": 3}})
	n.publish("", "2", map[string]any{"properties": map[string]any{"topicAlias": 3}})
	for _, want := range []string{"1", "2"} {
		l := sub.next(t)
		mustEqual(t, "aliased message", []string{l.Topic, l.Payload}, []string{"alias/long/topic/name", want})
	}
	// Server to client: mqtt.js allows 10 aliases; whatever the server
	// chooses, the client must see full topic names.
	n2 := newNode(t)
	n2.connect("mqtt://"+e.tcp, map[string]any{"properties": map[string]any{"topicAliasMaximum": 10}})
	n2.subscribe("alias/#", nil)
	for i := range 3 {
		mosqPub(t, e.tcp, "-t", "alias/long/topic/name", "-m", strconv.Itoa(i))
		mustEqual(t, "topic at the client", n2.message()["topic"], "alias/long/topic/name")
	}
}

// TestSubscriptionIdentifier subscribes with identifiers and checks that
// deliveries carry the identifier of the matching subscription.
func TestSubscriptionIdentifier(t *testing.T) {
	need(t, "mosquitto_pub", "mosquitto_sub")
	e := start(t)
	if !probe(t, e.tcp).subIDs {
		t.Fatal("the broker says subscription identifiers are not available")
	}
	n := newNode(t)
	n.connect("mqtt://"+e.tcp, nil)
	n.subscribe("sid/a/#", map[string]any{"properties": map[string]any{"subscriptionIdentifier": 7}})
	sub := startSub(t, e, e.tcp, 1, "-t", "sid/#", "-D", "subscribe", "subscription-identifier", "42")
	mosqPub(t, e.tcp, "-t", "sid/a/1", "-m", "x")
	mustEqual(t, "mqtt.js subscription id", props(n.message())["subscriptionIdentifier"], 7)
	mustEqual(t, "mosquitto subscription id", sub.next(t).SubID, "42")
}

// TestSharedSubscription splits messages among two mosquitto_sub members
// of one share group; a mqtt.js plain subscriber still gets every message.
func TestSharedSubscription(t *testing.T) {
	need(t, "mosquitto_pub", "mosquitto_sub")
	e := start(t)
	if !probe(t, e.tcp).shared {
		t.Fatal("the broker says shared subscriptions are not available")
	}
	a := startSub(t, e, e.tcp, 1, "-t", "$share/g/sh/#", "-q", "1")
	b := startSub(t, e, e.tcp, 1, "-t", "$share/g/sh/#", "-q", "1")
	n := newNode(t)
	n.connect("mqtt://"+e.tcp, nil)
	n.subscribe("sh/#", map[string]any{"qos": 1})
	const total = 20
	for i := range total {
		n.publish("sh/x", strconv.Itoa(i), map[string]any{"qos": 1})
	}
	seen := map[string]int{}
	for range total {
		seen[n.message()["payload"].(string)]++
	}
	mustEqual(t, "plain subscriber", len(seen), total)
	got := map[string]bool{}
	for len(got) < total {
		var l line
		select {
		case l = <-a.lines:
		case l = <-b.lines:
		case <-time.After(waitFor):
			t.Fatalf("share group received %d of %d", len(got), total)
		}
		if got[l.Payload] {
			t.Fatalf("message %s delivered twice to the share group", l.Payload)
		}
		got[l.Payload] = true
	}
}
