package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newJobsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "Roll a job document out to a fleet and follow its executions",
	}
	var id, desc, doc, typ, timeout string
	var things, attrs []string
	var rollout, abortMin int
	var abortPct float64
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a job for a list of things and/or a registry query",
		Example: `  edgewise jobs create --document '{"op":"update","version":"2.1"}' --thing s1 --thing s2
  edgewise jobs create --document @job.json --type sensor --attr site=lab --rollout 100 --abort-percent 10 --abort-min 50`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if doc == "" {
				return usageError(fmt.Errorf("--document is required"))
			}
			b, err := readArg(doc)
			if err != nil {
				return usageError(err)
			}
			var d map[string]any
			if err := json.Unmarshal(b, &d); err != nil || d == nil {
				return usageError(fmt.Errorf("--document must be a JSON object"))
			}
			targets := map[string]any{}
			if len(things) > 0 {
				targets["things"] = things
			}
			if typ != "" || len(attrs) > 0 {
				q := map[string]any{}
				if typ != "" {
					q["type"] = typ
				}
				am := map[string]string{}
				for _, kv := range attrs {
					k, v, ok := strings.Cut(kv, "=")
					if !ok || k == "" {
						return usageError(fmt.Errorf("--attr %q must be KEY=VALUE", kv))
					}
					am[k] = v
				}
				if len(am) > 0 {
					q["attributes"] = am
				}
				targets["query"] = q
			}
			if len(targets) == 0 {
				return usageError(fmt.Errorf("give targets: --thing, --type and/or --attr"))
			}
			body := map[string]any{"document": d, "targets": targets}
			if id != "" {
				body["id"] = id
			}
			if desc != "" {
				body["description"] = desc
			}
			if rollout < 0 {
				return usageError(fmt.Errorf("--rollout must not be negative"))
			}
			if rollout > 0 {
				body["rollout_per_minute"] = rollout
			}
			if abortPct != 0 || abortMin != 0 {
				body["abort"] = map[string]any{"failure_percent": abortPct, "min_executed": abortMin}
			}
			if timeout != "" {
				if _, err := time.ParseDuration(timeout); err != nil {
					return usageError(fmt.Errorf("--timeout %q is not a duration", timeout))
				}
				body["in_progress_timeout"] = timeout
			}
			return jobsCall(cmd, "POST", "/api/v1/jobs", body)
		},
	}
	f := create.Flags()
	f.StringVar(&id, "id", "", "job id (generated when empty)")
	f.StringVar(&desc, "description", "", "description")
	f.StringVar(&doc, "document", "", "job document: JSON object, @FILE or -")
	f.StringArrayVar(&things, "thing", nil, "target thing (repeatable)")
	f.StringVar(&typ, "type", "", "target things of this type")
	f.StringArrayVar(&attrs, "attr", nil, "target things with attribute KEY=VALUE (repeatable)")
	f.IntVar(&rollout, "rollout", 0, "things released per minute (0: all at once)")
	f.Float64Var(&abortPct, "abort-percent", 0, "abort when this percent of finished executions failed...")
	f.IntVar(&abortMin, "abort-min", 0, "...after at least this many finished")
	f.StringVar(&timeout, "timeout", "", "in-progress timeout per execution (e.g. 10m)")

	var execs bool
	var execStatus string
	get := &cobra.Command{
		Use:   "get ID",
		Short: "Print a job and its execution counts (--executions: each thing's execution)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !execs {
				return jobsCall(cmd, "GET", "/api/v1/jobs/"+url.PathEscape(args[0]), nil)
			}
			path := "/api/v1/jobs/" + url.PathEscape(args[0]) + "/executions"
			if execStatus != "" {
				path += "?status=" + url.QueryEscape(execStatus)
			}
			return jobsCall(cmd, "GET", path, nil)
		},
	}
	get.Flags().BoolVar(&execs, "executions", false, "list the executions")
	get.Flags().StringVar(&execStatus, "status", "", "with --executions: only this status")

	var status string
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List jobs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := "/api/v1/jobs"
			if status != "" {
				path += "?status=" + url.QueryEscape(status)
			}
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := c.Do(cmd.Context(), "GET", path, nil, &raw); err != nil {
				return err
			}
			if asJSON {
				return printRaw(cmd, raw)
			}
			var res struct {
				Jobs []struct {
					ID        string         `json:"id"`
					Status    string         `json:"status"`
					Total     int            `json:"total"`
					Counts    map[string]int `json:"counts"`
					CreatedAt time.Time      `json:"created_at"`
				} `json:"jobs"`
			}
			if err := json.Unmarshal(raw, &res); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATUS\tTHINGS\tSUCCEEDED\tFAILED\tCREATED")
			for _, j := range res.Jobs {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", j.ID, j.Status, j.Total, j.Counts["succeeded"],
					j.Counts["failed"]+j.Counts["rejected"]+j.Counts["timed_out"], j.CreatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&status, "status", "", "only jobs with this status")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var reason string
	cancel := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a job: its unfinished executions become canceled",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return jobsCall(cmd, "POST", "/api/v1/jobs/"+url.PathEscape(args[0])+"/cancel", map[string]any{"reason": reason})
		},
	}
	cancel.Flags().StringVar(&reason, "reason", "", "why (kept with the job)")
	cmd.AddCommand(create, get, list, cancel)
	return cmd
}

func jobsCall(cmd *cobra.Command, method, path string, body any) error {
	c, err := clientFromCmd(cmd)
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.Do(cmd.Context(), method, path, body, &raw); err != nil {
		return err
	}
	return printRaw(cmd, raw)
}
