package agents

import (
	"time"

	"github.com/edgewise-iot/edgewise/internal/rules"
)

// RuleSet is the message the cloud publishes, retained, on RulesTopic: the
// whole rule set of one agent at one version.
type RuleSet struct {
	Agent     string             `json:"agent"`
	Version   int64              `json:"version"`
	Rules     []rules.Definition `json:"rules"`
	UpdatedAt time.Time          `json:"updated_at"`
}

// Status is the message an agent publishes, retained, on StatusTopic after
// each connect and each rule set it applies or rejects.
type Status struct {
	Agent string `json:"agent"`
	// RulesVersion is the version of the central rule set the agent runs
	// (0: none yet) and Rules the names of its rules.
	RulesVersion int64    `json:"rules_version"`
	Rules        []string `json:"rules"`
	// RejectedVersion and RulesError say why the newest version pushed was
	// not applied (the agent keeps running RulesVersion).
	RejectedVersion int64      `json:"rejected_version,omitempty"`
	RulesError      string     `json:"rules_error,omitempty"`
	AppliedAt       *time.Time `json:"applied_at,omitempty"`
	StartedAt       time.Time  `json:"started_at"`
	LocalRules      int        `json:"local_rules"` // rules running on the agent in all
}

// RulesTopic carries the agent's rule set from the cloud.
func RulesTopic(agent string) string { return "devices/" + agent + "/agent/rules" }

// StatusTopic carries the agent's status to the cloud.
func StatusTopic(agent string) string { return "devices/" + agent + "/agent/status" }
