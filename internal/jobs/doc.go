// Package jobs owns fleet jobs: a JSON job document sent to a set of things,
// each of which runs it and reports an execution status.
//
// # Targets and rollout
//
// A job targets an explicit list of things and/or a registry query (thing
// type and attribute equality), resolved once when the job is created.
// Targets.Group adds the things of a thing group (resolved through
// Options.Groups, the fleet index; without it ErrGroupsUnavailable).
// Executions are created "queued" for every target;
// RolloutPerMinute (0 = all at once) limits how fast they are released to
// devices: a released execution is what a device sees on its jobs topics.
//
// # Execution statuses
//
//	queued -> in_progress -> succeeded | failed | rejected
//	queued | in_progress -> timed_out (InProgressTimeout passed) | canceled (job canceled or aborted)
//
// # Abort
//
// With Abort set, once at least Abort.MinExecuted executions have finished
// (succeeded, failed, rejected or timed out) and the failed, rejected and
// timed out ones are at least Abort.FailurePercent of them, the job is
// aborted: its unfinished executions are canceled. A job whose executions
// are all final is completed.
//
// # Device protocol (a subset of AWS IoT Jobs, MQTT)
//
// Under $aws/things/{thing}/jobs/ (and mirrored under
// $edgewise/things/{thing}/jobs/, replies going to the prefix of the
// request); request payloads may carry "clientToken", echoed in replies:
//
//	notify-next              server -> device: {"timestamp", "execution"?}, on every change of the next execution
//	notify                   server -> device: {"timestamp", "jobs": {"QUEUED": [...], "IN_PROGRESS": [...]}}
//	get                      -> get/accepted {"queuedJobs", "inProgressJobs", "timestamp"}
//	start-next               -> start-next/accepted {"execution"?}: the next execution, now IN_PROGRESS
//	{jobId}/get ($next too)  -> {jobId}/get/accepted {"execution"}
//	{jobId}/update           {"status": "IN_PROGRESS|SUCCEEDED|FAILED|REJECTED", "statusDetails": {..},
//	                          "expectedVersion": N} -> {jobId}/update/accepted {"executionState": {...}}
//
// Rejections publish {"code", "message", "timestamp", "clientToken"} on
// .../rejected with AWS's codes: InvalidRequest, ResourceNotFound,
// VersionMismatch, InvalidStateTransition, InternalError. Statuses on the
// device topics are AWS's upper-case names; the HTTP API uses lower case.
//
// # Durability
//
// A job and its executions are written in one transaction before Create
// returns. Execution changes are written in batches every FlushInterval
// (100 ms by default) and on Close, like commands: a crash can lose the
// last interval's updates, which devices then report again.
package jobs
