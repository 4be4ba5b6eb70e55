// Package agents is the cloud side of central rule management for edge
// agents. It keeps each agent's versioned rule set (table edge_agents in
// the server's database), publishes it retained on the agent's rules topic
// (devices/{agent}/agent/rules) whenever it changes and when the server
// starts, and records the status each agent reports on
// devices/{agent}/agent/status (a broker.PublishHook), so
// GET /api/v1/agents/{name} shows both the desired and the running
// version. The message formats (RuleSet, Status) are defined here and used
// by internal/edge/agent.
package agents
