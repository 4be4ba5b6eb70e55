// Package testenv tells tests where the outside services they integrate
// with (PostgreSQL, NATS, RabbitMQ, Mosquitto) are, and skips them with a
// message when a service is not configured — or fails them when
// EDGEWISE_TEST_REQUIRE_PEERS is set, as CI does, so a missing service can
// never turn an integration test into a silent pass.
package testenv

import (
	"os"
	"testing"
)

// Environment variables naming the services.
const (
	Postgres  = "EDGEWISE_TEST_POSTGRES"  // postgres://... URL of a database tests may write to
	NATS      = "EDGEWISE_TEST_NATS"      // nats://host:port with JetStream
	AMQP      = "EDGEWISE_TEST_AMQP"      // amqp://user:pass@host:port/ (RabbitMQ)
	Mosquitto = "EDGEWISE_TEST_MOSQUITTO" // host:port of a Mosquitto broker
	// RequirePeers turns every skip for a missing service into a failure.
	RequirePeers = "EDGEWISE_TEST_REQUIRE_PEERS"
)

// Service returns the value of the environment variable env, skipping the
// test when it is empty (failing it when RequirePeers is set).
func Service(t testing.TB, env string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		Missing(t, env+" is not set")
	}
	return v
}

// Missing skips the test because what it needs is not available, or fails
// it when RequirePeers is set.
func Missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(RequirePeers) != "" {
		t.Fatalf("%s, and %s requires every integration peer", why, RequirePeers)
	}
	t.Skipf("skipping: %s", why)
}
