package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newCommandsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "commands",
		Short: "Send commands to devices and follow their outcome",
	}
	var name, payload, timeout, ttl, wait string
	var waitFlag bool
	send := &cobra.Command{
		Use:   "send THING",
		Short: "Send a command (delivered on devices/THING/command now or when the device next connects)",
		Example: `  edgewise commands send sensor-1 --command reboot --payload '{"delay":5}' --wait
  edgewise commands send sensor-1 --payload '{"action":"blink"}' --ttl 10m --timeout 30s`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{}
			if name != "" {
				body["command"] = name
			}
			if payload != "" {
				b, err := readArg(payload)
				if err != nil {
					return usageError(err)
				}
				var p map[string]any
				if err := json.Unmarshal(b, &p); err != nil || p == nil {
					return usageError(fmt.Errorf("--payload must be a JSON object"))
				}
				body["payload"] = p
			}
			for flag, v := range map[string]string{"timeout": timeout, "ttl": ttl} {
				if v == "" {
					continue
				}
				if _, err := time.ParseDuration(v); err != nil {
					return usageError(fmt.Errorf("--%s %q is not a duration (e.g. 30s, 1h)", flag, v))
				}
				body[flag] = v
			}
			body["wait"] = waitFlag
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := c.Do(cmd.Context(), "POST", "/api/v1/things/"+url.PathEscape(args[0])+"/commands", body, &raw); err != nil {
				return err
			}
			return printRaw(cmd, raw)
		},
	}
	send.Flags().StringVar(&name, "command", "", "command name (delivered as \"command\")")
	send.Flags().StringVar(&payload, "payload", "", "payload: JSON object, @FILE or -")
	send.Flags().StringVar(&timeout, "timeout", "", "how long the device has to answer once delivered (default 30s)")
	send.Flags().StringVar(&ttl, "ttl", "", "how long the command may wait for the device (default 1h)")
	send.Flags().BoolVar(&waitFlag, "wait", false, "wait for the device's reply (or the timeout)")

	get := &cobra.Command{
		Use:   "get THING ID",
		Short: "Print a command's status and reply",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/api/v1/things/" + url.PathEscape(args[0]) + "/commands/" + url.PathEscape(args[1])
			if wait != "" {
				if _, err := time.ParseDuration(wait); err != nil {
					return usageError(fmt.Errorf("--wait %q is not a duration", wait))
				}
				path += "?wait=" + url.QueryEscape(wait)
			}
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := c.Do(cmd.Context(), "GET", path, nil, &raw); err != nil {
				return err
			}
			return printRaw(cmd, raw)
		},
	}
	get.Flags().StringVar(&wait, "wait", "", "wait up to this long for the command to finish")

	var status string
	var limit int
	var asJSON bool
	list := &cobra.Command{
		Use:   "list THING",
		Short: "List a thing's commands, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 1 || limit > 1000 {
				return usageError(fmt.Errorf("--limit must be 1 to 1000"))
			}
			q := url.Values{"limit": {fmt.Sprint(limit)}}
			if status != "" {
				q.Set("status", status)
			}
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			var res struct {
				Commands []struct {
					ID        string    `json:"id"`
					Command   string    `json:"command"`
					Status    string    `json:"status"`
					CreatedAt time.Time `json:"created_at"`
					Error     string    `json:"error"`
				} `json:"commands"`
				Next string `json:"next"`
			}
			var raw json.RawMessage
			if err := c.Do(cmd.Context(), "GET", "/api/v1/things/"+url.PathEscape(args[0])+"/commands?"+q.Encode(), nil, &raw); err != nil {
				return err
			}
			if asJSON {
				return printRaw(cmd, raw)
			}
			if err := json.Unmarshal(raw, &res); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tCOMMAND\tSTATUS\tCREATED\tNOTE")
			for _, c := range res.Commands {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.ID, dash(c.Command), c.Status, c.CreatedAt.Format(time.RFC3339), dash(c.Error))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&status, "status", "", "only commands with this status")
	list.Flags().IntVar(&limit, "limit", 100, "most commands to list")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(send, get, list)
	return cmd
}
