// Package edge is the home of `edgewise agent`, the edge gateway runtime.
// The agent is assembled from sub-packages with one job each:
//
//   - spool: the disk-backed, bounded FIFO that every outbound message
//     passes through (store-and-forward);
//   - uplink: a minimal MQTT 5 client connection to the cloud (TLS, client
//     certificates, pipelined QoS 1 with per-message reason codes);
//   - bridge: forwarding rules (local topic to cloud topic), the sender
//     that drains the spool over the uplink (live and backlog lanes) and
//     the routing of cloud commands and rule sets to the edge;
//   - agent: the composition root of the agent process (local broker,
//     rules engine, bridge, HTTP status listener, central rule sets);
//   - fleet: the cloud side of central rule management (each agent's
//     versioned rule set, pushed as a retained message, and the status the
//     agent reports);
//   - wanproxy: a TCP proxy that adds delay and cuts connections, used by
//     the tests and `edgewise bench edge` to stand in for a WAN link.
//
// docs/edge.md describes a complete site.
package edge
