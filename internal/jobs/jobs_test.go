package jobs

import (
	"encoding/json"
	"testing"
	"time"
)

func TestParseTopic(t *testing.T) {
	cases := []struct {
		topic, thing, op, job string
		ok                    bool
	}{
		{"$aws/things/d1/jobs/get", "d1", "get", "", true},
		{"$aws/things/d1/jobs/start-next", "d1", "start-next", "", true},
		{"$aws/things/d1/jobs/$next/get", "d1", "job-get", "$next", true},
		{"$edgewise/things/d1/jobs/j-1/update", "d1", "job-update", "j-1", true},
		{"$aws/things/d1/jobs/j-1/update/accepted", "", "", "", false},
		{"$aws/things/d1/jobs/notify-next", "", "", "", false},
		{"$aws/things/d1/jobs/$next/update", "", "", "", false},
		{"$aws/things//jobs/get", "", "", "", false},
		{"$aws/things/d1/shadow/get", "", "", "", false},
	}
	for _, tc := range cases {
		_, thing, op, job, ok := ParseTopic(tc.topic)
		if ok != tc.ok || thing != tc.thing || op != tc.op || job != tc.job {
			t.Errorf("ParseTopic(%q) = %q %q %q %v", tc.topic, thing, op, job, ok)
		}
	}
}

// FuzzDeviceRequest: any topic and payload a device sends is answered or
// ignored without panicking, and never moves a job backwards.
func FuzzDeviceRequest(f *testing.F) {
	f.Add("$aws/things/d1/jobs/j1/update", []byte(`{"status":"SUCCEEDED","expectedVersion":2,"clientToken":"x"}`))
	f.Add("$aws/things/d1/jobs/start-next", []byte(`{"statusDetails":{"a":"b"}}`))
	f.Add("$aws/things/d1/jobs/$next/get", []byte(`{"includeJobDocument":false}`))
	f.Add("$aws/things/d1/jobs/get", []byte(`nope`))
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		prefix, thing, op, jobID, ok := ParseTopic(topic)
		if !ok {
			return
		}
		now := time.Unix(1700000000, 0).UTC()
		s := &Service{jobs: map[string]*job{}, byThing: map[string][]*exec{}, dirty: map[*exec]struct{}{},
			dirtyJ: map[*job]struct{}{}, now: func() time.Time { return now }}
		jb := &job{j: Job{Spec: Spec{ID: "j1", Document: map[string]any{"op": "x"}}, Status: InProgress, CreatedAt: now, Total: 1}, index: map[string]*exec{}}
		x := &exec{job: jb, e: Execution{JobID: "j1", Thing: thing, Status: ExecQueued, QueuedAt: now, UpdatedAt: now, Version: 1, ReleasedAt: &now}}
		jb.execs, jb.index[thing] = []*exec{x}, x
		s.jobs["j1"], s.byThing[thing] = jb, []*exec{x}
		var req request
		if len(payload) > 0 && json.Unmarshal(payload, &req) != nil {
			return
		}
		_ = prefix
		s.mu.Lock()
		_, _, _ = s.requestLocked(thing, op, jobID, req, now)
		s.mu.Unlock()
		if x.e.Status.Final() && jb.j.Status == InProgress {
			t.Fatalf("final execution left its job in progress: %+v", jb.j)
		}
	})
}
