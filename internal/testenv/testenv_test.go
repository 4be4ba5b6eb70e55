package testenv

import "testing"

func TestServiceReadsEnvironment(t *testing.T) {
	t.Setenv("EDGEWISE_TEST_EXAMPLE", "nats://127.0.0.1:4222")
	if got := Service(t, "EDGEWISE_TEST_EXAMPLE"); got != "nats://127.0.0.1:4222" {
		t.Fatalf("Service = %q", got)
	}
}
